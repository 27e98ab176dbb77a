"""diagnose(): every problem code, shown by a token built the way real broken code builds it.

Pure function calls with a fixed clock; the rules and the catalogue of mistakes are in
shared/docs/zoom-sdk-jwt.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server import App, Diagnosis, Problem, diagnose, encode
from sdksign.server._zoom import MAX_TTL, MIN_TTL
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import CLAIM_NAMES, HS256, b64url, meeting_claims, raw_token, video_claims

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


# --- valid tokens --------------------------------------------------------------------------


def test_web_meeting_token_from_our_encoder_is_valid(meeting_app: App, video_app: App) -> None:
    claims = meeting_claims(meeting_app.sdk_key, NOW - 30, role=1, video_webrtc_mode=1)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app, video_app], NOW)
    assert d.problems == [] and d.valid
    assert d.kind == "meeting_web"
    assert d.app == meeting_app
    assert d.header == HS256
    assert d.claims == claims


def test_web_meeting_token_from_pyjwt_is_valid(meeting_app: App, video_app: App) -> None:
    token = jwt.encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret, algorithm="HS256")
    d = diagnose(token, [meeting_app, video_app], NOW, expected_meeting_number=MN)
    assert d.valid, d.problems
    assert (d.kind, d.app) == ("meeting_web", meeting_app)


def test_meeting_number_may_be_a_json_number(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, mn=int(MN)), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW, expected_meeting_number=MN)
    assert d.valid, d.problems
    assert d.claims is not None and d.claims["mn"] == int(MN)


def test_native_meeting_token_without_mn_and_role_is_valid(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW, mn=None, role=None)
    assert "mn" not in claims and "role" not in claims
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert d.valid, d.problems
    assert d.kind == "meeting_native"


def test_video_token_with_every_optional_claim_is_valid(meeting_app: App, video_app: App) -> None:
    claims = video_claims(
        VIDEO_KEY,
        NOW,
        user_identity="user-4711",
        session_key="room-42",
        geo_regions="US,DE,JP",
        cloud_recording_option=1,
        cloud_recording_election=0,
        telemetry_tracking_id="trace-abc",
        video_webrtc_mode=1,
        audio_webrtc_mode=0,
    )
    for token in (
        encode(claims, video_app.secret),
        jwt.encode(claims, video_app.secret, algorithm="HS256"),
        raw_token(HS256, claims, video_app.secret),
    ):
        d = diagnose(token, [meeting_app, video_app], NOW)
        assert d.valid, d.problems
        assert (d.kind, d.app, d.claims) == ("video", video_app, claims)


def test_only_app_with_the_right_app_is_valid(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token, [], NOW, only_app=meeting_app)
    assert d.valid, d.problems
    assert d.app == meeting_app


@pytest.mark.parametrize("lifetime", [MIN_TTL, MAX_TTL])
def test_lifetime_bounds_are_inclusive(meeting_app: App, lifetime: int) -> None:
    claims = meeting_claims(MEETING_KEY, NOW, exp=NOW + lifetime, tokenExp=NOW + lifetime)
    assert diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW).valid


def test_iat_a_minute_ahead_is_tolerated(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW + 60, exp=NOW + 60 + 7200, tokenExp=NOW + 60 + 7200)
    assert diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW).valid


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


def test_pasted_json_response_body_is_not_a_jwt(meeting_app: App) -> None:
    # The body Zoom's auth endpoint sample answers with; the token inside brings its dots along.
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    body = json.dumps({"signature": token, "sdkKey": MEETING_KEY})
    d = diagnose(body, [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"}
    message = only(d, "NOT_A_JWT").message
    assert "JSON" in message and "signature field" in message
    assert token not in message
    # Without a token inside (no dots) it is the same answer.
    d = diagnose('{"error": "forbidden"}', [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"} and "JSON" in d.problems[0].message


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
        jwt.encode(claims, None, algorithm="none"),
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


# --- UNKNOWN_SDK_KEY ------------------------------------------------------------------------


def test_oauth_app_key_is_unknown(meeting_app: App, video_app: App) -> None:
    token = encode(meeting_claims(OAUTH_KEY, NOW), OAUTH_SECRET)
    d = diagnose(token, [meeting_app, video_app], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    problem = only(d, "UNKNOWN_SDK_KEY")
    assert problem.claim == "sdkKey"
    assert OAUTH_KEY in problem.message and "OAuth" in problem.message
    assert d.app is None and d.kind == "meeting_web"
    assert OAUTH_SECRET.decode() not in problem.message


def test_video_app_key_in_a_meeting_token(meeting_app: App, video_app: App) -> None:
    token = encode(meeting_claims(VIDEO_KEY, NOW), video_app.secret)
    d = diagnose(token, [meeting_app, video_app], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    message = only(d, "UNKNOWN_SDK_KEY").message
    assert "video app 'video'" in message and "Meeting SDK token" in message
    assert d.app == video_app  # the signature was checked with its secret, and matched


def test_meeting_app_key_in_a_video_token(meeting_app: App, video_app: App) -> None:
    token = encode(video_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token, [meeting_app, video_app], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    assert only(d, "UNKNOWN_SDK_KEY").claim == "app_key"


def test_only_app_given_with_another_key(meeting_app: App, video_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token, [meeting_app, video_app], NOW, only_app=video_app)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    message = only(d, "UNKNOWN_SDK_KEY").message
    assert MEETING_KEY in message and "'video'" in message
    assert d.app is None


def test_key_and_secret_swapped_never_shows_the_secret() -> None:
    # Zoom's Client Secrets are 32 characters: short enough to be shown whole, were it not caught.
    secret = "Zq3xV9pLmT2rW8sYbN4cK7hJ1dF6gA0e"
    app = App(name="prod", kind="meeting", sdk_key="AbCdEfGhIjKlMnOpQrStUv", secret=secret.encode())
    token = encode(meeting_claims(secret, NOW), secret.encode())
    for d in (diagnose(token, [app], NOW), diagnose(token, [], NOW, only_app=app)):
        assert codes(d) == {"UNKNOWN_SDK_KEY"}
        message = only(d, "UNKNOWN_SDK_KEY").message
        assert "secret of app 'prod'" in message
        assert_no_secret(d, app)
        assert secret[:16] not in message


# --- BAD_SIGNATURE --------------------------------------------------------------------------


def test_wrong_secret(meeting_app: App, video_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), b"the-secret-of-another-environment-xxxxxxxxx")
    d = diagnose(token, [meeting_app, video_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    message = only(d, "BAD_SIGNATURE").message
    assert "'meeting'" in message and "Client Secret" in message
    assert_no_secret(d, meeting_app, video_app)
    assert d.claims is not None and d.kind == "meeting_web"  # the claims are still shown


def test_secret_of_the_other_app(meeting_app: App, video_app: App) -> None:
    d = diagnose(
        encode(video_claims(VIDEO_KEY, NOW), meeting_app.secret), [meeting_app, video_app], NOW
    )
    assert codes(d) == {"BAD_SIGNATURE"}
    assert_no_secret(d, meeting_app, video_app)


def test_payload_tampered_after_signing(meeting_app: App) -> None:
    header, _, signature = encode(
        meeting_claims(MEETING_KEY, NOW, role=0), meeting_app.secret
    ).split(".")
    host = b64url(json.dumps(meeting_claims(MEETING_KEY, NOW, role=1)).encode())
    d = diagnose(f"{header}.{host}.{signature}", [meeting_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "changed after signing" in d.problems[0].message
    assert d.claims is not None and d.claims["role"] == 1
    assert_no_secret(d, meeting_app)


def test_empty_signature(meeting_app: App) -> None:
    token = raw_token(HS256, meeting_claims(MEETING_KEY, NOW), None)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "empty" in d.problems[0].message and "unsigned" in d.problems[0].message


def test_truncated_signature(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token[:-16], [meeting_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "20 bytes" in d.problems[0].message and "32" in d.problems[0].message


def test_secret_read_as_hex_is_named() -> None:
    # jsrsasign reads a secret made of hex digits as hex.
    secret = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    app = App(name="hexy", kind="meeting", sdk_key=MEETING_KEY, secret=secret)
    d = diagnose(
        encode(meeting_claims(MEETING_KEY, NOW), bytes.fromhex(secret.decode())), [app], NOW
    )
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "as hex" in d.problems[0].message
    assert_no_secret(d, app)


def test_secret_read_as_base64_is_named() -> None:
    # Convert.FromBase64String(secret) in C#.
    secret = base64.b64encode(hashlib.sha256(b"s").digest())
    app = App(name="b64", kind="video", sdk_key=VIDEO_KEY, secret=secret)
    d = diagnose(encode(video_claims(VIDEO_KEY, NOW), base64.b64decode(secret)), [app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "as base64" in d.problems[0].message
    assert_no_secret(d, app)


# --- MISSING_CLAIM --------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iat", "exp", "tokenExp"])
def test_meeting_time_claim_missing(meeting_app: App, claim: str) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, **{claim: None}), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"MISSING_CLAIM"}
    problem = only(d, "MISSING_CLAIM")
    assert problem.claim == claim and claim in problem.message


def test_only_the_older_app_key(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, sdkKey=None), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"MISSING_CLAIM"}
    problem = only(d, "MISSING_CLAIM")
    assert problem.claim == "sdkKey" and "appKey" in problem.message
    assert d.app == meeting_app  # found by appKey; the signature matched


@pytest.mark.parametrize(("present", "absent"), [("mn", "role"), ("role", "mn")])
def test_mn_without_role_and_role_without_mn(meeting_app: App, present: str, absent: str) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, **{absent: None}), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"MISSING_CLAIM"}
    problem = only(d, "MISSING_CLAIM")
    assert problem.claim == absent and present in problem.message


@pytest.mark.parametrize("claim", ["app_key", "tpc", "role_type", "version", "iat", "exp"])
def test_video_claim_missing(video_app: App, claim: str) -> None:
    token = encode(video_claims(VIDEO_KEY, NOW, **{claim: None}), video_app.secret)
    d = diagnose(token, [video_app], NOW)
    assert codes(d) == {"MISSING_CLAIM"}
    assert only(d, "MISSING_CLAIM").claim == claim
    assert d.kind == "video"


def test_no_sdk_key_at_all(meeting_app: App) -> None:
    d = diagnose(encode({"iat": NOW, "exp": NOW + 7200}, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"MISSING_CLAIM"}
    assert "sdkKey" in d.problems[0].message and "app_key" in d.problems[0].message
    assert d.kind == ""


# --- WRONG_CLAIM_TYPE -----------------------------------------------------------------------


def test_role_as_a_string(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, role="1"), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    problem = only(d, "WRONG_CLAIM_TYPE")
    assert problem.claim == "role" and "'1'" in problem.message and "no quotes" in problem.message


def test_iat_as_a_string(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, iat=str(NOW)), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    problem = only(d, "WRONG_CLAIM_TYPE")
    assert problem.claim == "iat" and str(NOW) in problem.message


def test_iat_from_date_now_over_1000_without_floor(meeting_app: App) -> None:
    # const iat = Date.now() / 1000; const exp = iat + 60 * 60 * 2
    iat = (NOW * 1000 + 123) / 1000
    claims = meeting_claims(MEETING_KEY, NOW, iat=iat, exp=iat + 7200, tokenExp=iat + 7200)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    assert {p.claim for p in d.problems} == {"iat", "exp", "tokenExp"}
    iat_problem = next(p for p in d.problems if p.claim == "iat")
    assert "1790000000.123" in iat_problem.message and "Math.floor" in iat_problem.message


@pytest.mark.parametrize(
    ("claim", "value"),
    [("role_type", "1"), ("version", "1"), ("tpc", 101), ("video_webrtc_mode", True)],
)
def test_video_claims_of_the_wrong_type(video_app: App, claim: str, value: object) -> None:
    token = encode(video_claims(VIDEO_KEY, NOW, **{claim: value}), video_app.secret)
    d = diagnose(token, [video_app], NOW)
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    assert only(d, "WRONG_CLAIM_TYPE").claim == claim
    assert claim in d.problems[0].message


def test_mn_as_an_array(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, mn=[MN]), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW, expected_meeting_number=MN)
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    assert "an array" in only(d, "WRONG_CLAIM_TYPE").message


# --- TIMESTAMP_IN_MILLISECONDS --------------------------------------------------------------


def test_date_now_without_dividing_by_1000(meeting_app: App) -> None:
    # const iat = Date.now(); const exp = iat + 60 * 60 * 2
    iat = NOW * 1000
    claims = meeting_claims(MEETING_KEY, NOW, iat=iat, exp=iat + 7200, tokenExp=iat + 7200)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"TIMESTAMP_IN_MILLISECONDS"}
    assert {p.claim for p in d.problems} == {"iat", "exp", "tokenExp"}
    iat_problem = next(p for p in d.problems if p.claim == "iat")
    assert str(iat) in iat_problem.message and "divide by 1000" in iat_problem.message


def test_lifetime_added_in_milliseconds(meeting_app: App) -> None:
    # iat in seconds, but exp = iat + 2 * 60 * 60 * 1000
    exp = NOW + 2 * 60 * 60 * 1000
    claims = meeting_claims(MEETING_KEY, NOW, exp=exp, tokenExp=exp)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"TIMESTAMP_IN_MILLISECONDS"}
    problem = only(d, "TIMESTAMP_IN_MILLISECONDS")
    assert problem.claim == "exp"
    assert "7200000" in problem.message and "exp = iat + 7200" in problem.message


def test_video_token_in_milliseconds(video_app: App) -> None:
    claims = video_claims(VIDEO_KEY, NOW, iat=NOW * 1000, exp=NOW * 1000 + 7_200_000)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert codes(d) == {"TIMESTAMP_IN_MILLISECONDS"}
    assert {p.claim for p in d.problems} == {"iat", "exp"}


# --- EXPIRED, ISSUED_IN_FUTURE --------------------------------------------------------------


def test_expired_says_how_long_ago(meeting_app: App) -> None:
    iat = NOW - 7200 - 600
    claims = meeting_claims(MEETING_KEY, iat)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"EXPIRED"}
    problem = only(d, "EXPIRED")
    assert problem.claim == "exp"
    assert "(and tokenExp)" in problem.message
    assert "600 s" in problem.message and "10 min" in problem.message


def test_only_token_exp_passed(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW - 1800, tokenExp=NOW - 90)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"EXPIRED"}
    problem = only(d, "EXPIRED")
    assert problem.claim == "tokenExp" and "90 s" in problem.message


@pytest.mark.parametrize(("exp", "expired"), [(NOW, True), (NOW + 1, False)])
def test_expiry_boundary(video_app: App, exp: int, expired: bool) -> None:
    claims = video_claims(VIDEO_KEY, exp - 7200, exp=exp)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert codes(d) == ({"EXPIRED"} if expired else set())


def test_issued_in_the_future_says_by_how_much(meeting_app: App) -> None:
    # The signing server's clock runs an hour ahead.
    iat = NOW + 3600
    claims = meeting_claims(MEETING_KEY, iat)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"ISSUED_IN_FUTURE"}
    problem = only(d, "ISSUED_IN_FUTURE")
    assert problem.claim == "iat" and "3600 s" in problem.message and "60 min" in problem.message


def test_issued_just_beyond_the_leeway(video_app: App) -> None:
    claims = video_claims(VIDEO_KEY, NOW + 61)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert codes(d) == {"ISSUED_IN_FUTURE"}
    assert "61 s" in d.problems[0].message


# --- LIFETIME_TOO_SHORT, LIFETIME_TOO_LONG --------------------------------------------------


@pytest.mark.parametrize("lifetime", [600, MIN_TTL - 1])
def test_lifetime_too_short(meeting_app: App, lifetime: int) -> None:
    claims = meeting_claims(MEETING_KEY, NOW, exp=NOW + lifetime, tokenExp=NOW + lifetime)
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"LIFETIME_TOO_SHORT"}
    problem = only(d, "LIFETIME_TOO_SHORT")
    assert (
        problem.claim == "exp" and f"{lifetime} s" in problem.message and "1800" in problem.message
    )


@pytest.mark.parametrize("lifetime", [3 * 86400, MAX_TTL + 1])
def test_lifetime_too_long(video_app: App, lifetime: int) -> None:
    claims = video_claims(VIDEO_KEY, NOW, exp=NOW + lifetime)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert codes(d) == {"LIFETIME_TOO_LONG"}
    problem = only(d, "LIFETIME_TOO_LONG")
    assert f"{lifetime} s" in problem.message and "172800" in problem.message


# --- INVALID_ROLE, KEY_MISMATCH, MEETING_MISMATCH -------------------------------------------


def test_meeting_role_2(meeting_app: App) -> None:
    d = diagnose(
        encode(meeting_claims(MEETING_KEY, NOW, role=2), meeting_app.secret), [meeting_app], NOW
    )
    assert codes(d) == {"INVALID_ROLE"}
    problem = only(d, "INVALID_ROLE")
    assert problem.claim == "role" and "role is 2" in problem.message


def test_video_role_type_minus_1(video_app: App) -> None:
    d = diagnose(
        encode(video_claims(VIDEO_KEY, NOW, role_type=-1), video_app.secret), [video_app], NOW
    )
    assert codes(d) == {"INVALID_ROLE"}
    assert "role_type is -1" in only(d, "INVALID_ROLE").message


def test_app_key_and_sdk_key_differ(meeting_app: App) -> None:
    claims = meeting_claims(MEETING_KEY, NOW, appKey="OldJwtAppKey0123456789")
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"KEY_MISMATCH"}
    problem = only(d, "KEY_MISMATCH")
    assert problem.claim == "appKey"
    assert "OldJwtAppKey0123456789" in problem.message and MEETING_KEY in problem.message
    assert d.app == meeting_app  # sdkKey wins


@pytest.mark.parametrize("mn", ["85746065432", 85746065432])
def test_token_for_another_meeting(meeting_app: App, mn: object) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, mn=mn), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW, expected_meeting_number=MN)
    assert codes(d) == {"MEETING_MISMATCH"}
    problem = only(d, "MEETING_MISMATCH")
    assert problem.claim == "mn" and "85746065432" in problem.message and MN in problem.message


def test_native_token_when_a_meeting_is_expected(meeting_app: App) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW, mn=None, role=None), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW, expected_meeting_number=MN)
    assert codes(d) == {"MEETING_MISMATCH"}
    assert d.kind == "meeting_native"
    assert MN in d.problems[0].message and "no mn" in d.problems[0].message


def test_video_token_when_a_meeting_is_expected(video_app: App) -> None:
    d = diagnose(
        encode(video_claims(VIDEO_KEY, NOW), video_app.secret),
        [video_app],
        NOW,
        expected_meeting_number=MN,
    )
    assert codes(d) == {"MEETING_MISMATCH"}
    assert "not a Meeting SDK token" in d.problems[0].message


# --- INVALID_CLAIM --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "claim", "words"),
    [
        ({"tpc": "x" * 201}, "tpc", ["201 characters", "200"]),
        ({"tpc": ""}, "tpc", ["empty"]),
        ({"user_identity": "u" * 36}, "user_identity", ["36 characters", "35"]),
        ({"session_key": "k" * 37}, "session_key", ["37 characters", "36"]),
        ({"geo_regions": "US,EU"}, "geo_regions", ["'EU'", "US"]),
        ({"geo_regions": "US, DE"}, "geo_regions", ["' DE'"]),
        ({"version": 2}, "version", ["version is 2"]),
        ({"cloud_recording_option": 2}, "cloud_recording_option", ["is 2"]),
    ],
)
def test_video_claim_with_a_value_zoom_refuses(
    video_app: App, overrides: dict[str, Any], claim: str, words: list[str]
) -> None:
    d = diagnose(
        encode(video_claims(VIDEO_KEY, NOW, **overrides), video_app.secret), [video_app], NOW
    )
    assert codes(d) == {"INVALID_CLAIM"}
    problem = only(d, "INVALID_CLAIM")
    assert problem.claim == claim
    for word in words:
        assert word in problem.message


@pytest.mark.parametrize("mn", ["948 4346 8909", "948-4346-8909", "٩٤٨٤٣٤٦٨٩٠٩"])
def test_meeting_number_that_is_not_digits(meeting_app: App, mn: str) -> None:
    d = diagnose(
        encode(meeting_claims(MEETING_KEY, NOW, mn=mn), meeting_app.secret), [meeting_app], NOW
    )
    assert codes(d) == {"INVALID_CLAIM"}
    assert only(d, "INVALID_CLAIM").claim == "mn"


# --- several problems at once ---------------------------------------------------------------


def test_every_problem_of_a_badly_hand_rolled_token_is_reported(
    meeting_app: App, video_app: App
) -> None:
    # Old appKey left in, role as a string, a 10-minute lifetime, the wrong secret, another meeting.
    claims = meeting_claims(
        MEETING_KEY,
        NOW,
        appKey="OldJwtAppKey0123456789",
        role="1",
        exp=NOW + 600,
        tokenExp=NOW + 600,
    )
    token = encode(claims, b"not-the-secret-of-any-app-xxxxxxxxxxxxxxxxx")
    d = diagnose(token, [meeting_app, video_app], NOW, expected_meeting_number="85746065432")
    assert sorted(p.code for p in d.problems) == sorted(
        [
            "KEY_MISMATCH",
            "BAD_SIGNATURE",
            "WRONG_CLAIM_TYPE",
            "LIFETIME_TOO_SHORT",
            "MEETING_MISMATCH",
        ]
    )
    assert_no_secret(d, meeting_app, video_app)


def test_every_problem_of_a_java_video_token_is_reported(video_app: App) -> None:
    # Base64.getEncoder(), milliseconds, role_type 2, version "1", an unknown region.
    claims = video_claims(
        VIDEO_KEY,
        NOW,
        tpc="Q&A >> office hours??",
        iat=NOW * 1000,
        exp=NOW * 1000 + 7_200_000,
        role_type=2,
        version="1",
        geo_regions="EU",
    )
    d = diagnose(raw_token(HS256, claims, video_app.secret, encode=std_b64), [video_app], NOW)
    assert codes(d) == {
        "MALFORMED",
        "TIMESTAMP_IN_MILLISECONDS",
        "INVALID_ROLE",
        "WRONG_CLAIM_TYPE",
        "INVALID_CLAIM",
    }
    assert {p.claim for p in d.problems if p.code == "TIMESTAMP_IN_MILLISECONDS"} == {"iat", "exp"}


def test_unknown_key_expired_and_in_the_wrong_alphabet(meeting_app: App) -> None:
    claims = meeting_claims(OAUTH_KEY, NOW - 86400)
    d = diagnose(
        raw_token(HS256, claims, OAUTH_SECRET, encode=std_b64) + "\r\n", [meeting_app], NOW
    )
    assert codes(d) == {"MALFORMED", "UNKNOWN_SDK_KEY", "EXPIRED"}


# --- crashes found in diagnose (regressions) ------------------------------------------------


@pytest.mark.parametrize("depth", [5000, 100_000])
@pytest.mark.parametrize("opening", ["[", '{"a":'])
@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_json_is_malformed_not_a_crash(
    meeting_app: App, depth: int, opening: str, where: str
) -> None:
    nested = opening * depth
    header, payload = (
        (nested, meeting_claims(MEETING_KEY, NOW)) if where == "header" else (HS256, nested)
    )
    d = diagnose(raw_token(header, payload, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"MALFORMED"}
    assert where in d.problems[0].message and "too deeply" in d.problems[0].message


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_far_negative_epoch_is_invalid_not_a_crash(meeting_app: App, claim: str) -> None:
    # 4300 digits parse as an int; the difference with `now` has 4301, which str() refuses.
    huge = "-" + "9" * 4300
    fields = {"sdkKey": MEETING_KEY, "iat": NOW, "exp": NOW + 7200, "tokenExp": NOW + 7200}
    payload = json.dumps(fields).replace(str(fields[claim]), huge, 1)
    d = diagnose(raw_token(HS256, payload, meeting_app.secret), [meeting_app], NOW)
    assert codes(d) == {"INVALID_CLAIM"}
    problem = only(d, "INVALID_CLAIM")
    assert problem.claim == claim and len(problem.message) < 200


def test_non_ascii_digits_in_a_string_epoch(meeting_app: App) -> None:
    # "²".isdigit() is True, but int("²") raises.
    d = diagnose(
        encode(meeting_claims(MEETING_KEY, NOW, iat="²"), meeting_app.secret), [meeting_app], NOW
    )
    assert codes(d) == {"WRONG_CLAIM_TYPE"}
    assert only(d, "WRONG_CLAIM_TYPE").claim == "iat"


def test_legacy_looking_text_with_a_huge_timestamp(meeting_app: App) -> None:
    token = std_b64(f"key.{MN}.{'1' * 5000}.0.hash".encode()).rstrip("=")
    d = diagnose(token, [meeting_app], NOW)
    assert codes(d) == {"NOT_A_JWT"}


# --- the catalogue is complete --------------------------------------------------------------


def test_every_problem_code_of_the_proto_has_a_token_showing_it(
    meeting_app: App, video_app: App
) -> None:
    # One token per ProblemCode, each showing that code alone; a code added to the proto fails here
    # until it has a token (and tests above).
    m, v = meeting_app.secret, video_app.secret
    tokens = {
        "NOT_A_JWT": encode(meeting_claims(MEETING_KEY, NOW), m).split(".")[2],
        "LEGACY_SIGNATURE": legacy_signature(MEETING_KEY, m, MN, 0, NOW * 1000 - 30000),
        "MALFORMED": raw_token(HS256, meeting_claims(MEETING_KEY, NOW), m, encode=std_b64),
        "UNSUPPORTED_ALGORITHM": raw_token({"alg": "none"}, meeting_claims(MEETING_KEY, NOW), None),
        "UNKNOWN_SDK_KEY": encode(meeting_claims(OAUTH_KEY, NOW), OAUTH_SECRET),
        "BAD_SIGNATURE": encode(meeting_claims(MEETING_KEY, NOW), v),
        "MISSING_CLAIM": encode(meeting_claims(MEETING_KEY, NOW, iat=None), m),
        "WRONG_CLAIM_TYPE": encode(meeting_claims(MEETING_KEY, NOW, role="0"), m),
        "TIMESTAMP_IN_MILLISECONDS": encode(video_claims(VIDEO_KEY, NOW, exp=NOW + 7_200_000), v),
        "EXPIRED": encode(meeting_claims(MEETING_KEY, NOW - 7201), m),
        "ISSUED_IN_FUTURE": encode(video_claims(VIDEO_KEY, NOW + 600), v),
        "LIFETIME_TOO_SHORT": encode(video_claims(VIDEO_KEY, NOW, exp=NOW + 60), v),
        "LIFETIME_TOO_LONG": encode(video_claims(VIDEO_KEY, NOW, exp=NOW + 7 * 86400), v),
        "INVALID_ROLE": encode(meeting_claims(MEETING_KEY, NOW, role=2), m),
        "KEY_MISMATCH": encode(meeting_claims(MEETING_KEY, NOW, appKey="other"), m),
        "MEETING_MISMATCH": encode(meeting_claims(MEETING_KEY, NOW, mn="123456789"), m),
        "INVALID_CLAIM": encode(video_claims(VIDEO_KEY, NOW, version=2), v),
    }
    assert set(tokens) == ALL_CODES
    for code, token in tokens.items():
        d = diagnose(
            token,
            [meeting_app, video_app],
            NOW,
            expected_meeting_number=None if code != "MEETING_MISMATCH" else MN,
        )
        assert codes(d) == {code}, (code, d.problems)


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
claim_values = (
    json_values
    | st.sampled_from([MEETING_KEY, VIDEO_KEY, OAUTH_KEY, MN, "1", "US,EU", "²"])
    | st.integers(NOW - 200_000, NOW + 200_000)
    | st.integers(NOW * 1000 - 10**9, NOW * 1000 + 10**9)
    | st.integers(-1, 3)
)
payloads = st.dictionaries(
    st.sampled_from(CLAIM_NAMES) | st.text(max_size=8), claim_values, max_size=12
)
headers = st.just(HS256) | st.dictionaries(
    st.sampled_from(["alg", "typ", "kid"]) | st.text(max_size=4),
    st.sampled_from(["HS256", "none", "HS512", "RS256", "JWT"]) | json_values,
    max_size=3,
)


def _nest(opening: str, depth: int, closed: bool) -> str:
    """'[[[…' left open, or closed around a 1: '[[1]]', '{"a":{"a":1}}'."""
    closing = "]" if opening == "[" else "}"
    return opening * depth + ("1" + closing * depth if closed else "")


nested = st.builds(_nest, st.sampled_from(["[", '{"a":']), st.integers(1, 6000), st.booleans())

segment = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=", max_size=80
)


def check(d: Diagnosis, token: str, apps: list[App]) -> None:
    assert d.valid == (not d.problems)
    assert d.kind in KINDS
    for p in d.problems:
        assert p.code in ALL_CODES
        assert isinstance(p.message, str) and p.message
        for app in apps:
            assert app.secret.decode() not in p.message
        if len(token.strip()) > 60:
            assert token.strip() not in p.message


@settings(max_examples=300, deadline=None)
@given(token=st.text())
def test_any_text_is_diagnosed(meeting_app: App, video_app: App, token: str) -> None:
    apps = [meeting_app, video_app]
    check(diagnose(token, apps, NOW), token, apps)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.just("eyJ") | st.just("") | segment, min_size=3, max_size=3),
    prefix=st.booleans(),
)
def test_any_three_base64ish_segments_are_diagnosed(
    meeting_app: App, video_app: App, parts: list[str], prefix: bool
) -> None:
    if prefix:
        parts[0] = "eyJ" + parts[0]
    token = ".".join(parts)
    apps = [meeting_app, video_app]
    check(diagnose(token, apps, NOW), token, apps)


@settings(max_examples=300, deadline=None)
@given(
    header=headers | nested,
    payload=payloads | nested,
    signer=st.sampled_from(["meeting", "video", "other", "none"]),
    expected=st.none() | st.just(MN),
    restrict=st.booleans(),
)
def test_any_json_payload_is_diagnosed(
    meeting_app: App,
    video_app: App,
    header: dict[str, Any] | str,
    payload: dict[str, Any] | str,
    signer: str,
    expected: str | None,
    restrict: bool,
) -> None:
    secret = {
        "meeting": meeting_app.secret,
        "video": video_app.secret,
        "other": OAUTH_SECRET,
        "none": None,
    }[signer]
    token = raw_token(header, payload, secret)
    apps = [meeting_app, video_app]
    d = diagnose(
        token,
        apps,
        NOW,
        only_app=meeting_app if restrict else None,
        expected_meeting_number=expected,
    )
    check(d, token, apps)


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(min_size=1, max_size=30).filter(lambda k: "." not in k),
    number=st.text(alphabet="0123456789", min_size=1, max_size=20)
    | st.integers(4290, 5000).map("9".__mul__),
    stamp=st.text(alphabet="0123456789", min_size=1, max_size=20)
    | st.integers(4290, 5000).map("1".__mul__),
    role=st.sampled_from(["0", "1", "2", ""]),
)
def test_any_legacy_looking_signature_is_diagnosed(
    meeting_app: App, key: str, number: str, stamp: str, role: str
) -> None:
    token = std_b64(
        f"{key}.{number}.{stamp}.{role}.aGFzaA==".encode("utf-8", "surrogatepass")
    ).rstrip("=")
    d = diagnose(token, [meeting_app], NOW)
    check(d, token, [meeting_app])
    assert codes(d) <= {"LEGACY_SIGNATURE", "NOT_A_JWT"}


@settings(max_examples=200, deadline=None)
@given(
    mn=st.from_regex(r"[1-9][0-9]{8,10}", fullmatch=True),
    as_number=st.booleans(),
    role=st.sampled_from([0, 1]),
    lifetime=st.integers(MIN_TTL, MAX_TTL),
    data=st.data(),
)
def test_every_well_formed_web_token_is_valid(
    meeting_app: App, mn: str, as_number: bool, role: int, lifetime: int, data: st.DataObject
) -> None:
    iat = NOW - data.draw(st.integers(-60, lifetime - 1))  # from a minute ahead to 1 s before exp
    claims = meeting_claims(
        MEETING_KEY,
        iat,
        mn=int(mn) if as_number else mn,
        role=role,
        exp=iat + lifetime,
        tokenExp=iat + lifetime,
    )
    d = diagnose(encode(claims, meeting_app.secret), [meeting_app], NOW, expected_meeting_number=mn)
    assert d.valid, d.problems
    assert d.kind == "meeting_web"


@settings(max_examples=200, deadline=None)
@given(lifetime=st.integers(MIN_TTL, MAX_TTL))
def test_any_lifetime_added_in_milliseconds_is_named(video_app: App, lifetime: int) -> None:
    claims = video_claims(VIDEO_KEY, NOW, exp=NOW + lifetime * 1000)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert codes(d) == {"TIMESTAMP_IN_MILLISECONDS"}
    assert f"exp = iat + {lifetime})" in d.problems[0].message


def test_a_secret_in_any_claim_never_reaches_a_message(
    meeting_app: App, meeting_secret: str
) -> None:
    # appKey set to the secret: KEY_MISMATCH quotes appKey, and the secret must not be quoted.
    payload = meeting_claims(MEETING_KEY, NOW, appKey=meeting_secret, role="1")
    d = diagnose(raw_token(HS256, payload, meeting_app.secret), [meeting_app], NOW)
    assert {p.code for p in d.problems} == {"KEY_MISMATCH", "WRONG_CLAIM_TYPE"}
    key_mismatch = next(p for p in d.problems if p.code == "KEY_MISMATCH")
    assert "<the secret of app 'meeting'>" in key_mismatch.message
    assert all(meeting_secret[:20] not in p.message for p in d.problems)
