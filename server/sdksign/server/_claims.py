"""Sign: from a SignRequest to the claims of a Zoom SDK JWT, and the token itself.

Everything here is pure: the caller passes the configuration and the clock.
The claim names, order and types follow ../shared/docs/zoom-sdk-jwt.md and
Zoom's auth-endpoint samples; every rule a request can break is collected and
reported at once.
"""

from __future__ import annotations

from typing import NamedTuple

from sdksign.v1 import signature_service_pb2 as pb

from ._config import App, Config
from ._errors import FailedPrecondition, FieldViolation, InvalidArgument
from ._policy import Caller, Grant, authorize
from ._tokens import encode
from ._zoom import DEFAULT_TTL, MAX_TTL, MIN_TTL, Sdk

GEO_REGIONS = frozenset(["AU", "BR", "CA", "CN", "DE", "HK", "IN", "JP", "MX", "NL", "SG", "US"])
# Role enum value -> the integer Zoom expects in `role` / `role_type`.
ROLE_CLAIM = {pb.ROLE_PARTICIPANT: 0, pb.ROLE_HOST: 1}
ROLE_NAMES = {pb.ROLE_PARTICIPANT: "participant", pb.ROLE_HOST: "host"}


class Minted(NamedTuple):
    """A signed token and what it was minted for."""

    token: str
    app: App
    issued_at: int
    expires_at: int
    role: str  # "participant", "host" or "" for a native meeting token


def mint(
    request: pb.SignRequest, config: Config, now: float, caller: Caller | None = None
) -> Minted:
    """Validate `request`, pick its app, check `caller`'s rule and sign; raises RequestError.

    The request is checked first (INVALID_ARGUMENT), then the caller's rule
    (PERMISSION_DENIED): a caller learns what its rule allows only for valid requests.
    """
    kind: Sdk
    claims_field = request.WhichOneof("claims")
    if claims_field == "meeting":
        kind = "meeting"
    elif claims_field == "video":
        kind = "video"
    else:
        raise InvalidArgument([FieldViolation("claims", "set exactly one of meeting or video")])
    violations: list[FieldViolation] = []
    ttl = _ttl(request, violations)
    if claims_field == "meeting":
        role_enum = request.meeting.role
        _check_meeting(request.meeting, violations)
    else:
        role_enum = request.video.role
        _check_video(request.video, violations)
    app = _pick_app(request.app, kind, config, violations)
    if violations:
        raise InvalidArgument(violations)
    assert app is not None
    if caller is not None:
        rule_ttl = caller.rule.max_ttl
        if not request.HasField("ttl") and rule_ttl is not None:
            ttl = min(ttl, rule_ttl)  # no lifetime asked: the default, within the caller's rule
        authorize(
            caller,
            Grant(
                app=app.name,
                kind=kind,
                role=ROLE_NAMES.get(role_enum, ""),
                ttl=ttl,
                meeting_number=request.meeting.meeting_number if kind == "meeting" else "",
                session_name=request.video.session_name if kind == "video" else "",
            ),
        )

    iat = int(now) - config.clock_skew
    exp = iat + ttl
    if kind == "meeting":
        payload = meeting_payload(app.sdk_key, request.meeting, iat, exp)
    else:
        payload = video_payload(app.sdk_key, request.video, iat, exp)
    return Minted(
        token=encode(payload, app.secret),
        app=app,
        issued_at=iat,
        expires_at=exp,
        role=ROLE_NAMES.get(role_enum, ""),
    )


def meeting_payload(
    sdk_key: str, claims: pb.MeetingClaims, iat: int, exp: int
) -> dict[str, object]:
    """Meeting SDK claims in the order of Zoom's sample (appKey first, then sdkKey)."""
    payload: dict[str, object] = {"appKey": sdk_key, "sdkKey": sdk_key}
    if claims.meeting_number:
        payload["mn"] = claims.meeting_number
        payload["role"] = ROLE_CLAIM[claims.role]
    payload.update(iat=iat, exp=exp, tokenExp=exp)
    if claims.HasField("video_webrtc_mode"):
        payload["video_webrtc_mode"] = int(claims.video_webrtc_mode)
    return payload


def video_payload(sdk_key: str, claims: pb.VideoClaims, iat: int, exp: int) -> dict[str, object]:
    """Video SDK claims in the order of Zoom's Video SDK sample."""
    payload: dict[str, object] = {
        "app_key": sdk_key,
        "tpc": claims.session_name,
        "role_type": ROLE_CLAIM[claims.role],
        "version": 1,
        "iat": iat,
        "exp": exp,
    }
    for name in ("user_identity", "session_key", "telemetry_tracking_id"):
        if value := getattr(claims, name):
            payload[name] = value
    if claims.geo_regions:
        payload["geo_regions"] = ",".join(claims.geo_regions)
    for flag in (
        "cloud_recording_option",
        "cloud_recording_election",
        "video_webrtc_mode",
        "audio_webrtc_mode",
    ):
        if claims.HasField(flag):
            payload[flag] = int(getattr(claims, flag))
    return payload


