"""Typed results and the request builders shared by the async and sync clients."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2, json_format

from sdksign.v1 import signature_service_pb2 as pb

from ._errors import FieldViolation, SdkSignError
from ._limits import MAX_TOKEN_LENGTH, too_long_token


class Role(enum.Enum):
    """The role a token grants: PARTICIPANT (written as 0) or HOST (written as 1)."""

    PARTICIPANT = pb.ROLE_PARTICIPANT
    HOST = pb.ROLE_HOST


@dataclass(frozen=True)
class SignedToken:
    """A minted token. `token` is the whole header.payload.signature."""

    token: str = field(repr=False)
    sdk_key: str
    issued_at: datetime
    expires_at: datetime
    app: str
    # The ZAK of the user a host start named (start_as), for the web SDK's join call as
    # `zak`; "" when none was asked for.
    zak: str = field(default="", repr=False)
    # The OBF token of the user on_behalf_of named, for the web SDK's join call as
    # `obfToken`; "" when none was asked for.
    obf_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Problem:
    """One problem Verify found: its code (e.g. "EXPIRED"), how to fix it, the claim concerned,
    and its severity: "ERROR" (the token is invalid) or "WARNING" (valid, but worth changing,
    e.g. a deprecated claim)."""

    code: str
    message: str
    claim: str
    severity: str = "ERROR"


@dataclass(frozen=True)
class Verification:
    """Verify's diagnosis. `claims` and `header` are the decoded JSON, when it could be decoded,
    in the token's own key order.

    `signature` says whether a configured secret made the signature: "MATCHED" (a secret of
    `app`; `secret_fingerprint` says which), "MATCHED_OTHER_APP" (another configured secret,
    `secret_fingerprint`), "MISMATCHED" (none of `tried_secret_fingerprints`), "NOT_CHECKED",
    or "UNSPECIFIED" from a server that does not say.
    """

    valid: bool
    problems: list[Problem]
    claims: dict[str, Any] | None
    header: dict[str, Any] | None
    app: str
    kind: str  # "MEETING_WEB", "MEETING_NATIVE", "VIDEO", "LEGACY_SIGNATURE" or "UNSPECIFIED"
    signature: str = "UNSPECIFIED"
    secret_fingerprint: str = ""
    tried_secret_fingerprints: tuple[str, ...] = ()

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def explain(self) -> str:
        """A human-readable report, as `sdksign verify` prints it."""
        kind = self.kind.replace("_", " ").lower()
        if self.valid:
            lines = [f"valid: a {kind} token for app {self.app!r}"]
        else:
            count = sum(p.severity != "WARNING" for p in self.problems)
            lines = [f"INVALID: {count} problem{'s' if count != 1 else ''} ({kind} token)"]
        for p in self.problems:
            where = f" [{p.claim}]" if p.claim else ""
            warning = "warning: " if p.severity == "WARNING" else ""
            lines.append(f"  - {warning}{p.code}{where}: {p.message}")
        said = self._signature_line()
        if said:
            lines.append(said)
        if self.header is not None:
            lines.append(f"header: {json.dumps(self.header)}")
        if self.claims is not None:
            lines.append(f"claims: {json.dumps(self.claims)}")
        return "\n".join(lines)

    def _signature_line(self) -> str:
        """What explain() says of the signature ("" when the server did not say)."""
        if self.signature == "MATCHED":
            return f"signature: made with secret {self.secret_fingerprint} of app {self.app!r}"
        if self.signature == "MATCHED_OTHER_APP":
            return f"signature: made with secret {self.secret_fingerprint}, of another app"
        if self.signature == "MISMATCHED":
            tried = ", ".join(self.tried_secret_fingerprints)
            if "SECRET_ENCODING" in self.codes:
                return (
                    f"signature: not made with the secrets tried as configured ({tried}): one "
                    "of them, read another way, made it; see SECRET_ENCODING"
                )
            return f"signature: made with none of the secrets tried ({tried})"
        return "signature: not checked" if self.signature == "NOT_CHECKED" else ""


def duration(ttl: timedelta | int | None) -> duration_pb2.Duration | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(seconds=seconds))
    return message


def meeting_request(
    meeting_number: str | int | None = None,
    role: Role | None = None,
    *,
    app: str = "",
    ttl: timedelta | int | None = None,
    video_webrtc_mode: bool | None = None,
    start_as: str = "",
    on_behalf_of: str = "",
) -> pb.SignRequest:
    """The SignRequest for a Meeting SDK token (what both clients' sign_meeting send)."""
    claims = pb.MeetingClaims(
        meeting_number="" if meeting_number is None else str(meeting_number),
        role=role.value if role else pb.ROLE_UNSPECIFIED,
        video_webrtc_mode=video_webrtc_mode,
    )
    return pb.SignRequest(
        app=app, meeting=claims, ttl=duration(ttl), start_as=start_as, on_behalf_of=on_behalf_of
    )


def video_request(
    session_name: str,
    role: Role,
    *,
    app: str = "",
    ttl: timedelta | int | None = None,
    user_identity: str = "",
    session_key: str = "",
    geo_regions: Iterable[str] = (),
    telemetry_tracking_id: str = "",
    cloud_recording_option: bool | None = None,
    cloud_recording_election: bool | None = None,
    video_webrtc_mode: bool | None = None,
    audio_webrtc_mode: bool | None = None,
) -> pb.SignRequest:
    """The SignRequest for a Video SDK token (what both clients' sign_video send).

    The four flags are the proto's optional bools: None leaves the claim out (protobuf
    leaves a field given None unset).
    """
    claims = pb.VideoClaims(
        session_name=session_name,
        role=role.value,
        user_identity=user_identity,
        session_key=session_key,
        geo_regions=list(geo_regions),
        telemetry_tracking_id=telemetry_tracking_id,
        cloud_recording_option=cloud_recording_option,
        cloud_recording_election=cloud_recording_election,
        video_webrtc_mode=video_webrtc_mode,
        audio_webrtc_mode=audio_webrtc_mode,
    )
    return pb.SignRequest(app=app, video=claims, ttl=duration(ttl))


def verify_request(
    token: str,
    *,
    app: str | None = None,
    expected_meeting_number: str | int | None = None,
) -> pb.VerifyRequest:
    """The VerifyRequest (what both clients' verify send); a token over MAX_TOKEN_LENGTH
    raises SdkSignError (INVALID_ARGUMENT, as the server would answer) without a call."""
    if len(token) > MAX_TOKEN_LENGTH:
        why = too_long_token(len(token))
        raise SdkSignError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid request: token: {why}",
            [FieldViolation("token", why)],
        )
    expected = None if expected_meeting_number is None else str(expected_meeting_number)
    return pb.VerifyRequest(token=token, app=app, expected_meeting_number=expected)


