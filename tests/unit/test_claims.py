"""Sign's pure logic: request validation, app choice, claims and their types."""

from __future__ import annotations

import json

import jwt
import pytest
from google.protobuf import duration_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server import Config, FailedPrecondition, InvalidArgument, mint
from sdksign.server.access.policy import Caller, Rule
from sdksign.server.config.model import App
from sdksign.server.zoom.rules import is_meeting_number
from sdksign.v1 import signature_service_pb2 as pb

NOW = 1_790_000_000.7
# A caller whose rule allows everything: these tests are about the request alone.
ANYONE = Caller(name="test", rule=Rule())


def decode(token: str, secret: bytes) -> dict[str, object]:
    return jwt.decode(
        token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )


def violations(exc: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in exc.violations}


def test_web_meeting_token_has_zoom_claims_in_order(config: Config, meeting_app: App) -> None:
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number="94843468909", role=pb.ROLE_HOST)
    )
    minted = mint(request, config, NOW, ANYONE)
    claims = decode(minted.token, meeting_app.secret)
    iat = 1_790_000_000 - 30
    assert list(claims) == ["appKey", "sdkKey", "mn", "role", "iat", "exp", "tokenExp"]
    assert claims == {
        "appKey": meeting_app.sdk_key,
        "sdkKey": meeting_app.sdk_key,
        "mn": "94843468909",
        "role": 1,
        "iat": iat,
        "exp": iat + 7200,
        "tokenExp": iat + 7200,
    }
    assert (minted.app, minted.issued_at, minted.expires_at, minted.role) == (
        meeting_app,
        iat,
        iat + 7200,
        "host",
    )


def test_participant_is_role_zero_and_webrtc_flag_is_an_integer(
    config: Config, meeting_app: App
) -> None:
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(
            meeting_number="123456789", role=pb.ROLE_PARTICIPANT, video_webrtc_mode=True
        )
    )
    claims = decode(mint(request, config, NOW, ANYONE).token, meeting_app.secret)
    assert claims["role"] == 0 and type(claims["role"]) is int
    assert claims["video_webrtc_mode"] == 1 and type(claims["video_webrtc_mode"]) is int


def test_native_token_has_no_meeting_number_and_no_role(config: Config, meeting_app: App) -> None:
    minted = mint(pb.SignRequest(meeting=pb.MeetingClaims()), config, NOW, ANYONE)
    claims = decode(minted.token, meeting_app.secret)
    assert "mn" not in claims and "role" not in claims
    assert minted.role == ""


def test_ttl_sets_lifetime_within_bounds(config: Config, meeting_app: App) -> None:
    for seconds in (1800, 172800):
        request = pb.SignRequest(
            meeting=pb.MeetingClaims(), ttl=duration_pb2.Duration(seconds=seconds)
        )
        claims = decode(mint(request, config, NOW, ANYONE).token, meeting_app.secret)
        assert claims["exp"] - claims["iat"] == seconds  # type: ignore[operator]


@pytest.mark.parametrize(
    ("ttl", "shown"),
    [
        (duration_pb2.Duration(seconds=1799), "1799s"),
        (duration_pb2.Duration(seconds=172801), "172801s"),
        (duration_pb2.Duration(seconds=3600, nanos=500_000_000), "3600.5s"),
        (duration_pb2.Duration(seconds=0), "0s"),
    ],
)
def test_ttl_outside_bounds_names_the_field_and_range(
    config: Config, ttl: duration_pb2.Duration, shown: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(meeting=pb.MeetingClaims(), ttl=ttl), config, NOW, ANYONE)
    description = violations(caught.value)["ttl"]
    assert shown in description and "1800" in description and "172800" in description


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        (pb.MeetingClaims(meeting_number="94843468909"), "meeting.role"),
        (pb.MeetingClaims(role=pb.ROLE_HOST), "meeting.meeting_number"),
        (
            pb.MeetingClaims(meeting_number="948 4346 8909", role=pb.ROLE_HOST),
            "meeting.meeting_number",
        ),
        (pb.MeetingClaims(meeting_number="9484-3468", role=pb.ROLE_HOST), "meeting.meeting_number"),
        (pb.MeetingClaims(meeting_number="1" * 21, role=pb.ROLE_HOST), "meeting.meeting_number"),
        (pb.MeetingClaims(meeting_number="123", role=7), "meeting.role"),  # type: ignore[arg-type]  # proto3 enums are open; the stub takes only Role
    ],
)
def test_meeting_rules(config: Config, claims: pb.MeetingClaims, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(meeting=claims), config, NOW, ANYONE)
    assert field in violations(caught.value)
    assert caught.value.status == "INVALID_ARGUMENT"


