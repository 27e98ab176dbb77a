"""Verify: diagnose a Zoom SDK token minted anywhere, reporting every problem found.

Pure: the caller passes the apps to check against and the clock. Zoom's rules are
in zoom.rules; docs/zoom-sdk-jwt.md explains them and the ways real code breaks them.
Messages never hold a secret or the whole token.

diagnose() reads a token in the order a reader would: what it is wrapped in, if
anything (quotes, Bearer, JSON: tokens.wrapped), its shape (three base64url segments of
JSON), its SDK key and app, its signature (whose secret made it: tokens.signature), then
its claims and times.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sdksign.client._limits import MAX_TOKEN_LENGTH
from sdksign.v1 import signature_service_pb2 as pb

from ..access.policy import Caller, in_scope
from ..config.model import App, Config, app_named
from ..errors import FieldViolation, InvalidArgument, unknown_app
from ..zoom.jwt import b64decode_lenient, parse_json
from ..zoom.rules import (
    FLAG,
    GEO_REGIONS,
    MAX_TTL,
    MEETING_KEY,
    MEETING_MARKERS,
    MEETING_NUMBER,
    MEETING_NUMBER_RULE,
    MEETING_OLD_KEY,
    MEETING_OPTIONAL,
    MEETING_ROLE,
    MEETING_TIMES,
    MILLISECONDS_FROM,
    MIN_TTL,
    REGIONS,
    ROLE_NAME_OF_CLAIM,
    SESSION_NAME,
    SESSION_NAME_LENGTH,
    TEXT,
    VERSION,
    VIDEO_KEY,
    VIDEO_MARKERS,
    VIDEO_OPTIONAL,
    VIDEO_ROLE,
    VIDEO_TIMES,
    VIDEO_VERSION,
    OptionalClaim,
    Sdk,
    is_meeting_number,
)
from .signature import Finding, SignatureCheck, find_signer, matching_secret
from .wrapped import AS_SENT, maybe_wrapped, unwrap

# How far in the future `iat` may lie before it is reported (clocks drift).
FUTURE_LEEWAY = 60

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64ANY = re.compile(r"[A-Za-z0-9_+/-]*=*")


class ProblemCode(StrEnum):
    """What is wrong with a token: the proto's ProblemCode without its PROBLEM_CODE_ prefix."""

    NOT_A_JWT = "NOT_A_JWT"
    LEGACY_SIGNATURE = "LEGACY_SIGNATURE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED_ALGORITHM = "UNSUPPORTED_ALGORITHM"
    UNKNOWN_SDK_KEY = "UNKNOWN_SDK_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    MISSING_CLAIM = "MISSING_CLAIM"
    WRONG_CLAIM_TYPE = "WRONG_CLAIM_TYPE"
    TIMESTAMP_IN_MILLISECONDS = "TIMESTAMP_IN_MILLISECONDS"
    EXPIRED = "EXPIRED"
    ISSUED_IN_FUTURE = "ISSUED_IN_FUTURE"
    LIFETIME_TOO_SHORT = "LIFETIME_TOO_SHORT"
    LIFETIME_TOO_LONG = "LIFETIME_TOO_LONG"
    INVALID_ROLE = "INVALID_ROLE"
    KEY_MISMATCH = "KEY_MISMATCH"
    MEETING_MISMATCH = "MEETING_MISMATCH"
    INVALID_CLAIM = "INVALID_CLAIM"
    TOKEN_WRAPPED = "TOKEN_WRAPPED"  # noqa: S105 (a problem's name, not a token)
    SECRET_ENCODING = "SECRET_ENCODING"  # noqa: S105 (a problem's name, not a secret)


class TokenKind(StrEnum):
    """What a token is: the proto's TokenKind without its prefix, lower case; "" when unknown."""

    UNKNOWN = ""
    MEETING_WEB = "meeting_web"
    MEETING_NATIVE = "meeting_native"
    VIDEO = "video"
    LEGACY_SIGNATURE = "legacy_signature"


