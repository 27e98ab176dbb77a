"""diagnose(): the token's shape (NOT_A_JWT, LEGACY_SIGNATURE, MALFORMED, UNSUPPORTED_ALGORITHM)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import jwt
import pytest

from sdksign.server import App, diagnose, encode
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, b64url, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import (
    MN,
    NOW,
    assert_no_secret,
    codes,
    hmac_sha256,
    legacy_signature,
    only,
    std_b64,
)

# --- NOT_A_JWT ------------------------------------------------------------------------------


def test_signature_segment_alone_is_not_a_jwt(meeting_app: App) -> None:
    # A C# helper built header and payload, signed them, then did `return signature;`.
    whole = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    signature = whole.split(".")[2]
    assert len(signature) == 43
    d = diagnose(signature, [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"}
    message = only(d, "NOT_A_JWT").message
    assert "43 characters" in message and "header.payload.signature" in message
    assert d.claims is None and d.kind == ""


def test_standard_base64_signature_alone_is_not_a_jwt(meeting_app: App) -> None:
    # The same mistake with Convert.ToBase64String(hmac.ComputeHash(...)): 44 characters, '=' padded.
    signing_input = b64url(json.dumps(HS256).encode()) + "." + b64url(b'{"sdkKey":"k"}')
    signature = std_b64(hmac_sha256(meeting_app.secret, signing_input.encode()))
    assert len(signature) == 44 and signature.endswith("=")
    d = diagnose(signature, [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"}
    assert "44 characters" in only(d, "NOT_A_JWT").message


def test_two_segments_is_not_a_jwt(meeting_app: App) -> None:
    header, payload, _ = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret).split(".")
    d = diagnose(f"{header}.{payload}", [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"}
    assert "2 segments" in only(d, "NOT_A_JWT").message


def test_pasted_json_response_body_is_unwrapped(meeting_app: App) -> None:
    # The body Zoom's auth endpoint sample answers with: the token inside is named and read.
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    body = json.dumps({"signature": token, "sdkKey": MEETING_KEY})
    d = diagnose(body, [meeting_app], NOW)
    assert codes(d) == {"TOKEN_WRAPPED"}
    message = only(d, "TOKEN_WRAPPED").message
    assert "JSON object" in message and '"signature" field' in message
    assert token not in message
    assert d.app == meeting_app and d.kind == "meeting_web"


def test_json_without_a_token_is_not_a_jwt(meeting_app: App) -> None:
    for body in ('{"error": "forbidden"}', '{"signature": 5}', '{"a": "x.y.z", "b": "p.q.r"}'):
        d = diagnose(body, [meeting_app], NOW)
        assert codes(d) == {"NOT_A_JWT"} and "JSON" in d.problems[0].message, body


def test_empty_and_encrypted_tokens_are_not_jwts(meeting_app: App) -> None:
    assert [p.code for p in diagnose("", [meeting_app], NOW).problems] == ["NOT_A_JWT"]
    d = diagnose("a.b.c.d.e", [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"} and "JWE" in d.problems[0].message


# --- LEGACY_SIGNATURE -----------------------------------------------------------------------


@pytest.mark.parametrize("role", [0, 1])
def test_legacy_web_sdk_signature_is_decoded(meeting_app: App, role: int) -> None:
    key, secret = "LegacyJwtAppKey123456", b"LegacyJwtAppSecret0123456789abcdefgh"
    timestamp_ms = NOW * 1000 - 30000
    token = legacy_signature(key, secret, MN, role, timestamp_ms)
    assert "." not in token and not token.endswith("=")
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"LEGACY_SIGNATURE"}
    assert d.kind == "legacy_signature"
    assert d.claims == {"key": key, "meetingNumber": MN, "timestampMs": timestamp_ms, "role": role}
    message = only(d, "LEGACY_SIGNATURE").message
    stamp = datetime.fromtimestamp(timestamp_ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    for part in (key, MN, str(timestamp_ms), stamp, f"role {role}", "JWT"):
        assert part in message
    assert secret.decode() not in message


# --- MALFORMED ------------------------------------------------------------------------------


def test_java_standard_base64_segments_are_malformed(video_app: App) -> None:
    # Java's Base64.getEncoder() (or PHP's base64_encode): '+', '/' and '=' padding. This session
    # name makes the payload hold all three; the signature (32 bytes) always ends in '='.
    claims = video_claims(VIDEO_KEY, NOW, tpc="Q&A >> office hours??")
    token = raw_token(HS256, claims, video_app.secret, encode=std_b64)
    _, payload, signature = token.split(".")
    assert "+" in payload and "/" in payload and payload.endswith("=") and signature.endswith("=")
    d = diagnose(token, [video_app], NOW)
    # Still decoded and verified: only the encoding is wrong.
    assert codes(d) == {"MALFORMED"}
    assert d.claims == claims and d.app == video_app and d.kind == "video"
    messages = [p.message for p in d.problems]
    assert any("payload" in m and "padding" in m for m in messages)
    assert any("payload" in m and "standard base64" in m for m in messages)
    assert any("signature" in m and "padding" in m for m in messages)
    assert not any("header" in m for m in messages)  # 36 characters: nothing to pad


def test_php_padded_segments_are_malformed(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW)
    token = raw_token(HS256, claims, meeting_app.secret, encode=std_b64)
    assert token.split(".")[1].endswith("==")
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"MALFORMED"}
    assert d.claims == claims and d.kind == "meeting_web"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("role=0&mn=94843468909", "not base64url-encoded JSON"),
        ("{'sdkKey': 'k'}", "not base64url-encoded JSON"),  # Python's str(dict)
        ('["sdkKey", "k"]', "not an object"),
    ],
)
def test_payload_that_is_not_a_json_object_is_malformed(
    meeting_app: App, payload: str, words: str
) -> None:
    d = diagnose(raw_token(HS256, payload, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"MALFORMED"}
    assert "payload" in d.problems[0].message and words in d.problems[0].message
    assert d.claims is None


def test_trailing_newline_is_malformed_but_the_token_is_still_read(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token + "\n", [meeting_app], NOW)
    assert codes(d) == {"MALFORMED"}
    assert "white space" in d.problems[0].message
    assert d.kind == "meeting_web" and d.app == meeting_app


# --- UNSUPPORTED_ALGORITHM ------------------------------------------------------------------


def test_alg_none_with_empty_signature(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW)
    for token in (
        raw_token({"alg": "none", "typ": "JWT"}, claims, None),
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]  # PyJWT's "none" takes key None; encode's types want a key
    ):
        assert token.endswith(".")
        d = diagnose(token, [meeting_app], NOW)
        assert codes(d) == {"UNSUPPORTED_ALGORITHM"}
        problem = only(d, "UNSUPPORTED_ALGORITHM")
        assert problem.claim == "alg" and "'none'" in problem.message and "HS256" in problem.message


def test_hs512_from_pyjwt(meeting_app: App) -> None:
    token = jwt.encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret, algorithm="HS512")
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"UNSUPPORTED_ALGORITHM"}
    assert "'HS512'" in d.problems[0].message
    assert_no_secret(d, meeting_app)


def test_rs256(meeting_app: App) -> None:
    # An RSA-2048 signature is 256 bytes; its value does not matter here.
    signature = b64url(hashlib.sha256(b"rsa").digest() * 8)
    payload = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret).split(".")[1]
    rs256 = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    d = diagnose(f"{rs256}.{payload}.{signature}", [meeting_app], NOW)
    assert codes(d) == {"UNSUPPORTED_ALGORITHM"}
    assert "'RS256'" in d.problems[0].message


def test_header_without_alg(meeting_app: App) -> None:
    d = diagnose(
        raw_token({"typ": "JWT"}, meeting_claims(MEETING_KEY, NOW), meeting_app.secret),
        [meeting_app],
        NOW,
    )
    assert codes(d) == {"UNSUPPORTED_ALGORITHM"}
    assert "no alg" in d.problems[0].message
