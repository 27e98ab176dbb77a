"""A token's shape: the wrapper it came in, its three base64url segments, and the JSON of
its header and payload. Text that is not three segments is named for what it looks like:
empty, JSON, a pre-2023 signature, a signature alone, a JWE."""

from __future__ import annotations

import re
from typing import Any

from ...zoom.jwt import b64decode_lenient, parse_json
from ..wrapped import AS_SENT, unwrap
from .problems import Diagnosis, ProblemCode, TokenKind
from .words import iso, show

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64ANY = re.compile(r"[A-Za-z0-9_+/-]*=*")


def unwrapped(text: str, d: Diagnosis) -> str:
    """The token inside whatever `text` is wrapped in; each wrapper is a TOKEN_WRAPPED."""
    inner, layers = unwrap(text)
    for index, message in enumerate(layers):
        d.add(ProblemCode.TOKEN_WRAPPED, message + (AS_SENT if index == 0 else ""))
    return inner


def read_segments(segments: list[str], d: Diagnosis) -> bytes | None:
    """Set the header and claims (None when unreadable); the HS256 signature to check, if any."""
    header_segment, payload_segment, signature_segment = segments
    d.header = _json_segment(header_segment, "header", d)
    d.claims = _json_segment(payload_segment, "payload", d)
    alg = d.header.get("alg") if d.header is not None else None
    if d.header is not None and alg != "HS256":
        what = "no alg" if alg is None else f"alg {show(alg)}"
        d.add(
            ProblemCode.UNSUPPORTED_ALGORITHM,
            f"the header has {what}; Zoom accepts only HS256 (HMAC-SHA256 with the SDK secret), "
            "so the signature was not checked",
            "alg",
        )
        return None  # not an HS256 signature: its length or absence says nothing more
    signature = _signature_segment(signature_segment, d)
    return signature if alg == "HS256" else None


def not_three_segments(text: str, segments: list[str], d: Diagnosis) -> None:
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
        stamp = iso(legacy["timestampMs"] // 1000)
        d.add(
            ProblemCode.LEGACY_SIGNATURE,
            f"this is the pre-2023 Web SDK signature, not a JWT: key {show(legacy['key'])}, "
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