# The proto's numbers for each, worked out once (a name missing from the proto fails here).
PROBLEM_CODES = {
    code: cast(pb.ProblemCode, pb.ProblemCode.Value(f"PROBLEM_CODE_{code}")) for code in ProblemCode
}
TOKEN_KINDS = {
    kind: cast(pb.TokenKind, pb.TokenKind.Value(f"TOKEN_KIND_{kind.upper() or 'UNSPECIFIED'}"))
    for kind in TokenKind
}
SIGNATURE_CHECKS = {
    check: cast(pb.SignatureCheck, pb.SignatureCheck.Value(f"SIGNATURE_CHECK_{check}"))
    for check in SignatureCheck
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a token: its code, how to fix it, the claim concerned."""

    code: ProblemCode
    message: str
    claim: str = ""


@dataclass
class Diagnosis:
    """What Verify found."""

    problems: list[Problem] = field(default_factory=list)
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    app: App | None = None
    kind: TokenKind = TokenKind.UNKNOWN
    # What checking the signature found; the secret that made it (a fingerprint, never the
    # secret), or when none did, those tried.
    signature: SignatureCheck = SignatureCheck.NOT_CHECKED
    secret_fingerprint: str = ""
    tried_fingerprints: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, code: ProblemCode, message: str, claim: str = "") -> None:
        self.problems.append(Problem(code, message, claim))


def check(request: pb.VerifyRequest, config: Config, now: int, caller: Caller) -> Diagnosis:
    """Validate a VerifyRequest (raises InvalidArgument) and diagnose its token against the
    apps `caller` may verify.

    The other apps are not looked at: their tokens read as an unknown SDK key, as a key
    nobody configured does, none of their secrets is tried, and an `app` naming one is
    refused as an app nobody configured is.
    """
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
    apps = in_scope(caller.rule.verified_apps, config.apps)
    only_app = None
    if request.HasField("app"):
        # An app outside the caller's rule reads as one nobody configured.
        only_app = app_named(apps, request.app)
        if only_app is None:
            violations.append(unknown_app(request.app, [a.name for a in apps]))
    expected = (
        request.expected_meeting_number if request.HasField("expected_meeting_number") else None
    )
    if expected is not None and not is_meeting_number(expected):
        violations.append(
            FieldViolation("expected_meeting_number", f"must be {MEETING_NUMBER_RULE}")
        )
    if violations:
        raise InvalidArgument(violations)
    return diagnose(token, apps, now, only_app=only_app, expected_meeting_number=expected)


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
    if d.problems:
        _hide_secrets(d, [*apps, only_app] if only_app is not None else apps)
    return d


def _hide_secrets(d: Diagnosis, apps: Sequence[App]) -> None:
    """The safety net under every message, and the header and claims shown: a value that
    happens to be a configured secret (an SDK key and secret swapped, say) is never echoed."""
    # Whole, then its first 40 characters (as _show cuts a value short).
    secrets = [
        (text, f"<the secret of app {a.name!r}>")
        for a in apps
        for secret in a.secrets
        if len(secret) >= 8
        for text in dict.fromkeys(
            [secret.decode(errors="ignore"), secret.decode(errors="ignore")[:40]]
        )
    ]
    if not secrets:
        return

    def hide(text: str) -> str:
        for secret, shown in secrets:
            if secret in text:
                text = text.replace(secret, shown)
        return text

    d.problems[:] = [Problem(p.code, hide(p.message), p.claim) for p in d.problems]
    for decoded in (d.header, d.claims):
        if decoded is not None:
            _hide_in(decoded, hide)


def _hide_in(decoded: dict[str, Any], hide: Callable[[str], str]) -> None:
    """Apply `hide` to every string in decoded JSON, keys too, in place and in order; without
    recursion, as JSON may nest a thousand levels deep."""
    stack: list[Any] = [decoded]
    while stack:
        container = stack.pop()
        items = list(container.items()) if isinstance(container, dict) else enumerate(container)
        if isinstance(container, dict):
            container.clear()
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append(value)
            elif isinstance(value, str):
                value = hide(value)
            container[hide(key) if isinstance(key, str) else key] = value


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
            ProblemCode.MALFORMED,
            "the token has leading or trailing white space (a newline?): send it as minted",
        )
    if maybe_wrapped(text):
        text = _unwrapped(text, d)
    segments = text.split(".")
    if len(segments) != 3 or text.startswith("{"):  # JSON holding a token has its dots too
        _not_three_segments(text, segments, d)
        return
    signature = _read_segments(segments, d)
    sdk = None
    if d.claims is not None:
        sdk = _sdk_of(d.claims)
        key = _sdk_key(d.claims, sdk, d)
        if key is not None and sdk is not None:
            d.app = _find_app(key, sdk, apps, only_app, d)
    if signature is not None:  # checked even when the payload is unreadable or its key unknown
        signing_input = f"{segments[0]}.{segments[1]}".encode()
        matched = matching_secret(d.app, signing_input, signature) if d.app else None
        if matched is not None:
            d.signature, d.secret_fingerprint = SignatureCheck.MATCHED, matched
        else:
            pool = apps if only_app is None else (only_app,)
            _check_signature(d, find_signer(signing_input, signature, d.app, pool))
    if d.claims is None:
        return
    if sdk is not None:
        _check_claims(d.claims, sdk, d, now, expected_meeting_number)
    if sdk != "meeting" and expected_meeting_number is not None:
        d.add(
            ProblemCode.MEETING_MISMATCH,
            f"expected a token for meeting {expected_meeting_number}; this is not a Meeting SDK token",
            MEETING_NUMBER,
        )


# --- shape --------------------------------------------------------------------------------


def _unwrapped(text: str, d: Diagnosis) -> str:
    """The token inside whatever `text` is wrapped in; each wrapper is a TOKEN_WRAPPED."""
    inner, layers = unwrap(text)
    for index, message in enumerate(layers):
        d.add(ProblemCode.TOKEN_WRAPPED, message + (AS_SENT if index == 0 else ""))
    return inner


def _read_segments(segments: list[str], d: Diagnosis) -> bytes | None:
    """Set the header and claims (None when unreadable); the HS256 signature to check, if any."""
    header_segment, payload_segment, signature_segment = segments
    d.header = _json_segment(header_segment, "header", d)
    d.claims = _json_segment(payload_segment, "payload", d)
    alg = d.header.get("alg") if d.header is not None else None
    if d.header is not None and alg != "HS256":
        what = "no alg" if alg is None else f"alg {_show(alg)}"
        d.add(
            ProblemCode.UNSUPPORTED_ALGORITHM,
            f"the header has {what}; Zoom accepts only HS256 (HMAC-SHA256 with the SDK secret), "
            "so the signature was not checked",
            "alg",
        )
        return None  # not an HS256 signature: its length or absence says nothing more
    signature = _signature_segment(signature_segment, d)
    return signature if alg == "HS256" else None


def _not_three_segments(text: str, segments: list[str], d: Diagnosis) -> None:
    if not text:
        d.add(ProblemCode.NOT_A_JWT, "the token is empty")
    elif text.startswith("{"):
        d.add(
            ProblemCode.NOT_A_JWT,
            "this is JSON (a response body?), not a token: pass the value of its signature field",
        )
    elif len(segments) == 1 and _one_segment(text, d):
        return
    elif len(segments) == 5:
        d.add(
            ProblemCode.NOT_A_JWT,
            "five segments: this is an encrypted JWE; Zoom needs a signed JWT (three segments)",
        )
    else:
        d.add(
            ProblemCode.NOT_A_JWT,
            f"{len(segments)} segment{'s' if len(segments) != 1 else ''} separated by dots; a "
            "JWT has three: header.payload.signature",
        )


def _one_segment(text: str, d: Diagnosis) -> bool:
    """Report a legacy signature or a lone HS256 signature; False when `text` is neither."""
    legacy = _legacy_signature(text)
    if legacy is not None:
        d.kind = TokenKind.LEGACY_SIGNATURE
        d.claims = legacy
        stamp = _iso(legacy["timestampMs"] // 1000)
        d.add(
            ProblemCode.LEGACY_SIGNATURE,
            f"this is the pre-2023 Web SDK signature, not a JWT: key {_show(legacy['key'])}, "
            f"meeting {legacy['meetingNumber']}, timestamp {legacy['timestampMs']} ms ({stamp}), "
            f"role {legacy['role']}. Current SDKs reject it: mint a Meeting SDK JWT instead",
        )
        return True
    if (len(text) == 43 and _B64URL.fullmatch(text)) or (
        len(text) == 44 and _B64ANY.fullmatch(text) and text.endswith("=")
    ):
        d.add(
            ProblemCode.NOT_A_JWT,
            f"one segment of {len(text)} characters: this looks like an HS256 signature alone. "
            "Return the whole token, header.payload.signature, not only its last segment",
        )
        return True
    return False


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
            ProblemCode.MALFORMED,
            f"the {name} segment has '=' padding; JWT segments are base64url without padding: strip the '='",
        )
    if "+" in segment or "/" in segment:
        d.add(
            ProblemCode.MALFORMED,
            f"the {name} segment is standard base64 ('+' or '/'); JWT segments are base64url: use '-' and '_'",
        )


def _json_segment(segment: str, name: str, d: Diagnosis) -> dict[str, Any] | None:
    if not segment:
        d.add(ProblemCode.MALFORMED, f"the {name} segment is empty")
        return None
    _segment_alphabet(segment, name, d)
    try:
        value = parse_json(b64decode_lenient(segment))
    except ValueError:  # bad base64, bad UTF-8 and bad JSON alike
        d.add(ProblemCode.MALFORMED, f"the {name} segment is not base64url-encoded JSON")
        return None
    except RecursionError:  # e.g. "[[[[…": the parser gives up before the text ends
        d.add(ProblemCode.MALFORMED, f"the {name} segment nests JSON arrays or objects too deeply")
        return None
    if not isinstance(value, dict):
        d.add(ProblemCode.MALFORMED, f"the {name} segment is JSON but not an object")
        return None
    return value


def _signature_segment(segment: str, d: Diagnosis) -> bytes | None:
    if not segment:
        d.add(ProblemCode.BAD_SIGNATURE, "the signature segment is empty: the token is unsigned")
        return None
    _segment_alphabet(segment, "signature", d)
    try:
        signature = b64decode_lenient(segment)
    except ValueError:
        d.add(ProblemCode.MALFORMED, "the signature segment is not base64url")
        return None
    if len(signature) != 32:
        d.add(ProblemCode.BAD_SIGNATURE, f"the signature is {len(signature)} bytes; HS256 gives 32")
        return None
    return signature


# --- keys and signature ---------------------------------------------------------------------


def _sdk_of(claims: dict[str, Any]) -> Sdk | None:
    """Which SDK the claims are for, from the claims only that SDK has; None: neither."""
    if not claims.keys().isdisjoint(MEETING_MARKERS):
        return "meeting"
    if not claims.keys().isdisjoint(VIDEO_MARKERS):
        return "video"
    return None


def _sdk_key(claims: dict[str, Any], sdk: Sdk | None, d: Diagnosis) -> str | None:
    if sdk == "meeting":
        return _meeting_keys(claims, d)
    if sdk == "video":
        return _string_claim(claims, VIDEO_KEY, d, required=True)
    d.add(
        ProblemCode.MISSING_CLAIM,
        f"neither {MEETING_KEY} (Meeting SDK) nor {VIDEO_KEY} (Video SDK) is present, so the "
        "SDK the token is for cannot be told: add the SDK key claim",
        MEETING_KEY,
    )
    return None


def _meeting_keys(claims: dict[str, Any], d: Diagnosis) -> str | None:
    sdk_key = _string_claim(claims, MEETING_KEY, d, required=False)
    app_key = _string_claim(claims, MEETING_OLD_KEY, d, required=False)
    if MEETING_KEY not in claims:
        hint = (
            f"; only the older {MEETING_OLD_KEY} is there: add {MEETING_KEY} with the same value"
            if app_key
            else ""
        )
        d.add(
            ProblemCode.MISSING_CLAIM,
            f"{MEETING_KEY} is required: the SDK key (Client ID) of the Meeting SDK app{hint}",
            MEETING_KEY,
        )
    if sdk_key is not None and app_key is not None and sdk_key != app_key:
        d.add(
            ProblemCode.KEY_MISMATCH,
            f"{MEETING_OLD_KEY} {_show(app_key)} and {MEETING_KEY} {_show(sdk_key)} differ; when "
            "both are present they must be the same SDK key",
            MEETING_OLD_KEY,
        )
    return sdk_key if sdk_key is not None else app_key


def _find_app(
    key: str, sdk: Sdk, apps: Sequence[App], only_app: App | None, d: Diagnosis
) -> App | None:
    """The app whose SDK key `key` is (among `apps`, or `only_app` alone); problems say why none."""
    claim = MEETING_KEY if sdk == "meeting" else VIDEO_KEY
    name = "Meeting SDK" if sdk == "meeting" else "Video SDK"
    owner = _secret_owner(key, apps if only_app is None else (*apps, only_app))
    if owner is not None:  # key and secret swapped: never show the value
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} holds the secret of app {owner.name!r}, not its SDK key: put the SDK key "
            f"(Client ID) in {claim} and use the secret only to sign",
            claim,
        )
        return None
    if only_app is not None and only_app.sdk_key != key:
        message = f"{claim} {_show(key)} is not the SDK key of app {only_app.name!r}"
        d.add(ProblemCode.UNKNOWN_SDK_KEY, message, claim)
        return None
    app = only_app or next((a for a in apps if a.sdk_key == key), None)
    if app is None:
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} {_show(key)} is not the key of any configured {name} app (that this "
            "caller may verify), so the secret that should sign it is not known. "
            f"Keys of OAuth, Server-to-Server OAuth and JWT apps are refused "
            f"by Zoom ('Invalid SDK App Keys', 3712): use the Client ID of a {name} app",
            claim,
        )
    elif app.kind != sdk:
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} {_show(key)} is the key of {app.kind} app {app.name!r}, but this is a {name} token",
            claim,
        )
    return app


def _secret_owner(key: str, apps: Sequence[App]) -> App | None:
    """The app one of whose secrets `key` is (compared in constant time)."""
    raw = key.encode("utf-8", "surrogatepass")
    return next((a for a in apps for secret in a.secrets if hmac.compare_digest(secret, raw)), None)


def _check_signature(d: Diagnosis, found: Finding) -> None:
    """Record what made the signature, a secret of the token's app having failed; a problem
    says what went wrong."""
    d.signature, d.tried_fingerprints = found.check, found.tried
    signer = found.app.name if found.app is not None else ""
    if found.check is SignatureCheck.MATCHED_OTHER_APP:
        d.secret_fingerprint = found.fingerprint
        made = f"the signature was made with the secret of app {signer!r} ({found.fingerprint})"
        if d.app is None:  # the key is unknown, or not only_app's: its problem says so
            _extend_key_problem(d, f"; {made}: for that app, put its SDK key in the token")
            return
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"{made}, but the token carries the SDK key of app {d.app.name!r}: sign with the "
            "Client Secret of the app whose SDK key the token carries",
        )
    elif found.reading is not None:
        d.add(
            ProblemCode.SECRET_ENCODING,
            f"the signature was made with the secret of app {signer!r} ({found.fingerprint}) "
            f"{found.reading.how}: {found.reading.fix}",
        )
    elif found.sdk_key:
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"the token was signed with the SDK key (Client ID) of app {signer!r} as the HMAC "
            "key: sign with the app's Client Secret, and put the SDK key in the token",
        )
    elif d.app is not None:
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"the signature does not match the secret of app {d.app.name!r}: the token was "
            "signed with another secret (the Client Secret of the same Meeting/Video SDK app "
            "is the right one), or its header or payload changed after signing. Secrets "
            f"tried (fingerprints, as the server logs them at start): {', '.join(found.tried)}",
        )
    elif found.tried:
        _extend_key_problem(d, f"; nor does any of the {len(found.tried)} secrets tried sign it")


def _extend_key_problem(d: Diagnosis, text: str) -> None:
    """Add `text` to the message of the problem with the token's SDK key, if there is one."""
    for index in range(len(d.problems) - 1, -1, -1):
        problem = d.problems[index]
        if problem.claim in (MEETING_KEY, VIDEO_KEY) and problem.code in (
            ProblemCode.UNKNOWN_SDK_KEY,
            ProblemCode.MISSING_CLAIM,
        ):
            d.problems[index] = Problem(problem.code, problem.message + text, problem.claim)
            return


# --- claims -----------------------------------------------------------------------------


def _check_claims(
    claims: dict[str, Any], sdk: Sdk, d: Diagnosis, now: int, expected: str | None
) -> None:
    """The claims of `sdk`'s tokens, their times, and the token's kind."""
    if sdk == "meeting":
        web = _meeting_claims(claims, d, expected)
        d.kind = TokenKind.MEETING_WEB if web else TokenKind.MEETING_NATIVE
        _times(claims, d, now, MEETING_TIMES)
    else:
        d.kind = TokenKind.VIDEO
        _video_claims(claims, d)
        _times(claims, d, now, VIDEO_TIMES)


def _meeting_claims(claims: dict[str, Any], d: Diagnosis, expected: str | None) -> bool:
    """Check mn, role and the optional claims; return whether this is a web token."""
    has_mn, has_role = MEETING_NUMBER in claims, MEETING_ROLE in claims
    if has_mn != has_role:
        present, absent = (
            (MEETING_NUMBER, MEETING_ROLE) if has_mn else (MEETING_ROLE, MEETING_NUMBER)
        )
        d.add(
            ProblemCode.MISSING_CLAIM,
            f"{present} is present but {absent} is not: a web token needs both, a native SDK token neither",
            absent,
        )
    mn = _meeting_number(claims, d) if has_mn else None
    if has_role:
        _role(claims, MEETING_ROLE, d)
    _optional_claims(claims, MEETING_OPTIONAL, d)
    if expected is not None:
        if not has_mn:
            d.add(
                ProblemCode.MEETING_MISMATCH,
                f"expected a token for meeting {expected}, but the token has no {MEETING_NUMBER} (a "
                f"native SDK token); the web SDK needs {MEETING_NUMBER} and {MEETING_ROLE}",
                MEETING_NUMBER,
            )
        elif mn is not None and mn != expected:
            d.add(
                ProblemCode.MEETING_MISMATCH,
                f"the token is for meeting {mn}, not {expected}",
                MEETING_NUMBER,
            )
    return has_mn or has_role


def _meeting_number(claims: dict[str, Any], d: Diagnosis) -> str | None:
    """The mn claim as text (a JSON number is allowed); None when it is no number at all."""
    mn = claims[MEETING_NUMBER]
    if isinstance(mn, bool) or not isinstance(mn, str | int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{MEETING_NUMBER} is {_json_type(mn)}; write the meeting number as a string or number of digits",
            MEETING_NUMBER,
        )
        return None
    if isinstance(mn, str) and not (mn.isascii() and mn.isdigit()):
        d.add(
            ProblemCode.INVALID_CLAIM,
            f"{MEETING_NUMBER} {_show(mn)} is not a meeting number: {MEETING_NUMBER_RULE}",
            MEETING_NUMBER,
        )
    return str(mn)


def _video_claims(claims: dict[str, Any], d: Diagnosis) -> None:
    session_name = _string_claim(claims, SESSION_NAME, d, required=True)
    if session_name == "":
        d.add(
            ProblemCode.INVALID_CLAIM, f"{SESSION_NAME} (the session name) is empty", SESSION_NAME
        )
    elif session_name is not None and len(session_name) > SESSION_NAME_LENGTH:
        d.add(
            ProblemCode.INVALID_CLAIM,
            _too_long(SESSION_NAME, session_name, SESSION_NAME_LENGTH),
            SESSION_NAME,
        )
    _role(claims, VIDEO_ROLE, d)
    version = claims.get(VERSION)
    if VERSION not in claims:
        d.add(
            ProblemCode.MISSING_CLAIM, f"{VERSION} is required and must be {VIDEO_VERSION}", VERSION
        )
    elif isinstance(version, bool) or not isinstance(version, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{VERSION} is {_json_type(version)}; write the number {VIDEO_VERSION}",
            VERSION,
        )
    elif version != VIDEO_VERSION:
        d.add(
            ProblemCode.INVALID_CLAIM,
            f"{VERSION} is {version}; it must be {VIDEO_VERSION}",
            VERSION,
        )
    _optional_claims(claims, VIDEO_OPTIONAL, d)


def _optional_claims(
    claims: dict[str, Any], optional: tuple[OptionalClaim, ...], d: Diagnosis
) -> None:
    for name, form, max_length in optional:
        if form is FLAG:
            _flag(claims, name, d)
            continue
        value = _string_claim(claims, name, d, required=False)
        if value is None:
            continue
        if form is TEXT and len(value) > max_length:
            d.add(ProblemCode.INVALID_CLAIM, _too_long(name, value, max_length), name)
        elif form is REGIONS:
            unknown = [r for r in value.split(",") if r not in GEO_REGIONS]
            if unknown:
                d.add(
                    ProblemCode.INVALID_CLAIM,
                    f"{name} has {', '.join(_show(r) for r in unknown[:3])}; allowed, "
                    "comma-joined: " + ",".join(sorted(GEO_REGIONS)),
                    name,
                )


def _too_long(name: str, value: str, limit: int) -> str:
    return f"{name} has {len(value)} characters; at most {limit} are allowed"


def _string_claim(claims: dict[str, Any], name: str, d: Diagnosis, *, required: bool) -> str | None:
    if name not in claims:
        if required:
            d.add(ProblemCode.MISSING_CLAIM, f"{name} is required", name)
        return None
    value = claims[name]
    if not isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {_json_type(value)}; it must be a string",
            name,
        )
        return None
    return value


