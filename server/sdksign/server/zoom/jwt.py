"""JWT encoding: unpadded base64url segments and an HMAC-SHA256 signature.

The bytes are those PyJWT writes for the same claims (compact JSON, the header's
keys sorted, the payload's in insertion order, non-ASCII escaped); tests hold
that. The header segment never changes, so it is encoded once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import orjson

HEADER = {"alg": "HS256", "typ": "JWT"}


def b64url(data: bytes) -> bytes:
    """Base64url without `=` padding, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64decode_lenient(segment: str) -> bytes:
    """Decode base64url or standard base64, padded or not; raises ValueError otherwise.

    Lenient on purpose: Verify decodes what broken signers write so that it can
    still show the claims, and reports the wrong alphabet or padding itself.
    """
    unpadded = segment.rstrip("=").replace("-", "+").replace("_", "/")
    return binascii.a2b_base64(unpadded + "=" * (-len(unpadded) % 4), strict_mode=True)


def hs256(secret: bytes, signing_input: bytes) -> bytes:
    """The raw HMAC-SHA256 of `signing_input` (header.payload) under `secret`."""
    mac = _keyed(secret).copy()
    mac.update(signing_input)
    return mac.digest()


@functools.lru_cache(maxsize=64)
def _keyed(secret: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with `secret`, to copy for each token.

    Copying it skips what hmac.digest() does on every call (with OpenSSL 3, looking
    up the algorithm and setting up the key), a large part of a token's signing
    time. Only the apps' secrets come here (Verify's wrong readings of them, when
    it explains a bad signature, go through hmac.digest instead, so that a flood of bad
    signatures never pushes a secret out), so a few entries are enough.
    """
    return hmac.new(secret, digestmod=hashlib.sha256)


# PyJWT's JSON: compact separators, ASCII escapes. One encoder, made once.
_JSON = json.JSONEncoder(separators=(",", ":"))
_HEADER_SEGMENT = b64url(json.dumps(HEADER, separators=(",", ":"), sort_keys=True).encode())


def payload_json(payload: Mapping[str, object]) -> bytes:
    """The payload as PyJWT writes it.

    orjson writes the same compact JSON much faster, but it leaves non-ASCII
    characters and DEL (0x7f) unescaped, where the json module writes \\u escapes,
    and refuses integers beyond 64 bits: such a payload goes through the json module.
    """
    try:
        text = orjson.dumps(payload)
        if text.isascii() and b"\x7f" not in text:
            return text
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        pass
    return _JSON.encode(payload).encode()


def encode(payload: Mapping[str, object], secret: bytes) -> str:
    """Return the whole token, header.payload.signature, for `payload` signed with `secret`."""
    body = b64url(payload_json(payload))
    signing_input = _HEADER_SEGMENT + b"." + body
    return (signing_input + b"." + b64url(hs256(secret, signing_input))).decode("ascii")


# What orjson reads exactly as the json module does. A float may be an integer
# beyond 64 bits that orjson rounded.
_EXACT = frozenset([str, int, bool, type(None)])


def parse_json(data: bytes) -> Any:
    """json.loads(data), much faster for what a token's segments usually hold.

    orjson reads a flat object of strings, integers, booleans and nulls exactly
    as the json module does; anything else (floats, nested values, whatever
    orjson refuses) is read by the json module, and raises as json.loads does.
    """
    try:
        value = orjson.loads(data)
        if type(value) is dict and all(type(item) in _EXACT for item in value.values()):
            return value
    except orjson.JSONDecodeError:
        pass
    return json.loads(data)


# Copied for each fingerprint: hashlib.sha256() would look the algorithm up in OpenSSL
# every time, which costs more than hashing a token.
_SHA256 = hashlib.sha256()


def fingerprint(value: str | bytes) -> str:
    """A short, one-way fingerprint (12 hex digits of SHA-256) safe to log in place of a token or secret."""
    digest = _SHA256.copy()
    digest.update(value.encode() if isinstance(value, str) else value)
    return digest.hexdigest()[:12]
