"""diagnose(): valid tokens of every kind, from our encoder, pyjwt and by hand."""

from __future__ import annotations

import jwt
import pytest

from sdksign.server import App, diagnose, encode
from sdksign.server.zoom.rules import MAX_TTL, MIN_TTL
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import (
    MN,
    NOW,
)

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
