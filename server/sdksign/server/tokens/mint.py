"""Sign: from a SignRequest to the claims of a Zoom SDK JWT, and the token itself.

Everything here is pure: the caller passes the configuration, the caller and the
clock. The claim names, order and types are Zoom's rules in zoom.rules; every rule a
request can break is collected and reported at once. mint() goes in four steps:
check the request, pick the app, authorize the caller, sign.
"""

from __future__ import annotations

from typing import NamedTuple

from sdksign.v1 import signature_service_pb2 as pb

from ..access.policy import Caller, Grant, authorize, in_scope, no_app, pick_app
from ..config import App, Config
from ..errors import FailedPrecondition, FieldViolation, InvalidArgument
from ..zoom.jwt import encode
from ..zoom.rules import (
    DEFAULT_TTL,
    FLAG,
    GEO_REGIONS,
    MAX_TTL,
    MEETING_KEY,
    MEETING_NUMBER,
    MEETING_NUMBER_RULE,
    MEETING_OLD_KEY,
    MEETING_OPTIONAL,
    MEETING_ROLE,
    MEETING_TIMES,
    MIN_TTL,
    REGIONS,
    ROLE_CLAIM,
    ROLE_NAMES,
    SESSION_NAME,
    SESSION_NAME_LENGTH,
    START_AS_RULE,
    TEXT,
    VERSION,
    VIDEO_KEY,
    VIDEO_OPTIONAL,
    VIDEO_ROLE,
    VIDEO_TIMES,
    VIDEO_VERSION,
    OptionalClaim,
    Sdk,
    is_meeting_number,
    is_region_name,
    is_start_as,
    quoted,
)

Claims = pb.MeetingClaims | pb.VideoClaims


class Minted(NamedTuple):
    """A signed token and what it was minted for."""

    token: str
    app: App
    issued_at: int
    expires_at: int
    role: str  # "participant", "host" or "" for a native meeting token


class ValidRequest(NamedTuple):
    """A Sign request that has passed its checks: the claims, the app, the lifetime."""

    sdk: Sdk
    claims: Claims
    app: App
    role: str  # "participant", "host" or "" for a native meeting token
    ttl: int
    ttl_given: bool  # False: DEFAULT_TTL, which a caller's max_ttl may shorten
    start_as: str = ""  # the Zoom user whose ZAK a host start asks for; "": none
    on_behalf_of: str = ""  # the Zoom user whose OBF token is asked for; "": none


def mint(request: pb.SignRequest, config: Config, now: float, caller: Caller) -> Minted:
    """Validate `request`, pick its app, check `caller`'s rule and sign; raises RequestError.

    The request is checked first (INVALID_ARGUMENT), then the caller's rule
    (PERMISSION_DENIED): a caller learns what its rule allows only for valid requests.
    """
    checked = check_request(request, config, caller)
    ttl = authorize_request(checked, caller)
    return sign(checked, ttl, now - config.clock_skew)


def check_request(request: pb.SignRequest, config: Config, caller: Caller) -> ValidRequest:
    """The request's claims, app (among those `caller` may use) and lifetime; raises
    InvalidArgument naming every bad field, FailedPrecondition when no app of the SDK asked
    for is configured, or a refusal when the caller's rule has none (policy.no_app)."""
    sdk: Sdk
    claims: Claims
    which = request.WhichOneof("claims")
    if which == "meeting":
        sdk, claims = "meeting", request.meeting
    elif which == "video":
        sdk, claims = "video", request.video
    else:
        raise InvalidArgument([FieldViolation("claims", "set exactly one of meeting or video")])
    violations: list[FieldViolation] = []
    ttl = _ttl(request, violations)
    if isinstance(claims, pb.MeetingClaims):
        _check_meeting(claims, violations)
    else:
        _check_video(claims, violations)
    _check_users(request, claims, violations)
    app = pick_app(request.app, sdk, in_scope(caller.rule.apps, config.apps), violations)
    if violations:
        raise InvalidArgument(violations)
    if app is None:
        no_app(caller, sdk)
    role = ROLE_NAMES.get(claims.role, "")
    return ValidRequest(
        sdk,
        claims,
        app,
        role,
        ttl,
        ttl_given=request.HasField("ttl"),
        start_as=request.start_as,
        on_behalf_of=request.on_behalf_of,
    )


