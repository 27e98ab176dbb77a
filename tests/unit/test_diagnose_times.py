"""diagnose(): times (milliseconds, EXPIRED, ISSUED_IN_FUTURE) and lifetimes too short or long."""

from __future__ import annotations

import pytest

from sdksign.server import App, diagnose, encode
from sdksign.server.zoom.rules import MAX_TTL, MIN_TTL
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import meeting_claims, video_claims
from tests.unit.diagnose_helpers import (
    NOW,
    codes,
    only,
)

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