def _role(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        d.add(ProblemCode.MISSING_CLAIM, f"{name} is required: 0 (participant) or 1 (host)", name)
        return
    value = claims[name]
    if isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is the string {_show(value)}; write it as a number: 0 or 1, no quotes",
            name,
        )
    elif isinstance(value, bool) or not isinstance(value, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {_json_type(value)}; write the integer 0 or 1",
            name,
        )
    elif value not in ROLE_NAME_OF_CLAIM:
        d.add(
            ProblemCode.INVALID_ROLE,
            f"{name} is {value}; Zoom knows 0 (participant) and 1 (host)",
            name,
        )


def _flag(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        return
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {_json_type(value)}; write the integer 0 or 1",
            name,
        )
    elif value not in (0, 1):
        d.add(ProblemCode.INVALID_CLAIM, f"{name} is {value}; only 0 and 1 are allowed", name)


# --- time -------------------------------------------------------------------------------


def _times(claims: dict[str, Any], d: Diagnosis, now: int, names: tuple[str, ...]) -> None:
    seconds = _epoch_seconds(claims, d, names)
    iat, exp = seconds.get("iat"), seconds.get("exp")
    if iat is not None and exp is not None:
        _lifetime(exp - iat, d)
    if iat is not None and iat > now + FUTURE_LEEWAY:
        d.add(
            ProblemCode.ISSUED_IN_FUTURE,
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
            ProblemCode.EXPIRED,
            f"{name}{both} passed {_span(now - value)} ago ({now - value} s, at {_iso(value)}): "
            "mint a fresh token shortly before joining",
            name,
        )


