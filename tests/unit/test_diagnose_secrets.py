"""diagnose(): whether the signature matched a configured secret, and which (by fingerprint), or
which were tried; a secret turned into bytes the wrong way (SECRET_ENCODING), named by mistake.

Tokens are signed with PyJWT, given the wrong bytes as C#, Java and PHP code gives them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import jwt
import pytest

from sdksign.server import App, diagnose, encode, fingerprint
from sdksign.server.tokens.signature import SignatureCheck
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, b64url, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import NOW, OAUTH_SECRET, assert_no_secret, codes, only

# As Zoom shows a Client Secret: 32 letters and digits (valid base64, not hex).
ZOOM_SECRET = "Zq3xV9pLmT2rW8sYbN4cK7hJ1dF6gA0e"
HEX_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
PROD_KEY = "ProdMeetingKey0123456"


def app_with(secret: str, *, name: str = "prod", previous: tuple[bytes, ...] = ()) -> App:
    return App(name, "meeting", PROD_KEY, secret.encode(), previous_secrets=previous)


def signed(key: bytes, sdk_key: str = PROD_KEY, **claims: object) -> str:
    return jwt.encode(meeting_claims(sdk_key, NOW, **claims), key, algorithm="HS256")


# The wrong bytes, the configured secret they come from, and words the message must hold.
MISTAKES: dict[str, tuple[Callable[[str], bytes], str, tuple[str, ...]]] = {
    "C# Convert.FromBase64String": (
        lambda s: base64.b64decode(s),
        ZOOM_SECRET,
        ("base64-decoded", "Convert.FromBase64String"),
    ),
    "PHP base64_decode, Java Base64.getDecoder": (
        lambda s: base64.b64decode(s),
        ZOOM_SECRET,
        ("base64_decode", "Base64.getDecoder"),
    ),
    "hex-decoded (jsrsasign, hex2bin)": (bytes.fromhex, HEX_SECRET, ("hex-decoded", "hex2bin")),
    "C# Encoding.Unicode": (lambda s: s.encode("utf-16-le"), ZOOM_SECRET, ("UTF-16LE",)),
    "C# Encoding.BigEndianUnicode": (lambda s: s.encode("utf-16-be"), ZOOM_SECRET, ("UTF-16BE",)),
    'Java getBytes("UTF-16")': (
        lambda s: b"\xfe\xff" + s.encode("utf-16-be"),
        ZOOM_SECRET,
        ("byte-order mark",),
    ),
    "C# Encoding.UTF32": (lambda s: s.encode("utf-32-le"), ZOOM_SECRET, ("UTF-32",)),
    "file read untrimmed": (lambda s: (s + "\n").encode(), ZOOM_SECRET, ("newline",)),
    "Windows file untrimmed": (lambda s: (s + "\r\n").encode(), ZOOM_SECRET, ("CR LF",)),
    # The configured secret holds the newline; the signer trimmed it, rightly.
    "configured untrimmed": (
        lambda s: s.strip().encode(),
        ZOOM_SECRET + "\n",
        ("trimmed", "configuration"),
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_secret_turned_into_bytes_the_wrong_way_is_named(mistake: str) -> None:
    wrong_bytes, secret, words = MISTAKES[mistake]
    app = app_with(secret)
    other = App("dev", "meeting", "DevMeetingKey01234567", b"the-dev-secret-0123456789abcdefghij")
    d = diagnose(signed(wrong_bytes(secret)), [app, other], NOW)
    assert codes(d) == {"SECRET_ENCODING"}
    message = only(d, "SECRET_ENCODING").message
    assert "'prod'" in message and fingerprint(secret.encode()) in message
    for word in words:
        assert word in message, (word, message)
    if mistake != "configured untrimmed":
        assert "UTF-8 bytes" in message
    assert d.signature == SignatureCheck.MISMATCHED and d.secret_fingerprint == ""
    assert d.tried_fingerprints == (fingerprint(secret.encode()), *other.secret_fingerprints)
    assert_no_secret(d, app, other)
    assert secret.strip()[:16] not in message


def test_a_previous_secret_read_wrongly_is_named_by_its_fingerprint() -> None:
    old = "Old0Secret1Of2This3App4Rotating5"
    app = app_with(ZOOM_SECRET, previous=(old.encode(),))
    d = diagnose(signed(old.encode("utf-16-le")), [app], NOW)
    assert codes(d) == {"SECRET_ENCODING"}
    assert fingerprint(old.encode()) in only(d, "SECRET_ENCODING").message
    assert d.tried_fingerprints == app.secret_fingerprints


def test_the_sdk_key_used_as_the_secret_is_named() -> None:
    app = app_with(ZOOM_SECRET)
    d = diagnose(signed(PROD_KEY.encode()), [app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert "SDK key (Client ID) of app 'prod'" in only(d, "BAD_SIGNATURE").message
    assert d.signature == SignatureCheck.MISMATCHED


def test_key_and_secret_swapped_in_the_claim_and_the_signing() -> None:
    # sdkKey holds the secret, and the SDK key signed: both said, the secret never shown.
    app = app_with(ZOOM_SECRET)
    d = diagnose(signed(PROD_KEY.encode(), sdk_key=ZOOM_SECRET), [app], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY", "BAD_SIGNATURE"}
    assert "SDK key (Client ID)" in only(d, "BAD_SIGNATURE").message
    assert_no_secret(d, app)
    assert d.claims is not None and d.claims["sdkKey"] == "<the secret of app 'prod'>"


# --- matched or not, and which secret --------------------------------------------------------


def test_a_valid_token_says_which_secret_matched() -> None:
    old = b"Old0Secret1Of2This3App4Rotating5"
    app = app_with(ZOOM_SECRET, previous=(old,))
    for secret in (ZOOM_SECRET.encode(), old):
        d = diagnose(signed(secret), [app], NOW)
        assert d.valid and d.signature == SignatureCheck.MATCHED
        assert d.secret_fingerprint == fingerprint(secret) and d.tried_fingerprints == ()


def test_the_match_is_said_whatever_else_is_wrong(meeting_app: App) -> None:
    # Expired, role as a string, another meeting: the secret was still right.
    token = encode(meeting_claims(MEETING_KEY, NOW - 9000, role="1"), meeting_app.secret)
    d = diagnose(token, [meeting_app], NOW, expected_meeting_number="123")
    assert codes(d) == {"EXPIRED", "WRONG_CLAIM_TYPE", "MEETING_MISMATCH"}
    assert d.signature == SignatureCheck.MATCHED
    assert d.secret_fingerprint == meeting_app.secret_fingerprints[0]


def test_a_mismatch_lists_the_secrets_tried(meeting_app: App, video_app: App) -> None:
    d = diagnose(signed(b"x" * 40, sdk_key=MEETING_KEY), [meeting_app, video_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    tried = (*meeting_app.secret_fingerprints, *video_app.secret_fingerprints)
    assert d.signature == SignatureCheck.MISMATCHED and d.tried_fingerprints == tried
    message = only(d, "BAD_SIGNATURE").message
    assert all(fp in message for fp in tried) and "Client Secret" in message
    assert_no_secret(d, meeting_app, video_app)


def test_another_apps_secret_is_named(meeting_app: App, video_app: App) -> None:
    d = diagnose(signed(video_app.secret, sdk_key=MEETING_KEY), [meeting_app, video_app], NOW)
    assert codes(d) == {"BAD_SIGNATURE"}
    assert d.signature == SignatureCheck.MATCHED_OTHER_APP and d.app == meeting_app
    assert d.secret_fingerprint == video_app.secret_fingerprints[0]
    message = only(d, "BAD_SIGNATURE").message
    assert "secret of app 'video'" in message and "SDK key of app 'meeting'" in message
    assert_no_secret(d, meeting_app, video_app)


def test_an_unknown_key_still_says_whose_secret_signed(meeting_app: App, video_app: App) -> None:
    d = diagnose(
        signed(meeting_app.secret, sdk_key="TypoMeetingKey0123456"), [video_app, meeting_app], NOW
    )
    assert codes(d) == {"UNKNOWN_SDK_KEY"} and d.app is None
    assert d.signature == SignatureCheck.MATCHED_OTHER_APP
    assert d.secret_fingerprint == meeting_app.secret_fingerprints[0]
    assert "secret of app 'meeting'" in only(d, "UNKNOWN_SDK_KEY").message


def test_an_unknown_key_and_secret_try_every_configured_secret(
    meeting_app: App, video_app: App
) -> None:
    d = diagnose(signed(OAUTH_SECRET, sdk_key="OAuthKey0123456789"), [meeting_app, video_app], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    assert d.signature == SignatureCheck.MISMATCHED
    assert d.tried_fingerprints == (
        *meeting_app.secret_fingerprints,
        *video_app.secret_fingerprints,
    )
    assert "2 secrets tried" in only(d, "UNKNOWN_SDK_KEY").message


def test_only_app_limits_the_secrets_tried(meeting_app: App, video_app: App) -> None:
    # Signed with the meeting secret, checked against the video app alone: only its secret tried.
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    d = diagnose(token, [meeting_app, video_app], NOW, only_app=video_app)
    assert codes(d) == {"UNKNOWN_SDK_KEY"}
    assert d.signature == SignatureCheck.MISMATCHED
    assert d.tried_fingerprints == video_app.secret_fingerprints


def test_an_unreadable_payload_is_still_checked(meeting_app: App, video_app: App) -> None:
    token = raw_token(HS256, "role=0&mn=94843468909", video_app.secret)
    d = diagnose(token, [meeting_app, video_app], NOW)
    assert codes(d) == {"MALFORMED"}
    assert d.signature == SignatureCheck.MATCHED_OTHER_APP and d.app is None
    assert d.secret_fingerprint == video_app.secret_fingerprints[0]


@pytest.mark.parametrize(
    "token",
    [
        raw_token({"alg": "none"}, video_claims(VIDEO_KEY, NOW), None),
        raw_token(HS256, video_claims(VIDEO_KEY, NOW), None),  # no signature
        encode(video_claims(VIDEO_KEY, NOW), b"s" * 40)[:-10],  # cut short
        f"{b64url(b'{')}.{b64url(b'{}')}.{b64url(b'x' * 32)}",  # header unreadable
    ],
)
def test_a_signature_that_cannot_be_checked_says_so(video_app: App, token: str) -> None:
    d = diagnose(token, [video_app], NOW)
    assert not d.valid and d.signature == SignatureCheck.NOT_CHECKED
    assert d.secret_fingerprint == "" and d.tried_fingerprints == ()


def test_no_configured_app_checks_nothing() -> None:
    d = diagnose(encode(video_claims(VIDEO_KEY, NOW), b"s" * 40), [], NOW)
    assert codes(d) == {"UNKNOWN_SDK_KEY"} and d.signature == SignatureCheck.NOT_CHECKED