def test_all_violations_are_reported_at_once(config: Config) -> None:
    request = pb.SignRequest(
        app="nope",
        meeting=pb.MeetingClaims(meeting_number="12-34", role=pb.ROLE_UNSPECIFIED),
        ttl=duration_pb2.Duration(seconds=60),
    )
    with pytest.raises(InvalidArgument) as caught:
        mint(request, config, NOW, ANYONE)
    assert set(violations(caught.value)) == {"app", "ttl", "meeting.meeting_number", "meeting.role"}
    assert "(allowed: meeting, video)" in violations(caught.value)["app"]


def test_no_claims_is_refused(config: Config) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(), config, NOW, ANYONE)
    assert "claims" in violations(caught.value)


def test_video_token_claims(config: Config, video_app: App) -> None:
    request = pb.SignRequest(
        video=pb.VideoClaims(
            session_name="math-101",
            role=pb.ROLE_PARTICIPANT,
            user_identity="u-1",
            session_key="pw",
            geo_regions=["US", "DE"],
            cloud_recording_option=True,
            cloud_recording_election=False,
            audio_webrtc_mode=True,
        )
    )
    minted = mint(request, config, NOW, ANYONE)
    claims = decode(minted.token, video_app.secret)
    assert minted.app == video_app
    assert claims == {
        "app_key": video_app.sdk_key,
        "tpc": "math-101",
        "role_type": 0,
        "version": 1,
        "iat": 1_790_000_000 - 30,
        "exp": 1_790_000_000 - 30 + 7200,
        "user_identity": "u-1",
        "session_key": "pw",
        "geo_regions": "US,DE",
        "cloud_recording_option": 1,
        "cloud_recording_election": 0,
        "audio_webrtc_mode": 1,
    }


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        (pb.VideoClaims(role=pb.ROLE_HOST), "video.session_name"),
        (pb.VideoClaims(session_name="s" * 201, role=pb.ROLE_HOST), "video.session_name"),
        (pb.VideoClaims(session_name="s"), "video.role"),
        (
            pb.VideoClaims(session_name="s", role=pb.ROLE_HOST, user_identity="u" * 36),
            "video.user_identity",
        ),
        (
            pb.VideoClaims(session_name="s", role=pb.ROLE_HOST, session_key="k" * 37),
            "video.session_key",
        ),
        (
            pb.VideoClaims(session_name="s", role=pb.ROLE_HOST, geo_regions=["US", "XX"]),
            "video.geo_regions[1]",
        ),
    ],
)
def test_video_rules(config: Config, claims: pb.VideoClaims, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(video=claims), config, NOW, ANYONE)
    assert field in violations(caught.value)


def test_video_limits_are_inclusive(config: Config) -> None:
    claims = pb.VideoClaims(
        session_name="s" * 200, role=pb.ROLE_HOST, user_identity="u" * 35, session_key="k" * 36
    )
    assert mint(pb.SignRequest(video=claims), config, NOW, ANYONE).token


def test_app_of_the_wrong_kind_is_refused(config: Config) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(app="video", meeting=pb.MeetingClaims()), config, NOW, ANYONE)
    assert "video app" in violations(caught.value)["app"]


