"""Verify: diagnose a Zoom SDK token minted anywhere, reporting every problem found.

Pure: the caller passes the apps to check against and the clock. The codes are
the suffixes of the proto's ProblemCode; the rules and the ways real code breaks
them are in ../shared/docs/zoom-sdk-jwt.md. Messages never hold a secret or the
whole token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sdksign.v1 import signature_service_pb2 as pb

from ._claims import GEO_REGIONS, is_meeting_number, unknown_app
from ._config import App, Config
from ._errors import FieldViolation, InvalidArgument
from ._tokens import b64decode_lenient, hs256, parse_json
from ._zoom import MAX_TTL, MIN_TTL

# Epoch seconds reach 1e11 in the year 5138; epoch milliseconds passed it in 1973.
MILLISECONDS_FROM = 100_000_000_000
# How far in the future `iat` may lie before it is reported (clocks drift).
FUTURE_LEEWAY = 60
MAX_TOKEN_LENGTH = 8192

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64ANY = re.compile(r"[A-Za-z0-9_+/-]*=*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a token: a ProblemCode suffix, how to fix it, the claim concerned."""

    code: str
    message: str
    claim: str = ""


@dataclass
class Diagnosis:
    """What Verify found. `kind` is "meeting_web", "meeting_native", "video", "legacy_signature" or ""."""

    problems: list[Problem] = field(default_factory=list)
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    app: App | None = None
    kind: str = ""
    # Which of the app's secrets the signature matched (a fingerprint, never the secret).
    secret_fingerprint: str = ""

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, code: str, message: str, claim: str = "") -> None:
        self.problems.append(Problem(code, message, claim))


def check(request: pb.VerifyRequest, config: Config, now: int) -> Diagnosis:
    """Validate a VerifyRequest (raises InvalidArgument) and diagnose its token."""
    violations = []
    token = request.token
    if not token:
        violations.append(
            FieldViolation("token", "is required: the whole token, header.payload.signature")
        )
    elif len(token) > MAX_TOKEN_LENGTH:
        violations.append(
            FieldViolation(
                "token", f"has {len(token)} characters; at most {MAX_TOKEN_LENGTH} are allowed"
            )
        )
    only_app = None
    if request.HasField("app"):
        only_app = config.app_named(request.app)
        if only_app is None:
            violations.append(unknown_app(request.app, config))
    expected = (
        request.expected_meeting_number if request.HasField("expected_meeting_number") else None
    )
    if expected is not None and not is_meeting_number(expected):
        violations.append(
            FieldViolation(
                "expected_meeting_number", "must be digits only (at most 20), e.g. 94843468909"
            )
        )
    if violations:
        raise InvalidArgument(violations)
    return diagnose(token, config.apps, now, only_app=only_app, expected_meeting_number=expected)


def diagnose(
    token: str,
    apps: Sequence[App],
    now: int,
    *,
    only_app: App | None = None,
    expected_meeting_number: str | None = None,
) -> Diagnosis:
    """Diagnose `token` against `apps` (or `only_app` alone) at epoch second `now`."""
    d = Diagnosis()
    _diagnose(d, token, apps, now, only_app, expected_meeting_number)
    # The safety net under every message: a claim value that happens to be a
    # configured secret (an SDK key and secret swapped, say) is never echoed.
    if not d.problems:
        return d
    known = [*apps, only_app] if only_app is not None else apps
    secrets = [
        (secret.decode(errors="ignore"), a.name)
        for a in known
        for secret in a.secrets
        if len(secret) >= 8
    ]
    for index, problem in enumerate(d.problems):
        for secret, name in secrets:
            if secret[:40] in problem.message:
                message = problem.message.replace(secret[:40], f"<the secret of app {name!r}>")
                d.problems[index] = problem = Problem(problem.code, message, problem.claim)
    return d


