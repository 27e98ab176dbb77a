"""The client of Zoom's API (zoomapi) in this process against the stand-in (harness.zoomapi) on
loopback, and what Zoom's answers mean (zoomapi.answers, pure)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest

from harness.zoomapi import RETRY_AFTER_FORMS, ZoomApi, running_zoom_api
from sdksign.server.config.model import S2s, ZoomSettings
from sdksign.server.errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from sdksign.server.zoom.rules import ZAK_REUSE
from sdksign.server.zoomapi import answers
from sdksign.server.zoomapi.answers import ACCESS_TOKEN_MARGIN
from sdksign.server.zoomapi.client import ZakSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        yield api


def s2s_of(api: ZoomApi, secret: str | None = None) -> S2s:
    return S2s(api.account_id, api.client_id, (secret or api.client_secret).encode())


def source_for(api: ZoomApi, clock: Clock | None = None, timeout: float = 2.0) -> ZakSource:
    settings = ZoomSettings(oauth_url=api.url, api_url=api.url, timeout=timeout)
    return ZakSource(settings, clock or Clock())


async def test_a_zak_is_reused_only_while_it_outlives_the_token(zoom: ZoomApi) -> None:
    clock = Clock()
    source = source_for(zoom, clock)
    try:
        first = await source.zak("web", s2s_of(zoom), "alice@example.com", 3600)
        clock.now += ZAK_REUSE - 1
        again = await source.zak("web", s2s_of(zoom), "ALICE@example.com", 3600)
        clock.now += 2
        fresh = await source.zak("web", s2s_of(zoom), "alice@example.com", 3600)
    finally:
        await source.aclose()
    assert first == again != fresh
    assert zoom.issued["u-alice"] == [first, fresh]
    assert zoom.zak_ttls[first] == 3600 + ZAK_REUSE
    assert zoom.token_requests == 1


async def test_concurrent_starts_share_one_zoom_call_and_one_access_token(zoom: ZoomApi) -> None:
    source = source_for(zoom)
    try:
        zaks = await asyncio.gather(
            *(source.zak("web", s2s_of(zoom), "u-carol", 7200) for _ in range(30))
        )
    finally:
        await source.aclose()
    assert set(zaks) == set(zoom.issued["u-carol"]) and len(zoom.issued["u-carol"]) == 1
    assert (zoom.token_requests, zoom.zak_requests) == (1, 1)


async def test_the_access_token_is_kept_until_shortly_before_it_expires(zoom: ZoomApi) -> None:
    clock = Clock()
    source = source_for(zoom, clock)
    try:
        await source.zak("web", s2s_of(zoom), "u-alice", 1800)
        clock.now += zoom.access_token_lifetime - ACCESS_TOKEN_MARGIN - 1
        await source.zak("web", s2s_of(zoom), "u-bob", 1800)
        assert zoom.token_requests == 1
        clock.now += 2
        await source.zak("web", s2s_of(zoom), "u-carol", 1800)
        assert zoom.token_requests == 2
    finally:
        await source.aclose()


async def test_a_new_client_secret_takes_a_new_access_token(zoom: ZoomApi) -> None:
    source = source_for(zoom)
    try:
        await source.zak("web", s2s_of(zoom), "u-alice", 1800)
        zoom.client_secret = "rotated-secret-0123456789"
        await source.zak("web", s2s_of(zoom), "u-bob", 1800)
    finally:
        await source.aclose()
    assert zoom.token_requests == 2


async def test_an_expired_token_is_replaced_once_and_unseen(zoom: ZoomApi) -> None:
    source = source_for(zoom)
    try:
        await source.zak("web", s2s_of(zoom), "u-alice", 1800)
        zoom.expire_tokens()
        zak = await source.zak("web", s2s_of(zoom), "u-bob", 1800)
    finally:
        await source.aclose()
    assert zak in zoom.issued["u-bob"]
    assert zoom.token_requests == 2 and zoom.answers[401] == 1


async def test_each_failure_is_its_own_error_and_says_no_secret(zoom: ZoomApi) -> None:
    source = source_for(zoom, timeout=0.5)
    found: list[BaseException] = []
    faults: list[tuple[dict[str, object], str]] = [
        ({}, "nobody@example.com"),
        ({"fail_429": 1.0}, "u-alice"),
        ({"fail_429": 0.0, "fail_500": 1.0}, "u-alice"),
        ({"fail_500": 0.0, "hang": True}, "u-bob"),
        ({"hang": False, "scopes": ()}, "u-carol"),
    ]
    try:
        for fault, user in faults:
            for name, value in fault.items():
                setattr(zoom, name, value)
            with pytest.raises(Exception) as caught:
                await source.zak("web", s2s_of(zoom), user, 1800)
            found.append(caught.value)
    finally:
        await source.aclose()
    assert [type(e) for e in found] == [
        NotFound,
        ResourceExhausted,
        Unavailable,
        Unavailable,
        FailedPrecondition,
    ]
    reasons = [getattr(e, "reason", "") for e in found]
    assert reasons[:4] == [
        "ZOOM_USER_NOT_FOUND",
        "ZOOM_RATE_LIMITED",
        "ZOOM_UNAVAILABLE",
        "ZOOM_TIMEOUT",
    ]
    assert "user:read:token:admin" in str(found[4])
    said = " ".join(str(e) for e in found)
    for secret in (zoom.client_secret, *zoom.access_tokens):
        assert secret not in said


async def test_the_access_token_is_asked_for_with_a_form_body(zoom: ZoomApi) -> None:
    """grant_type and account_id go in an x-www-form-urlencoded body (RFC 6749 4.4), which
    Zoom takes as it takes the query string: never in the URL."""
    source = source_for(zoom)
    try:
        await source.zak("web", s2s_of(zoom), "u-alice", 1800)
    finally:
        await source.aclose()
    assert zoom.token_forms == {"body": 1}


@pytest.mark.parametrize("form", ["query", "body", "none"])
async def test_the_stand_in_takes_the_oauth_parameters_where_zoom_does(
    zoom: ZoomApi, form: str
) -> None:
    params = {"grant_type": "account_credentials", "account_id": zoom.account_id}
    basic = base64.b64encode(f"{zoom.client_id}:{zoom.client_secret}".encode()).decode()
    async with httpx.AsyncClient(headers={"authorization": f"Basic {basic}"}) as http:
        answer = await http.post(
            f"{zoom.url}/oauth/token",
            params=params if form == "query" else None,
            data=params if form == "body" else None,
        )
    if form == "none":
        assert answer.status_code == 400
        assert answer.json()["error"] == "unsupported_grant_type"
    else:
        assert answer.status_code == 200 and answer.json()["access_token"]
        assert zoom.token_forms == {form: 1}


@pytest.mark.parametrize("form", RETRY_AFTER_FORMS)
async def test_a_429_of_the_zak_endpoint_says_when_in_any_retry_after_form(
    zoom: ZoomApi, form: str
) -> None:
    """A daily limit's 429 on the ZAK endpoint (Zoom's date form among them): the caller is
    told to wait until then, not the 1 s default."""
    zoom.fail_429, zoom.fault_on, zoom.retry_after, zoom.retry_after_form = (
        1.0,
        "user_token",
        7200,
        form,
    )
    source = source_for(zoom)
    try:
        with pytest.raises(ResourceExhausted) as caught:
            await source.zak("web", s2s_of(zoom), "u-alice", 1800)
    finally:
        await source.aclose()
    assert zoom.token_requests == 1 and zoom.faulted == {"user_token": 1}
    # A date is to the second: the wait is a whole number of seconds up to the one sent.
    assert 7200 - 5 <= caught.value.retry_after <= 7200
    assert caught.value.reason == "ZOOM_RATE_LIMITED"


async def test_wrong_credentials_are_a_configuration_problem(zoom: ZoomApi) -> None:
    source = source_for(zoom)
    try:
        with pytest.raises(FailedPrecondition, match="invalid_client") as caught:
            await source.zak("web", s2s_of(zoom, "wrong-secret-0123"), "u-alice", 1800)
    finally:
        await source.aclose()
    assert "wrong-secret" not in str(caught.value)


async def test_a_dead_zoom_is_unreachable() -> None:
    with running_zoom_api() as api:
        url = api.url
    source = ZakSource(ZoomSettings(oauth_url=url, api_url=url, timeout=2.0))
    try:
        with pytest.raises(Unavailable) as caught:
            await source.zak("web", S2s("a", "c", b"secret"), "u-alice", 1800)
    finally:
        await source.aclose()
    assert caught.value.reason == "ZOOM_UNREACHABLE"
    assert url not in str(caught.value)  # httpx's words, with the URL, are never passed on


# --- answers: pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, answers.DEFAULT_RETRY_AFTER),
        ("", answers.DEFAULT_RETRY_AFTER),
        ("7", 7.0),
        ("not a time", answers.DEFAULT_RETRY_AFTER),
        ("99999999", answers.MAX_RETRY_AFTER),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),  # an HTTP date, 40 s after "now" (60)
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # past
        ("Thursday, 01-Jan-70 00:01:40 GMT", 40.0),  # RFC 850, which HTTP still reads
        ("1970-01-01T00:01:40Z", 40.0),  # ISO 8601, Zoom's daily-limit form
        ("1970-01-01T01:01:40+01:00", 40.0),  # with an offset
        ("1970-01-01T00:01:40", 40.0),  # no time zone: UTC
        ("1970-01-01T00:00:59Z", 0.0),  # past: never negative
        ("2020-05-31T00:00:00Z", answers.MAX_RETRY_AFTER),  # decades on: a day at most
        ("-5", answers.DEFAULT_RETRY_AFTER),
        ("1.5", answers.DEFAULT_RETRY_AFTER),
        ("\u00b2", answers.DEFAULT_RETRY_AFTER),  # a digit to str.isdigit, not to float()
        ("2020-13-45T00:00:00Z", answers.DEFAULT_RETRY_AFTER),
        ("Thu, 32 Foo 1970 99:99:99 GMT", answers.DEFAULT_RETRY_AFTER),
        ("0001-01-01T00:00:00+01:00", 0.0),  # the first date there is
        ("9999-12-31T23:59:59-01:00", answers.MAX_RETRY_AFTER),  # and the last, past 9999 in UTC
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert answers.retry_after(header, now=60.0) == seconds


def test_a_retry_after_date_is_rounded_up_to_whole_seconds_from_now() -> None:
    # 39.75 s to wait: 40, so that a caller who waits it is not early.
    assert answers.retry_after("1970-01-01T00:01:40Z", now=60.25) == 40.0
    # Zoom's example, a day's end: the seconds from now until then.
    midnight = 1590883200.0  # 2020-05-31T00:00:00Z
    assert answers.retry_after("2020-05-31T00:00:00Z", now=midnight - 3600) == 3600.0
    assert answers.retry_after("Sun, 31 May 2020 00:00:00 GMT", now=midnight - 3600) == 3600.0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"code": 124, "message": "Invalid access token."}', (124, "")),
        (
            b'{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}',
            (None, "invalid_client"),
        ),
        (b'{"code": "124", "error": "Not a Word!"}', (None, "")),
        (b"<html>", (None, "")),
        (b"[1]", (None, "")),
        (b'{"code": 1}' + b" " * answers.MAX_ERROR_BODY, (None, "")),
    ],
)
def test_error_fields_read_only_what_zoom_documents(
    body: bytes, fields: tuple[int | None, str]
) -> None:
    assert answers.error_fields(body) == fields


def test_zooms_own_words_are_never_echoed() -> None:
    body = b'{"code": 300, "message": "leaked-words-from-zoom"}'
    read = answers.user_token(400, {}, body, 0.0, user="u-1", app="web")
    assert isinstance(read, answers.Failure) and "leaked-words" not in read.error.message
    assert "code 300" in read.error.message


@pytest.mark.parametrize(
    "body", [b'{"token": ""}', b'{"token": 5}', b"{}", b"not json", b'["token"]']
)
def test_a_zak_answer_zoom_does_not_document_is_unavailable(body: bytes) -> None:
    read = answers.user_token(200, {}, body, 0.0, user="u-1", app="web")
    assert isinstance(read, answers.Failure) and read.outcome == "bad_answer"


@pytest.mark.parametrize(
    "body",
    [
        b'{"access_token": "t"}',
        b'{"access_token": "t", "expires_in": "3599"}',
        b'{"expires_in": 3599}',
    ],
)
def test_an_access_token_answer_zoom_does_not_document_is_unavailable(body: bytes) -> None:
    read = answers.access_token(200, {}, body, 0.0, app="web")
    assert isinstance(read, answers.Failure) and read.outcome == "bad_answer"
