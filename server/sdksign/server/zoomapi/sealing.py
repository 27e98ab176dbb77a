"""Tokens sealed at rest: every OAuth token (and PKCE verifier) a grant store holds is
encrypted with AES-256-GCM (`cryptography`'s AESGCM) before it leaves the worker.

A sealed value reads `s1.<key id>.<base64url(nonce + ciphertext + tag)>`: the key id is the
first 8 hex digits of the key's SHA-256 (it names the key, it does not give it away), the
nonce 12 random bytes. The associated data is the value's place (app, user ID and field),
so a sealed value copied onto another grant or field does not open.

Rotation: a Sealer has one current key, which seals, and any previous keys, which still
open; a value sealed with a previous key is sealed again with the current one the next time
its grant is written (a refresh), and `stale()` says which values still need it
(docs/join.md, "Rotating the grant key").

Pure (no I/O); never puts a key, a token or a ciphertext in an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..config.keys import KEY_BYTES
from ..config.keys import new_key_text as new_key_text  # where the tests take it from

NONCE_BYTES = 12
VERSION = "s1"


class Unsealable(ValueError):
    """A sealed value that no key of the Sealer opens (another key, or altered)."""


def key_id(key: bytes) -> str:
    """The name of a key in a sealed value: 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


class Sealer:
    """Seals with `key`; opens what `key` or any of `previous` sealed."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        for each in (key, *previous):
            if len(each) != KEY_BYTES:
                raise ValueError(f"a grant key is {KEY_BYTES} bytes")
        self.current = key_id(key)
        self._keys = {key_id(each): AESGCM(each) for each in (*previous, key)}

    def seal(self, plain: str, place: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, plain.encode(), place.encode())
        return f"{VERSION}.{self.current}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, place: str) -> str:
        version, _, rest = sealed.partition(".")
        kid, _, body = rest.partition(".")
        aead = self._keys.get(kid)
        if version != VERSION or aead is None:
            raise Unsealable(f"sealed with a key this server does not have (key id {kid[:8]!r})")
        try:
            data = base64.urlsafe_b64decode(body.encode())
            return aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], place.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise Unsealable(f"a sealed value of {place!r} does not open (altered?)") from None

    @property
    def prefix(self) -> str:
        """How every value the current key seals begins."""
        return f"{VERSION}.{self.current}."

    def stale(self, sealed: str) -> bool:
        """Whether `sealed` was sealed with another key than the current one."""
        return sealed.split(".", 2)[1:2] != [self.current]