def authorize_request(checked: ValidRequest, caller: Caller) -> int:
    """Check `checked` against `caller`'s rule (raises PermissionDenied or Unauthenticated);
    return the lifetime to sign with: with none asked, the default within the rule's max."""
    ttl = checked.ttl
    if not checked.ttl_given and caller.rule.max_ttl is not None:
        ttl = min(ttl, caller.rule.max_ttl)
    claims = checked.claims
    authorize(
        caller,
        Grant(
            app=checked.app.name,
            sdk=checked.sdk,
            role=checked.role,
            ttl=ttl,
            meeting_number=claims.meeting_number if isinstance(claims, pb.MeetingClaims) else "",
            session_name=claims.session_name if isinstance(claims, pb.VideoClaims) else "",
            start_as=checked.start_as,
            on_behalf_of=checked.on_behalf_of,
        ),
    )
    if checked.start_as and checked.app.s2s is None:
        raise FailedPrecondition(
            f"app {checked.app.name!r} has no [apps.s2s] table: a host start (start_as) asks "
            "Zoom for the host's ZAK through the account's Server-to-Server OAuth app"
        )
    return ttl


def sign(checked: ValidRequest, ttl: int, issued_at: float) -> Minted:
    """The token for `checked`, valid from `issued_at` (whole seconds) for `ttl` seconds."""
    iat = int(issued_at)
    exp = iat + ttl
    sdk_key, claims = checked.app.sdk_key, checked.claims
    if isinstance(claims, pb.MeetingClaims):
        payload = meeting_payload(sdk_key, claims, iat, exp)
    else:
        payload = video_payload(sdk_key, claims, iat, exp)
    token = encode(payload, checked.app.secret)
    return Minted(token=token, app=checked.app, issued_at=iat, expires_at=exp, role=checked.role)


# --- the payloads ---------------------------------------------------------------------------


def meeting_payload(
    sdk_key: str, claims: pb.MeetingClaims, iat: int, exp: int
) -> dict[str, object]:
    """Meeting SDK claims in the order of Zoom's sample (appKey first, then sdkKey)."""
    payload: dict[str, object] = {MEETING_OLD_KEY: sdk_key, MEETING_KEY: sdk_key}
    if claims.meeting_number:
        payload[MEETING_NUMBER] = claims.meeting_number
        payload[MEETING_ROLE] = ROLE_CLAIM[claims.role]
    issued, expires, token_expires = MEETING_TIMES
    payload.update({issued: iat, expires: exp, token_expires: exp})
    _add_optional(payload, claims, MEETING_OPTIONAL)
    return payload


def video_payload(sdk_key: str, claims: pb.VideoClaims, iat: int, exp: int) -> dict[str, object]:
    """Video SDK claims in the order of Zoom's Video SDK sample."""
    issued, expires = VIDEO_TIMES
    payload: dict[str, object] = {
        VIDEO_KEY: sdk_key,
        SESSION_NAME: claims.session_name,
        VIDEO_ROLE: ROLE_CLAIM[claims.role],
        VERSION: VIDEO_VERSION,
        issued: iat,
        expires: exp,
    }
    _add_optional(payload, claims, VIDEO_OPTIONAL)
    return payload


def _add_optional(
    payload: dict[str, object], claims: Claims, optional: tuple[OptionalClaim, ...]
) -> None:
    """Each optional claim the request sets, as the token writes it."""
    for name, form, _ in optional:
        if form is FLAG:
            if claims.HasField(name):
                payload[name] = int(getattr(claims, name))
        elif value := getattr(claims, name):
            payload[name] = ",".join(value) if form is REGIONS else value


