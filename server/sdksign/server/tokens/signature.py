"""Verify: which configured secret made a token's HS256 signature, and when none did, how
the signer most likely got the secret wrong.

Pure. matching_secret() tries the secrets of the token's own app: a valid token costs
that, one HMAC. find_signer() runs only when it fails, and tries the rest: the other
apps' secrets, their SDK keys, and the secret turned into bytes the wrong ways C#, Java
and PHP code does. Those readings go through hmac.digest, never into zoom.jwt's cache of
keyed HMACs, so a flood of bad signatures cannot push the real secrets out of it.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from ..config import App
from ..zoom.jwt import b64decode_lenient, hs256


class SignatureCheck(StrEnum):
    """What checking the signature found: the proto's SignatureCheck without its prefix."""

    NOT_CHECKED = "NOT_CHECKED"
    MATCHED = "MATCHED"  # a secret of the token's own app
    MATCHED_OTHER_APP = "MATCHED_OTHER_APP"  # a configured secret, not of the token's app
    MISMATCHED = "MISMATCHED"  # none of the secrets tried


# What to tell the signer when a reading of the secret, not the secret, made the signature.
SIGN_WITH_UTF8 = "sign with the secret's own UTF-8 bytes, exactly as Zoom shows it"


@dataclass(frozen=True)
class Reading:
    """One wrong way to turn the Client Secret into the HMAC key: how a message names it,
    what to do instead, and the key it gives (None when it gives none for this secret)."""

    how: str
    fix: str
    read: Callable[[bytes], bytes | None]


def _base64(secret: bytes) -> bytes | None:
    try:
        return b64decode_lenient(secret.decode("ascii"))
    except ValueError:  # UnicodeDecodeError is one
        return None


def _hex(secret: bytes) -> bytes | None:
    try:
        return binascii.unhexlify(secret)
    except (ValueError, binascii.Error):
        return None


def _text(encoding: str, prefix: bytes = b"") -> Callable[[bytes], bytes | None]:
    def read(secret: bytes) -> bytes | None:
        try:
            return prefix + secret.decode("utf-8").encode(encoding)
        except UnicodeError:
            return None

    return read


def _trimmed(secret: bytes) -> bytes | None:
    trimmed = secret.strip()
    return trimmed if trimmed != secret else None


# In the order they are tried. Each is one HMAC per secret of the token's app, on failure only.
READINGS = (
    Reading(
        "base64-decoded (as C# Convert.FromBase64String, Java Base64.getDecoder().decode and "
        "PHP base64_decode do)",
        SIGN_WITH_UTF8,
        _base64,
    ),
    Reading(
        "hex-decoded (as jsrsasign does to a secret of hex digits, and C# Convert.FromHexString "
        "or PHP hex2bin do)",
        SIGN_WITH_UTF8,
        _hex,
    ),
    Reading(
        "encoded as UTF-16LE (C# Encoding.Unicode.GetBytes)", SIGN_WITH_UTF8, _text("utf-16-le")
    ),
    Reading(
        "encoded as UTF-16BE (C# Encoding.BigEndianUnicode, Java getBytes(UTF_16BE))",
        SIGN_WITH_UTF8,
        _text("utf-16-be"),
    ),
    Reading(
        'encoded as UTF-16 with a byte-order mark (Java getBytes("UTF-16"))',
        SIGN_WITH_UTF8,
        _text("utf-16-be", b"\xfe\xff"),
    ),
    Reading("encoded as UTF-32 (C# Encoding.UTF32.GetBytes)", SIGN_WITH_UTF8, _text("utf-32-le")),
    Reading(
        "with a newline after it (read from a file or a prompt without trimming)",
        SIGN_WITH_UTF8,
        lambda secret: secret + b"\n",
    ),
    Reading(
        "with CR LF after it (read from a Windows file without trimming)",
        SIGN_WITH_UTF8,
        lambda secret: secret + b"\r\n",
    ),
    Reading(
        "with the white space around it trimmed",
        "the signer is right: the configured secret has white space around it (a newline in "
        "its environment variable?); remove it from the configuration",
        _trimmed,
    ),
)


class Finding(NamedTuple):
    """What made the signature. `app` and `fingerprint` are the app and secret concerned (the
    one that matched, or was read wrongly, or whose SDK key signed); `reading` is set for
    SECRET_ENCODING, `sdk_key` when the app's SDK key was the HMAC key."""

    check: SignatureCheck
    app: App | None = None
    fingerprint: str = ""
    tried: tuple[str, ...] = ()
    reading: Reading | None = None
    sdk_key: bool = False


NOT_CHECKED = Finding(SignatureCheck.NOT_CHECKED)


def find_signer(
    signing_input: bytes, signature: bytes, own: App | None, others: Sequence[App]
) -> Finding:
    """Which secret made `signature`, once none of `own`'s (the token's app; see
    matching_secret) did: one of `others`'; else a reading of `own`'s secrets, or any tried
    app's SDK key."""
    rest = [app for app in others if app is not own]
    pool = [own, *rest] if own is not None else rest
    if not pool:
        return NOT_CHECKED
    for app in rest:
        found = matching_secret(app, signing_input, signature)
        if found is not None:
            return Finding(SignatureCheck.MATCHED_OTHER_APP, app, found)
    tried = tuple(fp for app in pool for fp in app.secret_fingerprints)
    return _misread(pool, own, signing_input, signature, tried)


def matching_secret(app: App, signing_input: bytes, signature: bytes) -> str | None:
    """The fingerprint of `app`'s secret that made `signature`, or None: all a valid token
    costs (one HMAC), before find_signer."""
    for secret, fingerprint in zip(app.secrets, app.secret_fingerprints, strict=True):
        if hmac.compare_digest(hs256(secret, signing_input), signature):
            return fingerprint
    return None


def _misread(
    pool: Sequence[App],
    own: App | None,
    signing_input: bytes,
    signature: bytes,
    tried: tuple[str, ...],
) -> Finding:
    """MISMATCHED, with what made the signature when it is a reading of `own`'s secrets or
    an SDK key of `pool` (a signer that swapped the key and the secret)."""
    if own is not None:
        for secret, fingerprint in zip(own.secrets, own.secret_fingerprints, strict=True):
            for reading in READINGS:
                key = reading.read(secret)
                if key is not None and _signs(key, signing_input, signature):
                    return Finding(SignatureCheck.MISMATCHED, own, fingerprint, tried, reading)
    for app in pool:
        if _signs(app.sdk_key.encode(), signing_input, signature):
            return Finding(SignatureCheck.MISMATCHED, app, "", tried, sdk_key=True)
    return Finding(SignatureCheck.MISMATCHED, tried=tried)


def _signs(key: bytes, signing_input: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(hmac.digest(key, signing_input, "sha256"), signature)