def _ttl(request: pb.SignRequest, violations: list[FieldViolation]) -> int:
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    seconds, nanos = request.ttl.seconds, request.ttl.nanos
    allowed = (
        f"whole seconds from {MIN_TTL} (30 min) to {MAX_TTL} (48 h); unset means {DEFAULT_TTL}"
    )
    if nanos or not MIN_TTL <= seconds <= MAX_TTL:
        given = f"{seconds}.{abs(nanos):09d}".rstrip("0").rstrip(".") if nanos else str(seconds)
        violations.append(
            FieldViolation("ttl", f"{given}s is outside the allowed range: {allowed}")
        )
    return seconds


def _role_violation(field: str, role: int) -> FieldViolation:
    if role == pb.ROLE_UNSPECIFIED:
        return FieldViolation(field, "is required: ROLE_PARTICIPANT or ROLE_HOST")
    return FieldViolation(field, f"{role} is not a Role: ROLE_PARTICIPANT or ROLE_HOST")


def _check_meeting(claims: pb.MeetingClaims, violations: list[FieldViolation]) -> None:
    number, role = claims.meeting_number, claims.role
    if number and not is_meeting_number(number):
        violations.append(
            FieldViolation(
                "meeting.meeting_number",
                "must be digits only (at most 20), without spaces or dashes, e.g. 94843468909",
            )
        )
    if role != pb.ROLE_UNSPECIFIED and role not in ROLE_CLAIM:
        violations.append(_role_violation("meeting.role", role))
    elif number and role == pb.ROLE_UNSPECIFIED:
        violations.append(
            FieldViolation(
                "meeting.role",
                "is required with meeting.meeting_number (a web token): ROLE_PARTICIPANT or "
                "ROLE_HOST; leave both unset for a native SDK token",
            )
        )
    elif role in ROLE_CLAIM and not number:
        violations.append(
            FieldViolation(
                "meeting.meeting_number",
                "is required with meeting.role (a web token); leave both unset for a native "
                "SDK token",
            )
        )


_VIDEO_LIMITS = {
    "session_name": 200,
    "user_identity": 35,
    "session_key": 36,
    "telemetry_tracking_id": 200,
}


def _check_video(claims: pb.VideoClaims, violations: list[FieldViolation]) -> None:
    if not claims.session_name:
        violations.append(
            FieldViolation("video.session_name", "is required (at most 200 characters)")
        )
    for name, limit in _VIDEO_LIMITS.items():
        length = len(getattr(claims, name))
        if length > limit:
            violations.append(
                FieldViolation(
                    f"video.{name}", f"has {length} characters; at most {limit} are allowed"
                )
            )
    if claims.role not in ROLE_CLAIM:
        violations.append(_role_violation("video.role", claims.role))
    for index, region in enumerate(claims.geo_regions):
        if region not in GEO_REGIONS:
            violations.append(
                FieldViolation(
                    f"video.geo_regions[{index}]",
                    f"{region[:8]!r} is not a Zoom region; allowed: {', '.join(sorted(GEO_REGIONS))}",
                )
            )


def unknown_app(name: str, config: Config) -> FieldViolation:
    """The violation for an `app` field that names no configured app."""
    configured = ", ".join(a.name for a in config.apps)
    return FieldViolation("app", f"no app is named {name[:64]!r}; configured: {configured}")


def is_meeting_number(text: str) -> bool:
    """Digits only (ASCII), at most 20 of them."""
    # isdigit() alone would take other scripts' digits too; ASCII ones are 0-9 only.
    return len(text) <= 20 and text.isascii() and text.isdigit()


def _pick_app(
    name: str, kind: Sdk, config: Config, violations: list[FieldViolation]
) -> App | None:
    if name:
        app = config.app_named(name)
        if app is None:
            violations.append(unknown_app(name, config))
        elif app.kind != kind:
            violations.append(
                FieldViolation(
                    "app", f"{name!r} is a {app.kind} app; {kind} claims need a {kind} app"
                )
            )
        return app
    candidates = config.apps_of_kind(kind)
    if not candidates:
        raise FailedPrecondition(
            f"no {kind} app is configured: add one to the configuration "
            f"(or set ZOOM_{kind.upper()}_SDK_KEY and ZOOM_{kind.upper()}_SDK_SECRET)"
        )
    if len(candidates) > 1:
        names = ", ".join(a.name for a in candidates)
        violations.append(
            FieldViolation("app", f"is required: several {kind} apps are configured ({names})")
        )
        return None
    return candidates[0]