# --- the request's checks -------------------------------------------------------------------


def _ttl(request: pb.SignRequest, violations: list[FieldViolation]) -> int:
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    seconds, nanos = request.ttl.seconds, request.ttl.nanos
    if nanos or not MIN_TTL <= seconds <= MAX_TTL:
        given = f"{seconds}.{abs(nanos):09d}".rstrip("0").rstrip(".") if nanos else str(seconds)
        violations.append(
            FieldViolation(
                "ttl",
                f"{given}s is outside the allowed range: whole seconds from {MIN_TTL} (30 min) "
                f"to {MAX_TTL} (48 h); unset means {DEFAULT_TTL}",
            )
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
            FieldViolation("meeting.meeting_number", f"must be {MEETING_NUMBER_RULE}")
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
    _check_optional(claims, MEETING_OPTIONAL, "meeting", violations)


def _check_users(request: pb.SignRequest, claims: Claims, violations: list[FieldViolation]) -> None:
    """The fields naming a Zoom user, each a user's name and only with the token it needs:
    start_as a Meeting SDK web token of role ROLE_HOST, on_behalf_of one of any role."""
    role = claims.role if isinstance(claims, pb.MeetingClaims) else pb.ROLE_UNSPECIFIED
    if request.start_as:
        _check_user(
            "start_as",
            request.start_as,
            role == pb.ROLE_HOST,
            "a Meeting SDK web token of role ROLE_HOST "
            "(meeting.meeting_number and meeting.role = ROLE_HOST)",
            violations,
        )
    if request.on_behalf_of:
        _check_user(
            "on_behalf_of",
            request.on_behalf_of,
            role != pb.ROLE_UNSPECIFIED,
            "a Meeting SDK web token (meeting.meeting_number and meeting.role)",
            violations,
        )


def _check_user(
    field: str, user: str, fits: bool, needs: str, violations: list[FieldViolation]
) -> None:
    if not fits:
        violations.append(FieldViolation(field, f"is allowed only with {needs}"))
    elif not is_start_as(user):
        violations.append(FieldViolation(field, f"must be {START_AS_RULE}"))


def _check_video(claims: pb.VideoClaims, violations: list[FieldViolation]) -> None:
    session_name = len(claims.session_name)
    if not session_name:
        violations.append(
            FieldViolation(
                "video.session_name", f"is required (at most {SESSION_NAME_LENGTH} characters)"
            )
        )
    elif session_name > SESSION_NAME_LENGTH:
        violations.append(_too_long("video.session_name", session_name, SESSION_NAME_LENGTH))
    if claims.role not in ROLE_CLAIM:
        violations.append(_role_violation("video.role", claims.role))
    _check_optional(claims, VIDEO_OPTIONAL, "video", violations)


def _check_optional(
    claims: Claims,
    optional: tuple[OptionalClaim, ...],
    prefix: str,
    violations: list[FieldViolation],
) -> None:
    """The lengths of text claims and the names of regions (flags are bools: always valid)."""
    for name, form, max_length in optional:
        if form is TEXT and (length := len(getattr(claims, name))) > max_length:
            violations.append(_too_long(f"{prefix}.{name}", length, max_length))
        elif form is REGIONS:
            for index, region in enumerate(getattr(claims, name)):
                if region not in GEO_REGIONS:
                    violations.append(
                        FieldViolation(
                            f"{prefix}.{name}[{index}]",
                            f"{quoted(region, is_region_name)} is not a Zoom region; allowed: "
                            + ", ".join(sorted(GEO_REGIONS)),
                        )
                    )


def _too_long(field: str, length: int, limit: int) -> FieldViolation:
    return FieldViolation(field, f"has {length} characters; at most {limit} are allowed")
