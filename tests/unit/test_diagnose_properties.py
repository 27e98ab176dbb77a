"""diagnose(): properties of generated tokens: every input gets an answer, none quotes a secret."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server import App, Diagnosis, diagnose, encode
from sdksign.server.zoom.rules import MAX_TTL, MIN_TTL
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import CLAIM_NAMES, HS256, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import (
    ALL_CODES,
    KINDS,
    MN,
    NOW,
    OAUTH_KEY,
    OAUTH_SECRET,
    codes,
    std_b64,
)

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
