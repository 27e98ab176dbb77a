from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ZoomSampleServiceSignRequest(_message.Message):
    __slots__ = ("meeting_number", "role", "expiration_seconds", "video_web_rtc_mode", "app")
    MEETING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_WEB_RTC_MODE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    meeting_number: _struct_pb2.Value
    role: int
    expiration_seconds: int
    video_web_rtc_mode: int
    app: str
    def __init__(self, meeting_number: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., role: _Optional[int] = ..., expiration_seconds: _Optional[int] = ..., video_web_rtc_mode: _Optional[int] = ..., app: _Optional[str] = ...) -> None: ...

class ZoomSampleServiceSignResponse(_message.Message):
    __slots__ = ("signature", "sdk_key")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SDK_KEY_FIELD_NUMBER: _ClassVar[int]
    signature: str
    sdk_key: str
    def __init__(self, signature: _Optional[str] = ..., sdk_key: _Optional[str] = ...) -> None: ...