def _diagnose(
    d: Diagnosis,
    token: str,
    apps: Sequence[App],
    now: int,
    only_app: App | None,
    expected_meeting_number: str | None,
) -> None:
    text = token.strip()
    if text != token:
        d.add(
            "MALFORMED",
            "the token has leading or trailing white space (a newline?): send it as minted",
        )
    segments = text.split(".")
    if len(segments) != 3 or text.startswith("{"):  # JSON holding a token has its dots too
        _not_three_segments(text, segments, d)
        return

    header_segment, payload_segment, signature_segment = segments
    d.header = _json_segment(header_segment, "header", d)
    d.claims = _json_segment(payload_segment, "payload", d)
    alg = d.header.get("alg") if d.header is not None else None
    if d.header is not None and alg != "HS256":
        what = "no alg" if alg is None else f"alg {_show(alg)}"
        d.add(
            "UNSUPPORTED_ALGORITHM",
            f"the header has {what}; Zoom accepts only HS256 (HMAC-SHA256 with the SDK secret), "
            "so the signature was not checked",
            "alg",
        )
        signature = None  # not an HS256 signature: its length or absence says nothing more
    else:
        signature = _signature_segment(signature_segment, d)
    if d.claims is None:
        return

    claims = d.claims
    kind = _token_kind(claims)
    if kind == "meeting":
        key = _meeting_keys(claims, d)
    elif kind == "video":
        key = _string_claim(claims, "app_key", d, required=True)
    else:
        d.add(
            "MISSING_CLAIM",
            "neither sdkKey (Meeting SDK) nor app_key (Video SDK) is present, so the SDK the "
            "token is for cannot be told: add the SDK key claim",
            "sdkKey",
        )
        key = None

    if key is not None:
        d.app = _find_app(key, kind, apps, only_app, d)
    if d.app is not None and alg == "HS256" and signature is not None:
        signing_input = f"{header_segment}.{payload_segment}".encode()
        matched = next(
            (
                secret_fingerprint
                for secret, secret_fingerprint in zip(
                    d.app.secrets, d.app.secret_fingerprints, strict=True
                )
                if hmac.compare_digest(hs256(secret, signing_input), signature)
            ),
            None,
        )
        if matched is not None:
            d.secret_fingerprint = matched
        else:
            d.add(
                "BAD_SIGNATURE",
                f"the signature does not match the secret of app {d.app.name!r}: the token was "
                "signed with another secret (the Client Secret of the same Meeting/Video SDK app "
                "is the right one), or its header or payload changed after signing"
                + _secret_read_wrongly(d.app.secret, signing_input, signature),
            )

    if kind == "meeting":
        web = _meeting_claims(claims, d, expected_meeting_number)
        d.kind = "meeting_web" if web else "meeting_native"
        _times(claims, d, now, ("iat", "exp", "tokenExp"))
    elif kind == "video":
        d.kind = "video"
        _video_claims(claims, d)
        _times(claims, d, now, ("iat", "exp"))
    if kind != "meeting" and expected_meeting_number is not None:
        d.add(
            "MEETING_MISMATCH",
            f"expected a token for meeting {expected_meeting_number}; this is not a Meeting SDK token",
            "mn",
        )


# --- shape --------------------------------------------------------------------------------


