"""Grant keys: 32 random bytes, given as base64 text ([grants] key_env, key_file, key_vault)."""

from __future__ import annotations

import base64
import binascii
import secrets

from ..errors import ConfigError

KEY_BYTES = 32


def new_key_text() -> str:
    """A new random key, as base64 text."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def read_key(text: bytes, where: str) -> bytes:
    """A 32-byte key from its base64 text (standard or URL-safe, padded or not);
    ConfigError naming `where`, never the text, otherwise."""
    raw = text.strip().replace(b"-", b"+").replace(b"_", b"/")
    raw += b"=" * (-len(raw) % 4)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not base64 (32 random bytes, base64)") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where} holds {len(key)} bytes: a grant key is {KEY_BYTES} bytes")
    return key
