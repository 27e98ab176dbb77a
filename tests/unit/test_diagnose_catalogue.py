"""diagnose(): several problems at once, crash regressions, a token for every ProblemCode."""

from __future__ import annotations

import json

import pytest

from sdksign.server import App, diagnose, encode
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import (
    ALL_CODES,
    MN,
    NOW,
    OAUTH_KEY,
    OAUTH_SECRET,
    assert_no_secret,
    codes,
    legacy_signature,
    only,
    std_b64,
)

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
        "TOKEN_WRAPPED": f'"{encode(meeting_claims(MEETING_KEY, NOW), m)}"',
        "SECRET_ENCODING": encode(video_claims(VIDEO_KEY, NOW), v.decode().encode("utf-16-le")),
        "DEPRECATED_CLAIM": encode(video_claims(VIDEO_KEY, NOW, audio_compatible_mode=0), v),
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
