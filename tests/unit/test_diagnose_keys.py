"""diagnose(): SDK keys and signatures (UNKNOWN_SDK_KEY, BAD_SIGNATURE), never showing a secret."""

from __future__ import annotations

import base64
import hashlib
import json

from sdksign.server import App, diagnose, encode
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, b64url, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import (
    NOW,
    OAUTH_KEY,
    OAUTH_SECRET,
    assert_no_secret,
    codes,
    only,
)

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
    assert codes(d) == {"SECRET_ENCODING"}
    assert "hex-decoded" in d.problems[0].message
    assert_no_secret(d, app)


def test_secret_read_as_base64_is_named() -> None:
    # Convert.FromBase64String(secret) in C#.
    secret = base64.b64encode(hashlib.sha256(b"s").digest())
    app = App(name="b64", kind="video", sdk_key=VIDEO_KEY, secret=secret)
    d = diagnose(encode(video_claims(VIDEO_KEY, NOW), base64.b64decode(secret)), [app], NOW)
    assert codes(d) == {"SECRET_ENCODING"}
    assert "base64-decoded" in d.problems[0].message
    assert_no_secret(d, app)
