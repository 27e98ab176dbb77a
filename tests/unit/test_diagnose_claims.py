"""diagnose(): claims missing, of the wrong type, or with values Zoom refuses."""

from __future__ import annotations

from typing import Any

import pytest

from sdksign.server import App, diagnose, encode
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import meeting_claims, video_claims
from tests.unit.diagnose_helpers import (
    MN,
    NOW,
    codes,
    only,
)

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


# --- DEPRECATED_CLAIM: a warning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({}, "write audio_webrtc_mode (the same 0 or 1) instead"),
        ({"audio_webrtc_mode": 1}, "the token has audio_webrtc_mode too"),
    ],
)
def test_a_deprecated_claim_is_a_warning_naming_its_replacement(
    video_app: App, extra: dict[str, Any], says: str
) -> None:
    claims = video_claims(VIDEO_KEY, NOW, audio_compatible_mode=1, **extra)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert d.valid
    assert codes(d) == {"DEPRECATED_CLAIM"}
    problem = only(d, "DEPRECATED_CLAIM")
    assert problem.claim == "audio_compatible_mode"
    assert problem.severity == "warning"
    assert "in favour of audio_webrtc_mode" in problem.message and says in problem.message


def test_a_deprecated_claim_beside_an_error_leaves_the_token_invalid(video_app: App) -> None:
    claims = video_claims(VIDEO_KEY, NOW, audio_compatible_mode=1, role_type=5)
    d = diagnose(encode(claims, video_app.secret), [video_app], NOW)
    assert not d.valid
    assert codes(d) == {"DEPRECATED_CLAIM", "INVALID_ROLE"}
    assert {p.code: p.severity for p in d.problems} == {
        "DEPRECATED_CLAIM": "warning",
        "INVALID_ROLE": "error",
    }
