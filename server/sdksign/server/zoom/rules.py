"""Zoom's token rules, in one place: claim names, types and bounds, roles, regions, flags.

Minting (tokens.mint) and diagnosis (tokens.diagnose) both read these; neither imports the
other. docs/zoom-sdk-jwt.md explains each rule and the ways real code breaks it.

The last section says what of a caller's value a log line, a span or an error message may
show (shown, quoted): the value when it has its field's shape, else its length and
fingerprint. Every field that comes from a caller goes through it.

Adding an optional claim means a line in MEETING_OPTIONAL or VIDEO_OPTIONAL (its
name is also the field of MeetingClaims or VideoClaims that Sign takes it from),
the field in the proto, and tests: Sign validates and writes it, Verify checks it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Literal, NamedTuple

from sdksign.client import _limits
from sdksign.v1 import signature_service_pb2 as pb

from .jwt import fingerprint

# Which SDK an app (and its tokens) is for; `kind` in the configuration file.
Sdk = Literal["meeting", "video"]
SDKS: tuple[Sdk, ...] = ("meeting", "video")

# --- lifetime -------------------------------------------------------------------------------

# A token's lifetime, exp - iat (MIN_TTL to MAX_TTL seconds), and what Sign gives when none is
# asked for: kept with the client's limits, which a client-only install can read too.
MIN_TTL, MAX_TTL, DEFAULT_TTL = _limits.MIN_TTL, _limits.MAX_TTL, _limits.DEFAULT_TTL
# Epoch seconds reach 1e11 in the year 5138; epoch milliseconds passed it in 1973.
MILLISECONDS_FROM = 100_000_000_000

# --- credentials ---------------------------------------------------------------------------

# The Client Secrets that Zoom's Marketplace issues are 32 characters (as seen in practice, not
# a documented rule): a configured secret shorter than that is most likely not the real one.
SECRET_LENGTH = 32

# --- roles ----------------------------------------------------------------------------------

# The roles a token can carry, by name (the policy and the log use these).
ROLES = ("participant", "host")
# The proto's Role -> its name, and -> the integer of the `role` / `role_type` claim.
ROLE_NAMES = {pb.ROLE_PARTICIPANT: "participant", pb.ROLE_HOST: "host"}
ROLE_CLAIM = {pb.ROLE_PARTICIPANT: 0, pb.ROLE_HOST: 1}
# The claim's integer -> the proto's Role, and -> the role's name.
ROLE_OF_CLAIM = {claim: role for role, claim in ROLE_CLAIM.items()}
ROLE_NAME_OF_CLAIM = {claim: ROLE_NAMES[role] for role, claim in ROLE_CLAIM.items()}

# --- the meeting number ---------------------------------------------------------------------

MEETING_NUMBER_DIGITS = 20
MEETING_NUMBER_RULE = (
    f"digits only (at most {MEETING_NUMBER_DIGITS}), without spaces or dashes, e.g. 94843468909"
)


def is_meeting_number(text: str) -> bool:
    """Digits only (ASCII), at most MEETING_NUMBER_DIGITS of them."""
    # isdigit() alone would take other scripts' digits too; ASCII ones are 0-9 only.
    return len(text) <= MEETING_NUMBER_DIGITS and text.isascii() and text.isdigit()


# --- claims ---------------------------------------------------------------------------------

# Meeting SDK: the SDK key (sdkKey; appKey is its older name, written too), and for a web
# token the meeting number and role; a native SDK token has neither.
MEETING_KEY, MEETING_OLD_KEY = "sdkKey", "appKey"
MEETING_NUMBER, MEETING_ROLE = "mn", "role"
MEETING_TIMES = ("iat", "exp", "tokenExp")

# Video SDK: the SDK key, the session name (tpc), the role and the version.
VIDEO_KEY, SESSION_NAME, VIDEO_ROLE, VERSION = "app_key", "tpc", "role_type", "version"
VIDEO_TIMES = ("iat", "exp")
VIDEO_VERSION = 1
SESSION_NAME_LENGTH = 200

# Any of these in the claims says which SDK a token is for.
MEETING_MARKERS = (MEETING_KEY, MEETING_OLD_KEY, MEETING_NUMBER)
VIDEO_MARKERS = (VIDEO_KEY, SESSION_NAME, VIDEO_ROLE)

GEO_REGIONS = frozenset(["AU", "BR", "CA", "CN", "DE", "HK", "IN", "JP", "MX", "NL", "SG", "US"])


class Form(Enum):
    """What an optional claim holds."""

    TEXT = "text"  # a string of at most `max_length` characters; empty means unset
    FLAG = "flag"  # the integer 0 or 1 (an optional bool in the proto)
    REGIONS = "regions"  # GEO_REGIONS, comma-joined (a repeated string in the proto)


# The forms as plain names: Sign tests them for each claim of each call, and a plain
# name is read faster than an Enum's attribute.
TEXT, FLAG, REGIONS = Form.TEXT, Form.FLAG, Form.REGIONS


class OptionalClaim(NamedTuple):
    """A claim Sign writes only when the request sets it; the proto field has its name."""

    name: str
    form: Form
    max_length: int = 0


# In the order Zoom's samples write them, after the required claims.
MEETING_OPTIONAL = (OptionalClaim("video_webrtc_mode", FLAG),)
VIDEO_OPTIONAL = (
    OptionalClaim("user_identity", TEXT, 35),
    OptionalClaim("session_key", TEXT, 36),
    OptionalClaim("telemetry_tracking_id", TEXT, 200),
    OptionalClaim("geo_regions", REGIONS),
    OptionalClaim("cloud_recording_option", FLAG),
    OptionalClaim("cloud_recording_election", FLAG),
    OptionalClaim("video_webrtc_mode", FLAG),
    OptionalClaim("audio_webrtc_mode", FLAG),
)

# Claims Zoom has deprecated (still taken, to be replaced), by SDK: each -> its replacement.
# Video SDK: audio_compatible_mode gave way to audio_webrtc_mode (0 or 1, as before).
DEPRECATED_CLAIMS: dict[Sdk, dict[str, str]] = {
    "meeting": {},
    "video": {"audio_compatible_mode": "audio_webrtc_mode"},
}

# Every claim of each SDK, in the order Sign writes them.
MEETING_CLAIMS = (
    MEETING_OLD_KEY,
    MEETING_KEY,
    MEETING_NUMBER,
    MEETING_ROLE,
    *MEETING_TIMES,
    *(claim.name for claim in MEETING_OPTIONAL),
)
VIDEO_CLAIMS = (
    VIDEO_KEY,
    SESSION_NAME,
    VIDEO_ROLE,
    VERSION,
    *VIDEO_TIMES,
    *(claim.name for claim in VIDEO_OPTIONAL),
)

# --- host starts: the ZAK -------------------------------------------------------------------

# A Zoom user a host start names (SignRequest.start_as): an email address or a user ID, as
# GET /v2/users/{userId}/token takes either. Zoom's email addresses are at most 128
# characters; a user ID is a short string of letters, digits, '-' and '_'. Both go into a
# URL path, so nothing that would end or escape a path segment is allowed.
START_AS_LENGTH = 128
_START_AS = re.compile(r"[A-Za-z0-9._%+\-@']+")
START_AS_RULE = (
    f"a Zoom user's email address or user ID, at most {START_AS_LENGTH} characters of letters, "
    "digits and . _ % + - ' @"
)
# How much longer than the token the ZAK is asked to live (the `ttl` of the ZAK request):
# a ZAK is reused for this long, never handed out with less than the token's lifetime left.
ZAK_REUSE = 60
# The ZAK's lifetime bounds of Zoom's users token endpoint (type=zak): ttl in seconds.
ZAK_MAX_TTL = 7_776_000  # 90 days
# Zoom's error codes that the users token endpoint and the OAuth server answer with.
ZOOM_INVALID_ACCESS_TOKEN = 124  # 401: the access token expired or was revoked
ZOOM_USER_NOT_FOUND = 1001  # 404: no such user on the account
# The scope a Server-to-Server OAuth app needs for a user's ZAK.
ZAK_SCOPE = "user:read:token:admin"


def is_start_as(text: str) -> bool:
    """Whether `text` may name a Zoom user in a host start (START_AS_RULE)."""
    return len(text) <= START_AS_LENGTH and text.isascii() and _START_AS.fullmatch(text) is not None


# --- joins outside the account: user grants and the OBF token --------------------------------
# Zoom's user OAuth (developers.zoom.us/docs/integrations/oauth/): the authorize page, the
# token endpoint's grants, the revoke endpoint; PKCE S256 (RFC 7636).
OAUTH_AUTHORIZE_PATH = "/oauth/authorize"
OAUTH_TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path)
OAUTH_REVOKE_PATH = "/oauth/revoke"
# A begun grant's state lives at most this many seconds, and is used once.
GRANT_STATE_LIFETIME = 600
# Zoom's answer to a refresh token it no longer takes (rotated out, revoked): HTTP 400 or 401
# with OAuth error invalid_grant, invalid_request ("Invalid Token!") or invalid_token.
REFRESH_REFUSED_ERRORS = frozenset({"invalid_grant", "invalid_request", "invalid_token"})
# The OBF token of a user for a meeting (developers.zoom.us/docs/meeting-sdk/auth/obf/):
# GET /v2/users/me/token?type=onbehalf&meeting_id=..., with that user's access token.
OBF_PATH = "/v2/users/me/token"
USER_ME_PATH = "/v2/users/me"
# An OAuth redirect URI: https, or http to loopback (a developer's machine), at most this long.
REDIRECT_URI_LENGTH = 2048


# --- what a log line, a span or an error message shows of a caller's value ------------------

# No whole token (an SDK JWT, a ZAK, an OAuth token) may reach a log line, a span or an error
# message, nor be rebuildable from one. A value a caller sent is shown there only when it has
# its field's shape. Each shape is far shorter than a token's payload and signature together
# (a Meeting SDK token is about 200 characters, its payload at least 100), has no run of
# SIGNATURE_CHARS base64url characters (an HS256 signature's 43: what the soak's log scan
# looks for), and none of the characters that could join a token's segments but a dot (",",
# "%", "\\", white space). Any other value is shown as its length and fingerprint: none of its
# characters, whatever is glued around a token in it. A caller's whole token in a field gets
# the fingerprint its token_fp would have.
SIGNATURE_CHARS = 43
_PART = r"[A-Za-z0-9_]{1,42}"  # a run of a shape: shorter than a signature

# An app's name as a request gives it: a configuration's names are not bound to a charset,
# but a request's are shown only in this one (a log line also shows a configured app's name).
APP_NAME_LENGTH = 40
_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A Zoom user as a log line and a message show it: an email address (a local part without
# "%", dot-joined domain labels) or a user ID (Zoom's are 22 base64url characters), each
# part shorter than a signature. Stricter than START_AS_RULE, which Sign takes.
USER_ID_LENGTH = 32
_USER_ID = re.compile(r"[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._+'-]{1,42}@[A-Za-z0-9-]{1,42}(?:\.[A-Za-z0-9-]{1,42})+")
# A region as a request names it (GEO_REGIONS are two letters).
_REGION = re.compile(r"[A-Za-z]{1,8}")
# A gRPC method path ("/package.Service/Method") a call asked for.
METHOD_PATH_LENGTH = 96
_METHOD_PATH = re.compile(rf"/(?:{_PART}\.)*{_PART}/{_PART}")


def is_app_name(text: str) -> bool:
    """An app's name as a request may show it: at most APP_NAME_LENGTH letters, digits and
    . _ -, starting with a letter or digit."""
    return len(text) <= APP_NAME_LENGTH and text.isascii() and _APP_NAME.fullmatch(text) is not None


def is_zoom_user(text: str) -> bool:
    """A Zoom user as a log line shows it: an email address or a user ID (see _EMAIL)."""
    if len(text) > START_AS_LENGTH or not text.isascii():
        return False
    if "@" in text:
        return _EMAIL.fullmatch(text) is not None
    return len(text) <= USER_ID_LENGTH and _USER_ID.fullmatch(text) is not None


def is_region_name(text: str) -> bool:
    """A region's name as a message shows it: a few letters (GEO_REGIONS have two)."""
    return _REGION.fullmatch(text) is not None


def is_method_path(text: str) -> bool:
    """A gRPC method's path, "/package.Service/Method", of at most METHOD_PATH_LENGTH."""
    return len(text) <= METHOD_PATH_LENGTH and _METHOD_PATH.fullmatch(text) is not None


def shown(value: str, shaped: Callable[[str], bool]) -> str:
    """`value` as a log line or span shows it: itself when empty or `shaped`, else
    placeholder(value)."""
    return value if not value or shaped(value) else placeholder(value)


def quoted(value: str, shaped: Callable[[str], bool]) -> str:
    """`value` as an error message shows it: quoted when `shaped`, else placeholder(value)."""
    return repr(value) if shaped(value) else placeholder(value)


def placeholder(value: str) -> str:
    """What stands for a value of the wrong shape: its length and fingerprint (the one a
    token's token_fp has), none of its characters."""
    return f"<{len(value)} chars, fp {fingerprint(value)}>"