def _epoch_seconds(claims: dict[str, Any], d: Diagnosis, names: tuple[str, ...]) -> dict[str, int]:
    """Each of the time claims `names` that holds epoch seconds; milliseconds are reported."""
    seconds: dict[str, int] = {}
    for name in names:
        value = _epoch(claims, name, d)
        if value is None:
            continue
        if value >= MILLISECONDS_FROM:
            d.add(
                ProblemCode.TIMESTAMP_IN_MILLISECONDS,
                f"{name} is {value}: epoch milliseconds, not seconds; divide by 1000 "
                "(Math.floor(Date.now() / 1000) in JavaScript)",
                name,
            )
        else:
            seconds[name] = value
    return seconds


def _lifetime(life: int, d: Diagnosis) -> None:
    """exp - iat: within Zoom's bounds, and not a lifetime added in milliseconds."""
    if life > MAX_TTL and life % 1000 == 0 and MIN_TTL <= life // 1000 <= MAX_TTL:
        d.add(
            ProblemCode.TIMESTAMP_IN_MILLISECONDS,
            f"exp - iat is {life} s: a lifetime of {life // 1000} s added in milliseconds; "
            f"add seconds (exp = iat + {life // 1000})",
            "exp",
        )
    elif life < MIN_TTL:
        d.add(
            ProblemCode.LIFETIME_TOO_SHORT,
            f"exp - iat is {life} s; Zoom needs at least {MIN_TTL} s (30 min)",
            "exp",
        )
    elif life > MAX_TTL:
        d.add(
            ProblemCode.LIFETIME_TOO_LONG,
            f"exp - iat is {life} s ({_span(life)}); Zoom allows at most {MAX_TTL} s (48 h)",
            "exp",
        )


def _epoch(claims: dict[str, Any], name: str, d: Diagnosis) -> int | None:
    if name not in claims:
        d.add(ProblemCode.MISSING_CLAIM, f"{name} is required: an integer of epoch seconds", name)
        return None
    value = claims[name]
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= -MILLISECONDS_FROM:  # thousands of years back: arithmetic on it is no use
            d.add(
                ProblemCode.INVALID_CLAIM,
                f"{name} is {_show(value)}: not a time in epoch seconds",
                name,
            )
            return None
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # not NaN or huge
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {value}, not an integer: write whole epoch seconds (Math.floor)",
            name,
        )
        return int(value)
    if isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is the string {_show(value)}; write it as a number, no quotes",
            name,
        )
        return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else None
    d.add(
        ProblemCode.WRONG_CLAIM_TYPE,
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
