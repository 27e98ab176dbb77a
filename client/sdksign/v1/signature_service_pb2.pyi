import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PARTICIPANT: _ClassVar[Role]
    ROLE_HOST: _ClassVar[Role]

class SignatureCheck(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_CHECK_UNSPECIFIED: _ClassVar[SignatureCheck]
    SIGNATURE_CHECK_NOT_CHECKED: _ClassVar[SignatureCheck]
    SIGNATURE_CHECK_MATCHED: _ClassVar[SignatureCheck]
    SIGNATURE_CHECK_MATCHED_OTHER_APP: _ClassVar[SignatureCheck]
    SIGNATURE_CHECK_MISMATCHED: _ClassVar[SignatureCheck]

class TokenKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_KIND_UNSPECIFIED: _ClassVar[TokenKind]
    TOKEN_KIND_MEETING_WEB: _ClassVar[TokenKind]
    TOKEN_KIND_MEETING_NATIVE: _ClassVar[TokenKind]
    TOKEN_KIND_VIDEO: _ClassVar[TokenKind]
    TOKEN_KIND_LEGACY_SIGNATURE: _ClassVar[TokenKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_ERROR: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]

class ProblemCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBLEM_CODE_UNSPECIFIED: _ClassVar[ProblemCode]
    PROBLEM_CODE_NOT_A_JWT: _ClassVar[ProblemCode]
    PROBLEM_CODE_LEGACY_SIGNATURE: _ClassVar[ProblemCode]
    PROBLEM_CODE_MALFORMED: _ClassVar[ProblemCode]
    PROBLEM_CODE_UNSUPPORTED_ALGORITHM: _ClassVar[ProblemCode]
    PROBLEM_CODE_UNKNOWN_SDK_KEY: _ClassVar[ProblemCode]
    PROBLEM_CODE_BAD_SIGNATURE: _ClassVar[ProblemCode]
    PROBLEM_CODE_MISSING_CLAIM: _ClassVar[ProblemCode]
    PROBLEM_CODE_WRONG_CLAIM_TYPE: _ClassVar[ProblemCode]
    PROBLEM_CODE_TIMESTAMP_IN_MILLISECONDS: _ClassVar[ProblemCode]
    PROBLEM_CODE_EXPIRED: _ClassVar[ProblemCode]
    PROBLEM_CODE_ISSUED_IN_FUTURE: _ClassVar[ProblemCode]
    PROBLEM_CODE_LIFETIME_TOO_SHORT: _ClassVar[ProblemCode]
    PROBLEM_CODE_LIFETIME_TOO_LONG: _ClassVar[ProblemCode]
    PROBLEM_CODE_INVALID_ROLE: _ClassVar[ProblemCode]
    PROBLEM_CODE_KEY_MISMATCH: _ClassVar[ProblemCode]
    PROBLEM_CODE_MEETING_MISMATCH: _ClassVar[ProblemCode]
    PROBLEM_CODE_INVALID_CLAIM: _ClassVar[ProblemCode]
    PROBLEM_CODE_TOKEN_WRAPPED: _ClassVar[ProblemCode]
    PROBLEM_CODE_SECRET_ENCODING: _ClassVar[ProblemCode]
    PROBLEM_CODE_DEPRECATED_CLAIM: _ClassVar[ProblemCode]
ROLE_UNSPECIFIED: Role
ROLE_PARTICIPANT: Role
ROLE_HOST: Role
SIGNATURE_CHECK_UNSPECIFIED: SignatureCheck
SIGNATURE_CHECK_NOT_CHECKED: SignatureCheck
SIGNATURE_CHECK_MATCHED: SignatureCheck
SIGNATURE_CHECK_MATCHED_OTHER_APP: SignatureCheck
SIGNATURE_CHECK_MISMATCHED: SignatureCheck
TOKEN_KIND_UNSPECIFIED: TokenKind
TOKEN_KIND_MEETING_WEB: TokenKind
TOKEN_KIND_MEETING_NATIVE: TokenKind
TOKEN_KIND_VIDEO: TokenKind
TOKEN_KIND_LEGACY_SIGNATURE: TokenKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_ERROR: Severity
SEVERITY_WARNING: Severity
PROBLEM_CODE_UNSPECIFIED: ProblemCode
PROBLEM_CODE_NOT_A_JWT: ProblemCode
PROBLEM_CODE_LEGACY_SIGNATURE: ProblemCode
PROBLEM_CODE_MALFORMED: ProblemCode
PROBLEM_CODE_UNSUPPORTED_ALGORITHM: ProblemCode
PROBLEM_CODE_UNKNOWN_SDK_KEY: ProblemCode
PROBLEM_CODE_BAD_SIGNATURE: ProblemCode
PROBLEM_CODE_MISSING_CLAIM: ProblemCode
PROBLEM_CODE_WRONG_CLAIM_TYPE: ProblemCode
PROBLEM_CODE_TIMESTAMP_IN_MILLISECONDS: ProblemCode
PROBLEM_CODE_EXPIRED: ProblemCode
PROBLEM_CODE_ISSUED_IN_FUTURE: ProblemCode
PROBLEM_CODE_LIFETIME_TOO_SHORT: ProblemCode
PROBLEM_CODE_LIFETIME_TOO_LONG: ProblemCode
PROBLEM_CODE_INVALID_ROLE: ProblemCode
PROBLEM_CODE_KEY_MISMATCH: ProblemCode
PROBLEM_CODE_MEETING_MISMATCH: ProblemCode
PROBLEM_CODE_INVALID_CLAIM: ProblemCode
PROBLEM_CODE_TOKEN_WRAPPED: ProblemCode
PROBLEM_CODE_SECRET_ENCODING: ProblemCode
PROBLEM_CODE_DEPRECATED_CLAIM: ProblemCode

class SignRequest(_message.Message):
    __slots__ = ("app", "meeting", "video", "ttl", "start_as", "on_behalf_of")
    APP_FIELD_NUMBER: _ClassVar[int]
    MEETING_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    START_AS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    app: str
    meeting: MeetingClaims
    video: VideoClaims
    ttl: _duration_pb2.Duration
    start_as: str
    on_behalf_of: str
    def __init__(self, app: _Optional[str] = ..., meeting: _Optional[_Union[MeetingClaims, _Mapping]] = ..., video: _Optional[_Union[VideoClaims, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., start_as: _Optional[str] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class MeetingClaims(_message.Message):
    __slots__ = ("meeting_number", "role", "video_webrtc_mode")
    MEETING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_WEBRTC_MODE_FIELD_NUMBER: _ClassVar[int]
    meeting_number: str
    role: Role
    video_webrtc_mode: bool
    def __init__(self, meeting_number: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., video_webrtc_mode: _Optional[bool] = ...) -> None: ...

class VideoClaims(_message.Message):
    __slots__ = ("session_name", "role", "user_identity", "session_key", "geo_regions", "cloud_recording_option", "cloud_recording_election", "video_webrtc_mode", "audio_webrtc_mode", "telemetry_tracking_id")
    SESSION_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    GEO_REGIONS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_RECORDING_OPTION_FIELD_NUMBER: _ClassVar[int]
    CLOUD_RECORDING_ELECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEO_WEBRTC_MODE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_WEBRTC_MODE_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    session_name: str
    role: Role
    user_identity: str
    session_key: str
    geo_regions: _containers.RepeatedScalarFieldContainer[str]
    cloud_recording_option: bool
    cloud_recording_election: bool
    video_webrtc_mode: bool
    audio_webrtc_mode: bool
    telemetry_tracking_id: str
    def __init__(self, session_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., user_identity: _Optional[str] = ..., session_key: _Optional[str] = ..., geo_regions: _Optional[_Iterable[str]] = ..., cloud_recording_option: _Optional[bool] = ..., cloud_recording_election: _Optional[bool] = ..., video_webrtc_mode: _Optional[bool] = ..., audio_webrtc_mode: _Optional[bool] = ..., telemetry_tracking_id: _Optional[str] = ...) -> None: ...

class SignResponse(_message.Message):
    __slots__ = ("token", "sdk_key", "issued_at", "expires_at", "app", "zak", "obf_token")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SDK_KEY_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    ZAK_FIELD_NUMBER: _ClassVar[int]
    OBF_TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    sdk_key: str
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    app: str
    zak: str
    obf_token: str
    def __init__(self, token: _Optional[str] = ..., sdk_key: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., app: _Optional[str] = ..., zak: _Optional[str] = ..., obf_token: _Optional[str] = ...) -> None: ...

class BeginGrantRequest(_message.Message):
    __slots__ = ("app", "redirect_uri")
    APP_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    app: str
    redirect_uri: str
    def __init__(self, app: _Optional[str] = ..., redirect_uri: _Optional[str] = ...) -> None: ...

class BeginGrantResponse(_message.Message):
    __slots__ = ("authorize_url", "state", "expires_at")
    AUTHORIZE_URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    authorize_url: str
    state: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, authorize_url: _Optional[str] = ..., state: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteGrantRequest(_message.Message):
    __slots__ = ("state", "code")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    state: str
    code: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("app", "user_id", "email", "scopes", "created_at", "broken")
    APP_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BROKEN_FIELD_NUMBER: _ClassVar[int]
    app: str
    user_id: str
    email: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    broken: bool
    def __init__(self, app: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., broken: _Optional[bool] = ...) -> None: ...

class RemoveGrantRequest(_message.Message):
    __slots__ = ("app", "user")
    APP_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    app: str
    user: str
    def __init__(self, app: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class RemoveGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("app", "page_size", "page_token")
    APP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app: str
    page_size: int
    page_token: str
    def __init__(self, app: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("token", "app", "expected_meeting_number")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MEETING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    token: str
    app: str
    expected_meeting_number: str
    def __init__(self, token: _Optional[str] = ..., app: _Optional[str] = ..., expected_meeting_number: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("valid", "problems", "claims", "app", "kind", "header", "secret_fingerprint", "signature", "tried_secret_fingerprints", "header_json", "claims_json")
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRIED_SECRET_FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    HEADER_JSON_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_JSON_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    claims: _struct_pb2.Struct
    app: str
    kind: TokenKind
    header: _struct_pb2.Struct
    secret_fingerprint: str
    signature: SignatureCheck
    tried_secret_fingerprints: _containers.RepeatedScalarFieldContainer[str]
    header_json: str
    claims_json: str
    def __init__(self, valid: _Optional[bool] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., claims: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., app: _Optional[str] = ..., kind: _Optional[_Union[TokenKind, str]] = ..., header: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., secret_fingerprint: _Optional[str] = ..., signature: _Optional[_Union[SignatureCheck, str]] = ..., tried_secret_fingerprints: _Optional[_Iterable[str]] = ..., header_json: _Optional[str] = ..., claims_json: _Optional[str] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("code", "message", "claim", "severity")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    code: ProblemCode
    message: str
    claim: str
    severity: Severity
    def __init__(self, code: _Optional[_Union[ProblemCode, str]] = ..., message: _Optional[str] = ..., claim: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ...) -> None: ...