def _raise_if_unparsed(response: object) -> None:
    # grpcio hands back None, not an error, when it cannot parse an answer.
    if response is None:
        raise SdkSignError(grpc.StatusCode.INTERNAL, "the server's answer could not be parsed", [])


def signed_token(response: pb.SignResponse) -> SignedToken:
    _raise_if_unparsed(response)
    return SignedToken(
        token=response.token,
        sdk_key=response.sdk_key,
        issued_at=datetime.fromtimestamp(response.issued_at.seconds, UTC),
        expires_at=datetime.fromtimestamp(response.expires_at.seconds, UTC),
        app=response.app,
        zak=response.zak,
        obf_token=response.obf_token,
    )


def _whole_numbers(value: Any) -> Any:
    """Struct holds every number as a double: give whole ones back as int (1795362574, not 1.79e9)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def verification(response: pb.VerifyResponse) -> Verification:
    _raise_if_unparsed(response)

    def struct(name: str) -> dict[str, Any] | None:
        text = getattr(response, f"{name}_json")  # the token's key order, when the server sends it
        if text:
            return json.loads(text)  # type: ignore[no-any-return]
        if not response.HasField(name):
            return None
        return _whole_numbers(json_format.MessageToDict(getattr(response, name)))  # type: ignore[no-any-return]

    return Verification(
        valid=response.valid,
        problems=[
            Problem(
                code=pb.ProblemCode.Name(p.code).removeprefix("PROBLEM_CODE_"),
                message=p.message,
                claim=p.claim,
                # A server from before severities sends none: its problems are errors.
                severity="WARNING" if p.severity == pb.SEVERITY_WARNING else "ERROR",
            )
            for p in response.problems
        ],
        claims=struct("claims"),
        header=struct("header"),
        app=response.app,
        kind=pb.TokenKind.Name(response.kind).removeprefix("TOKEN_KIND_"),
        signature=pb.SignatureCheck.Name(response.signature).removeprefix("SIGNATURE_CHECK_"),
        secret_fingerprint=response.secret_fingerprint,
        tried_secret_fingerprints=tuple(response.tried_secret_fingerprints),
    )
