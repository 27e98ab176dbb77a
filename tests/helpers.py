"""Build tokens byte by byte, the way other code (right or wrong) builds them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from sdksign.server.zoom.rules import MEETING_CLAIMS, VIDEO_CLAIMS


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(
    header: dict[str, Any] | str,
    payload: dict[str, Any] | str,
    secret: bytes | None,
    *,
    encode: Any = b64url,
) -> str:
    """header.payload.signature with each part JSON-encoded (unless a str), `encode`d, HMAC-signed."""
    parts = [
        encode(
            (part if isinstance(part, str) else json.dumps(part, separators=(",", ":"))).encode()
        )
        for part in (header, payload)
    ]
    signing_input = ".".join(parts).encode()
    signature = (
        "" if secret is None else encode(hmac.new(secret, signing_input, hashlib.sha256).digest())
    )
    return f"{parts[0]}.{parts[1]}.{signature}"


HS256 = {"alg": "HS256", "typ": "JWT"}

# Every claim either SDK knows, for property tests that mix them.
CLAIM_NAMES = list(dict.fromkeys([*MEETING_CLAIMS, *VIDEO_CLAIMS]))


def meeting_claims(key: str, now: int, **overrides: Any) -> dict[str, Any]:
    """A valid web Meeting SDK payload as Zoom's sample writes it; None in overrides drops a claim."""
    claims: dict[str, Any] = {
        "appKey": key,
        "sdkKey": key,
        "mn": "94843468909",
        "role": 0,
        "iat": now,
        "exp": now + 7200,
        "tokenExp": now + 7200,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def video_claims(key: str, now: int, **overrides: Any) -> dict[str, Any]:
    """A valid Video SDK payload as Zoom's sample writes it; None in overrides drops a claim."""
    claims: dict[str, Any] = {
        "app_key": key,
        "tpc": "math-101",
        "role_type": 1,
        "version": 1,
        "iat": now,
        "exp": now + 7200,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}
