"""What the diagnose() tests share: the clock, the problem codes, and tokens built by hand.

Pure function calls with a fixed clock; the rules and the catalogue of mistakes are in
docs/zoom-sdk-jwt.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sdksign.server import App, Diagnosis, Problem
from sdksign.v1 import signature_service_pb2 as pb

NOW = 1_790_000_000
MN = "94843468909"  # the meeting number meeting_claims writes
ALL_CODES = {
    value.name.removeprefix("PROBLEM_CODE_")
    for value in pb.ProblemCode.DESCRIPTOR.values
    if value.number != 0
}
KINDS = {"", "meeting_web", "meeting_native", "video", "legacy_signature"}
# A key and secret as an OAuth (or Server-to-Server OAuth) app gives them: not an SDK app here.
OAUTH_KEY = "xYz0AbCdEfGhIjKlMnOpQr"
OAUTH_SECRET = b"oAuthClientSecret0123456789abcdefgh"


def codes(d: Diagnosis) -> set[str]:
    return {p.code for p in d.problems}


def only(d: Diagnosis, code: str) -> Problem:
    """The one problem with `code`."""
    found = [p for p in d.problems if p.code == code]
    assert len(found) == 1, d.problems
    return found[0]


def assert_no_secret(d: Diagnosis, *apps: App) -> None:
    for p in d.problems:
        for app in apps:
            assert app.secret.decode() not in p.message
            assert app.secret.hex() not in p.message


def std_b64(data: bytes) -> str:
    """Standard base64 with padding: Java's Base64.getEncoder(), PHP's base64_encode, C#'s Convert.ToBase64String."""
    return base64.b64encode(data).decode()


def hmac_sha256(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.sha256).digest()


def legacy_signature(key: str, secret: bytes, mn: str, role: int, timestamp_ms: int) -> str:
    """The pre-2023 Web SDK signature, as Zoom's old Node sample generateSignature() wrote it."""
    msg = std_b64(f"{key}{mn}{timestamp_ms}{role}".encode())
    digest = std_b64(hmac_sha256(secret, msg.encode()))
    return std_b64(f"{key}.{mn}.{timestamp_ms}.{role}.{digest}".encode()).rstrip("=")