def test_app_is_required_when_several_of_a_kind(meeting_app: App) -> None:
    other = App(name="other", kind="meeting", sdk_key="k2", secret=b"s2")
    config = Config(apps=(meeting_app, other), source="tests")
    with pytest.raises(InvalidArgument) as caught:
        mint(pb.SignRequest(meeting=pb.MeetingClaims()), config, NOW, ANYONE)
    assert "meeting, other" in violations(caught.value)["app"]
    minted = mint(pb.SignRequest(app="other", meeting=pb.MeetingClaims()), config, NOW, ANYONE)
    assert decode(minted.token, b"s2")["sdkKey"] == "k2"


def test_no_app_of_the_kind_is_a_failed_precondition(meeting_app: App) -> None:
    config = Config(apps=(meeting_app,), source="tests")
    with pytest.raises(FailedPrecondition) as caught:
        mint(
            pb.SignRequest(video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST)),
            config,
            NOW,
            ANYONE,
        )
    assert caught.value.status == "FAILED_PRECONDITION"
    assert "ZOOM_VIDEO_SDK_KEY" in caught.value.message


def test_clock_skew_is_configurable(meeting_app: App) -> None:
    config = Config(apps=(meeting_app,), source="tests", clock_skew=0)
    claims = decode(
        mint(pb.SignRequest(meeting=pb.MeetingClaims()), config, NOW, ANYONE).token,
        meeting_app.secret,
    )
    assert claims["iat"] == 1_790_000_000
    assert json.dumps(claims)  # plain JSON types only


@settings(max_examples=300, deadline=None)
@given(
    app=st.sampled_from(["", "meeting", "video", "nope"]),
    number=st.text(max_size=25),
    role=st.integers(min_value=-3, max_value=5),
    session=st.text(max_size=210),
    identity=st.text(max_size=40),
    regions=st.lists(st.sampled_from(["US", "DE", "XX", "", "us"]), max_size=4),
    seconds=st.integers(min_value=-(10**12), max_value=10**12),
    nanos=st.integers(min_value=0, max_value=999_999_999),
    video=st.booleans(),
)
def test_any_request_is_signed_or_refused_with_named_fields(
    config: Config,
    app: str,
    number: str,
    role: int,
    session: str,
    identity: str,
    regions: list[str],
    seconds: int,
    nanos: int,
    video: bool,
) -> None:
    request = pb.SignRequest(app=app, ttl=duration_pb2.Duration(seconds=seconds, nanos=nanos))
    if video:
        request.video.CopyFrom(
            pb.VideoClaims(
                session_name=session,
                role=role,  # type: ignore[arg-type]  # proto3 enums are open; the stub takes only Role
                user_identity=identity,
                geo_regions=regions,
            )
        )
    else:
        request.meeting.CopyFrom(pb.MeetingClaims(meeting_number=number, role=role))  # type: ignore[arg-type]  # proto3 enums are open; the stub takes only Role
    try:
        minted = mint(request, config, NOW, ANYONE)
    except InvalidArgument as refused:
        assert refused.violations and all(v.field and v.description for v in refused.violations)
    else:
        secret = next(a.secret for a in config.apps if a.kind == ("video" if video else "meeting"))
        claims = decode(minted.token, secret)
        assert 1800 <= claims["exp"] - claims["iat"] <= 172800  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("94843468909", True),
        ("1", True),
        ("9" * 20, True),
        ("9" * 21, False),
        ("", False),
        ("948 4346 8909", False),
        ("948-434-68909", False),
        ("٩٤٨", False),  # Arabic-Indic digits: digits, but not the ASCII ones
        ("²", False),
        ("12a", False),
        ("-1", False),
    ],
)
def test_a_meeting_number_is_one_to_twenty_ascii_digits(text: str, expected: bool) -> None:
    assert is_meeting_number(text) is expected