def _not_three_segments(text: str, segments: list[str], d: Diagnosis) -> None:
    if not text:
        d.add("NOT_A_JWT", "the token is empty")
        return
    if text.startswith("{"):
        d.add(
            "NOT_A_JWT",
            "this is JSON (a response body?), not a token: pass the value of its signature field",
        )
        return
    if len(segments) == 1:
        legacy = _legacy_signature(text)
        if legacy is not None:
            d.kind = "legacy_signature"
            d.claims = legacy
            stamp = _iso(legacy["timestampMs"] // 1000)
            d.add(
                "LEGACY_SIGNATURE",
                f"this is the pre-2023 Web SDK signature, not a JWT: key {_show(legacy['key'])}, "
                f"meeting {legacy['meetingNumber']}, timestamp {legacy['timestampMs']} ms ({stamp}), "
                f"role {legacy['role']}. Current SDKs reject it: mint a Meeting SDK JWT instead",
            )
            return
        if (len(text) == 43 and _B64URL.fullmatch(text)) or (
            len(text) == 44 and _B64ANY.fullmatch(text) and text.endswith("=")
        ):
            d.add(
                "NOT_A_JWT",
                f"one segment of {len(text)} characters: this looks like an HS256 signature alone. "
                "Return the whole token, header.payload.signature, not only its last segment",
            )
            return
    if len(segments) == 5:
        d.add(
            "NOT_A_JWT",
            "five segments: this is an encrypted JWE; Zoom needs a signed JWT (three segments)",
        )
        return
    d.add(
        "NOT_A_JWT",
        f"{len(segments)} segment{'s' if len(segments) != 1 else ''} separated by dots; a JWT has "
        "three: header.payload.signature",
    )


def _legacy_signature(text: str) -> dict[str, Any] | None:
    """The fields of a pre-2023 signature: base64("key.mn.timestampMs.role.base64(hmac)")."""
    try:
        parts = b64decode_lenient(text).decode("ascii").split(".")
    except (ValueError, UnicodeDecodeError):
        return None
    if len(parts) != 5:
        return None
    key, number, stamp, role, _ = parts
    if not (
        key and number.isdigit() and stamp.isdigit() and len(stamp) < 16 and role in ("0", "1")
    ):
        return None
    return {"key": key, "meetingNumber": number, "timestampMs": int(stamp), "role": int(role)}


def _segment_alphabet(segment: str, name: str, d: Diagnosis) -> None:
    if "=" in segment:
        d.add(
            "MALFORMED",
            f"the {name} segment has '=' padding; JWT segments are base64url without padding: strip the '='",
        )
    if "+" in segment or "/" in segment:
        d.add(
            "MALFORMED",
            f"the {name} segment is standard base64 ('+' or '/'); JWT segments are base64url: use '-' and '_'",
        )


def _json_segment(segment: str, name: str, d: Diagnosis) -> dict[str, Any] | None:
    if not segment:
        d.add("MALFORMED", f"the {name} segment is empty")
        return None
    _segment_alphabet(segment, name, d)
    try:
        value = parse_json(b64decode_lenient(segment))
    except ValueError:  # bad base64, bad UTF-8 and bad JSON alike
        d.add("MALFORMED", f"the {name} segment is not base64url-encoded JSON")
        return None
    except RecursionError:  # e.g. "[[[[…": the parser gives up before the text ends
        d.add("MALFORMED", f"the {name} segment nests JSON arrays or objects too deeply")
        return None
    if not isinstance(value, dict):
        d.add("MALFORMED", f"the {name} segment is JSON but not an object")
        return None
    return value


def _signature_segment(segment: str, d: Diagnosis) -> bytes | None:
    if not segment:
        d.add("BAD_SIGNATURE", "the signature segment is empty: the token is unsigned")
        return None
    _segment_alphabet(segment, "signature", d)
    try:
        signature = b64decode_lenient(segment)
    except ValueError:
        d.add("MALFORMED", "the signature segment is not base64url")
        return None
    if len(signature) != 32:
        d.add("BAD_SIGNATURE", f"the signature is {len(signature)} bytes; HS256 gives 32")
        return None
    return signature


def _secret_read_wrongly(secret: bytes, signing_input: bytes, signature: bytes) -> str:
    """A hint when the token was signed with the right secret read the wrong way."""
    readings = {
        "as hex (jsrsasign reads a secret that looks like hex that way)": binascii.unhexlify,
        "as base64 (e.g. Convert.FromBase64String)": base64.b64decode,
    }
    for how, read in readings.items():
        try:
            key = read(secret)
        except (ValueError, binascii.Error):
            continue
        if hmac.compare_digest(hs256(key, signing_input), signature):
            return f". It was signed with the secret decoded {how}: sign with the secret's own UTF-8 bytes"
    return ""


# --- keys -------------------------------------------------------------------------------


def _token_kind(claims: dict[str, Any]) -> str:
    if "sdkKey" in claims or "appKey" in claims or "mn" in claims:
        return "meeting"
    if "app_key" in claims or "tpc" in claims or "role_type" in claims:
        return "video"
    return ""


def _meeting_keys(claims: dict[str, Any], d: Diagnosis) -> str | None:
    sdk_key = _string_claim(claims, "sdkKey", d, required=False)
    app_key = _string_claim(claims, "appKey", d, required=False)
    if "sdkKey" not in claims:
        hint = "; only the older appKey is there: add sdkKey with the same value" if app_key else ""
        d.add(
            "MISSING_CLAIM",
            f"sdkKey is required: the SDK key (Client ID) of the Meeting SDK app{hint}",
            "sdkKey",
        )
    if sdk_key is not None and app_key is not None and sdk_key != app_key:
        d.add(
            "KEY_MISMATCH",
            f"appKey {_show(app_key)} and sdkKey {_show(sdk_key)} differ; when both are present "
            "they must be the same SDK key",
            "appKey",
        )
    return sdk_key if sdk_key is not None else app_key


def _find_app(
    key: str, kind: str, apps: Sequence[App], only_app: App | None, d: Diagnosis
) -> App | None:
    claim = "sdkKey" if kind == "meeting" else "app_key"
    sdk = "Meeting SDK" if kind == "meeting" else "Video SDK"
    app: App | None
    candidates = apps if only_app is None else (*apps, only_app)
    raw = key.encode("utf-8", "surrogatepass")
    owner = next(
        (a for a in candidates for secret in a.secrets if hmac.compare_digest(secret, raw)), None
    )
    if owner is not None:  # key and secret swapped: never show the value
        d.add(
            "UNKNOWN_SDK_KEY",
            f"{claim} holds the secret of app {owner.name!r}, not its SDK key: put the SDK key "
            f"(Client ID) in {claim} and use the secret only to sign",
            claim,
        )
        return None
    if only_app is not None:
        if only_app.sdk_key != key:
            d.add(
                "UNKNOWN_SDK_KEY",
                f"{claim} {_show(key)} is not the SDK key of app {only_app.name!r}",
                claim,
            )
            return None
        app = only_app
    else:
        app = next((a for a in apps if a.sdk_key == key), None)
        if app is None:
            d.add(
                "UNKNOWN_SDK_KEY",
                f"{claim} {_show(key)} is not the key of any configured {sdk} app, so the signature "
                f"cannot be checked. Keys of OAuth, Server-to-Server OAuth and JWT apps are refused "
                f"by Zoom ('Invalid SDK App Keys', 3712): use the Client ID of a {sdk} app",
                claim,
            )
            return None
    if app.kind != kind:
        d.add(
            "UNKNOWN_SDK_KEY",
            f"{claim} {_show(key)} is the key of {app.kind} app {app.name!r}, but this is a {sdk} token",
            claim,
        )
    return app


# --- claims -----------------------------------------------------------------------------


def _meeting_claims(claims: dict[str, Any], d: Diagnosis, expected: str | None) -> bool:
    """Check mn, role and the flags; return whether this is a web token."""
    has_mn, has_role = "mn" in claims, "role" in claims
    if has_mn != has_role:
        present, absent = ("mn", "role") if has_mn else ("role", "mn")
        d.add(
            "MISSING_CLAIM",
            f"{present} is present but {absent} is not: a web token needs both, a native SDK token neither",
            absent,
        )
    mn = claims.get("mn")
    if has_mn:
        if isinstance(mn, bool) or not isinstance(mn, str | int):
            d.add(
                "WRONG_CLAIM_TYPE",
                f"mn is {_json_type(mn)}; write the meeting number as a string or number of digits",
                "mn",
            )
            mn = None
        elif isinstance(mn, str) and not (mn.isascii() and mn.isdigit()):
            d.add(
                "INVALID_CLAIM",
                f"mn {_show(mn)} is not a meeting number: digits only, no spaces or dashes",
                "mn",
            )
    if has_role:
        _role(claims, "role", d)
    _flag(claims, "video_webrtc_mode", d)
    if expected is not None:
        if not has_mn:
            d.add(
                "MEETING_MISMATCH",
                f"expected a token for meeting {expected}, but the token has no mn (a native SDK "
                "token); the web SDK needs mn and role",
                "mn",
            )
        elif mn is not None and str(mn) != expected:
            d.add("MEETING_MISMATCH", f"the token is for meeting {mn}, not {expected}", "mn")
    return has_mn or has_role


def _video_claims(claims: dict[str, Any], d: Diagnosis) -> None:
    limits = {"tpc": 200, "user_identity": 35, "session_key": 36, "telemetry_tracking_id": 200}
    for name, limit in limits.items():
        value = _string_claim(claims, name, d, required=name == "tpc")
        if value is not None and len(value) > limit:
            d.add(
                "INVALID_CLAIM",
                f"{name} has {len(value)} characters; at most {limit} are allowed",
                name,
            )
        elif name == "tpc" and value == "":
            d.add("INVALID_CLAIM", "tpc (the session name) is empty", name)
    _role(claims, "role_type", d)
    version = claims.get("version")
    if "version" not in claims:
        d.add("MISSING_CLAIM", "version is required and must be 1", "version")
    elif isinstance(version, bool) or not isinstance(version, int):
        d.add(
            "WRONG_CLAIM_TYPE", f"version is {_json_type(version)}; write the number 1", "version"
        )
    elif version != 1:
        d.add("INVALID_CLAIM", f"version is {version}; it must be 1", "version")
    regions = _string_claim(claims, "geo_regions", d, required=False)
    if regions is not None:
        unknown = [r for r in regions.split(",") if r not in GEO_REGIONS]
        if unknown:
            d.add(
                "INVALID_CLAIM",
                f"geo_regions has {', '.join(_show(r) for r in unknown[:3])}; allowed, comma-joined: "
                + ",".join(sorted(GEO_REGIONS)),
                "geo_regions",
            )
    for name in (
        "cloud_recording_option",
        "cloud_recording_election",
        "video_webrtc_mode",
        "audio_webrtc_mode",
    ):
        _flag(claims, name, d)


def _string_claim(claims: dict[str, Any], name: str, d: Diagnosis, *, required: bool) -> str | None:
    if name not in claims:
        if required:
            d.add("MISSING_CLAIM", f"{name} is required", name)
        return None
    value = claims[name]
    if not isinstance(value, str):
        d.add("WRONG_CLAIM_TYPE", f"{name} is {_json_type(value)}; it must be a string", name)
        return None
    return value


def _role(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        d.add("MISSING_CLAIM", f"{name} is required: 0 (participant) or 1 (host)", name)
        return
    value = claims[name]
    if isinstance(value, str):
        d.add(
            "WRONG_CLAIM_TYPE",
            f"{name} is the string {_show(value)}; write it as a number: 0 or 1, no quotes",
            name,
        )
    elif isinstance(value, bool) or not isinstance(value, int):
        d.add("WRONG_CLAIM_TYPE", f"{name} is {_json_type(value)}; write the integer 0 or 1", name)
    elif value not in (0, 1):
        d.add("INVALID_ROLE", f"{name} is {value}; Zoom knows 0 (participant) and 1 (host)", name)


def _flag(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        return
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        d.add("WRONG_CLAIM_TYPE", f"{name} is {_json_type(value)}; write the integer 0 or 1", name)
    elif value not in (0, 1):
        d.add("INVALID_CLAIM", f"{name} is {value}; only 0 and 1 are allowed", name)


# --- time -------------------------------------------------------------------------------


def _times(claims: dict[str, Any], d: Diagnosis, now: int, names: tuple[str, ...]) -> None:
    seconds: dict[str, int] = {}
    for name in names:
        value = _epoch(claims, name, d)
        if value is None:
            continue
        if value >= MILLISECONDS_FROM:
            d.add(
                "TIMESTAMP_IN_MILLISECONDS",
                f"{name} is {value}: epoch milliseconds, not seconds; divide by 1000 "
                "(Math.floor(Date.now() / 1000) in JavaScript)",
                name,
            )
        else:
            seconds[name] = value

    iat, exp = seconds.get("iat"), seconds.get("exp")
    if iat is not None and exp is not None:
        life = exp - iat
        if life > MAX_TTL and life % 1000 == 0 and MIN_TTL <= life // 1000 <= MAX_TTL:
            d.add(
                "TIMESTAMP_IN_MILLISECONDS",
                f"exp - iat is {life} s: a lifetime of {life // 1000} s added in milliseconds; "
                f"add seconds (exp = iat + {life // 1000})",
                "exp",
            )
        elif life < MIN_TTL:
            d.add(
                "LIFETIME_TOO_SHORT",
                f"exp - iat is {life} s; Zoom needs at least {MIN_TTL} s (30 min)",
                "exp",
            )
        elif life > MAX_TTL:
            d.add(
                "LIFETIME_TOO_LONG",
                f"exp - iat is {life} s ({_span(life)}); Zoom allows at most {MAX_TTL} s (48 h)",
                "exp",
            )
    if iat is not None and iat > now + FUTURE_LEEWAY:
        d.add(
            "ISSUED_IN_FUTURE",
            f"iat lies {_span(iat - now)} ({iat - now} s) in the future: the signing server's clock "
            "runs ahead; sync it, and issue with iat a little in the past (now - 30 s)",
            "iat",
        )
    for name in ("exp", "tokenExp"):
        value = seconds.get(name)
        if value is None or value > now or (name == "tokenExp" and value == exp):
            continue
        both = " (and tokenExp)" if name == "exp" and seconds.get("tokenExp") == value else ""
        d.add(
            "EXPIRED",
            f"{name}{both} passed {_span(now - value)} ago ({now - value} s, at {_iso(value)}): "
            "mint a fresh token shortly before joining",
            name,
        )


def _epoch(claims: dict[str, Any], name: str, d: Diagnosis) -> int | None:
    if name not in claims:
        d.add("MISSING_CLAIM", f"{name} is required: an integer of epoch seconds", name)
        return None
    value = claims[name]
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= -MILLISECONDS_FROM:  # thousands of years back: arithmetic on it is no use
            d.add("INVALID_CLAIM", f"{name} is {_show(value)}: not a time in epoch seconds", name)
            return None
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # not NaN or huge
        d.add(
            "WRONG_CLAIM_TYPE",
            f"{name} is {value}, not an integer: write whole epoch seconds (Math.floor)",
            name,
        )
        return int(value)
    if isinstance(value, str):
        d.add(
            "WRONG_CLAIM_TYPE",
            f"{name} is the string {_show(value)}; write it as a number, no quotes",
            name,
        )
        return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else None
    d.add(
        "WRONG_CLAIM_TYPE",
        f"{name} is {_json_type(value)}; it must be an integer of epoch seconds",
        name,
    )
    return None


# --- words --------------------------------------------------------------------------------


def _show(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    return "an array" if isinstance(value, list) else "an object"


def _span(seconds: int) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours // 24} days"


def _iso(epoch: int) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "out of range"
