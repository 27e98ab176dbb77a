"""What Zoom's answers mean: from an HTTP status, its headers and its body to the value asked
for or the RequestError the caller gets, and the outcome the metrics count.

Pure. Zoom's error bodies are JSON objects such as {"code": 124, "message": "Invalid access
token."} (its REST API) or {"reason": "...", "error": "invalid_client"} (its OAuth server):
only the code (a number) and the OAuth error (a short word) are ever read into a message;
Zoom's own words are never echoed, as they may quote what was sent.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import FailedPrecondition, NotFound, RequestError, ResourceExhausted, Unavailable
from ..zoom.rules import (
    ZAK_SCOPE,
    ZOOM_INVALID_ACCESS_TOKEN,
    ZOOM_USER_NOT_FOUND,
    is_zoom_user,
    quoted,
    shown,
)

# How long a caller is told to wait after Zoom's 429 without a Retry-After (or with one that
# cannot be read), in seconds; and the most a Retry-After is believed: a day, as Zoom's daily
# limits reset at 00:00 UTC, so no wait Zoom means is longer (a date further on is a wrong
# clock or a wrong header, and a day is also the most RetryInfo is given: runtime.rpc).
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 86400.0
# An error body is read up to this many bytes; a longer one is not what Zoom documents.
MAX_ERROR_BODY = 4096
# An access token (S2S or a user's) is used until this many seconds before Zoom says it
# expires (Zoom's live an hour); one that lives less than twice this, for half its life.
ACCESS_TOKEN_MARGIN = 60.0
_WORD = re.compile(r"[a-z_]{1,40}")
# Retry-After in seconds: ASCII digits only (str.isdigit takes "²", which float() refuses).
_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Failure:
    """A request to Zoom that did not give what was asked: the error for the caller and the
    outcome the metrics count (observe.metrics.ZOOM_OUTCOMES)."""

    error: RequestError
    outcome: str


@dataclass(frozen=True)
class AccessToken:
    """An S2S OAuth access token and its lifetime in seconds, as Zoom gave them."""

    value: str
    expires_in: float


def error_fields(body: bytes) -> tuple[int | None, str]:
    """Zoom's error code (its API's `code`) and OAuth error word (`error`) from an error body,
    each only when it is what Zoom documents: an integer, a short lowercase word."""
    if len(body) > MAX_ERROR_BODY:
        return None, ""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(parsed, dict):
        return None, ""
    code = parsed.get("code")
    word = parsed.get("error")
    return (
        code if type(code) is int else None,
        word if isinstance(word, str) and _WORD.fullmatch(word) else "",
    )


def retry_after(value: str | None, now: float) -> float:
    """Seconds to wait from a Retry-After header, never negative and at most MAX_RETRY_AFTER;
    DEFAULT_RETRY_AFTER when there is none or it cannot be read.

    Read in three forms: whole seconds ("7", HTTP's delay-seconds); an ISO 8601 date, the form
    Zoom's rate-limit page shows for a daily limit ("2020-05-31T00:00:00Z"); an HTTP-date
    ("Sun, 31 May 2020 00:00:00 GMT", RFC 9110). A date is the time from `now` (Unix seconds)
    until it, rounded up to a whole second (a caller who waits it is not early); a date
    without a time zone is taken as UTC, as Zoom's daily limits reset at 00:00 UTC.
    """
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    seconds: float
    if _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        when = _date(value)
        if when is None:
            return DEFAULT_RETRY_AFTER
        seconds = float(math.ceil(when - now))
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _date(value: str) -> float | None:
    """The Unix time of an ISO 8601 date or an HTTP-date (naive: UTC); None for anything
    else."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def is_expired_token(status: int, body: bytes) -> bool:
    """Zoom's answer for an access token that expired or was revoked: 401, code 124."""
    return status == 401 and error_fields(body)[0] == ZOOM_INVALID_ACCESS_TOKEN


def common_failure(status: int, headers: dict[str, str], now: float, what: str) -> Failure | None:
    """429 and 5xx, alike for every endpoint (`what` names it in the message); None otherwise."""
    if status == 429:
        wait = retry_after(headers.get("retry-after"), now)
        error: RequestError = ResourceExhausted(
            f"Zoom's API is rate limiting {what}; try again in {wait:g} s",
            retry_after=wait,
            subject="",
            reason="ZOOM_RATE_LIMITED",
            rule="zoom_rate_limit",
        )
        return Failure(error, "rate_limited")
    if status >= 500:
        return Failure(
            Unavailable(f"Zoom's API failed {what} (HTTP {status}); try again", "ZOOM_UNAVAILABLE"),
            "server_error",
        )
    return None


def access_token(
    status: int, headers: dict[str, str], body: bytes, now: float, app: str
) -> AccessToken | Failure:
    """The answer of POST /oauth/token (grant_type account_credentials) for app `app`."""
    what = f"the access token of app {app!r}"
    if status == 200:
        try:
            parsed: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        token = parsed.get("access_token") if isinstance(parsed, dict) else None
        expires_in = parsed.get("expires_in") if isinstance(parsed, dict) else None
        if isinstance(token, str) and token and type(expires_in) is int and expires_in > 0:
            return AccessToken(token, float(expires_in))
        return bad_answer(what)
    failure = common_failure(status, headers, now, what)
    if failure is not None:
        return failure
    _, word = error_fields(body)
    return Failure(
        FailedPrecondition(
            f"Zoom's OAuth server refused the [apps.s2s] credentials of app {app!r} "
            f"(HTTP {status}{', ' + word if word else ''}): check account_id, client_id and "
            "the client secret, and that the Server-to-Server OAuth app is activated"
        ),
        "refused",
    )


def zak_of(user: str) -> str:
    """How a message names a user's ZAK: the user only in a Zoom user's shape."""
    return f"the ZAK of {quoted(user, is_zoom_user)}"


def user_token(
    status: int, headers: dict[str, str], body: bytes, now: float, user: str, app: str
) -> str | Failure:
    """The answer of GET /v2/users/{user}/token?type=zak: the ZAK, or why there is none."""
    what = zak_of(user)
    if status == 200:
        try:
            parsed: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        zak = parsed.get("token") if isinstance(parsed, dict) else None
        return zak if isinstance(zak, str) and zak else bad_answer(what)
    failure = common_failure(status, headers, now, what)
    if failure is not None:
        return failure
    code, _ = error_fields(body)
    if status == 404 or code == ZOOM_USER_NOT_FOUND:
        return Failure(
            NotFound(
                f"Zoom has no user {quoted(user, is_zoom_user)} on the account of app {app!r}",
                reason="ZOOM_USER_NOT_FOUND",
                subject=shown(user, is_zoom_user),
            ),
            "not_found",
        )
    return Failure(
        FailedPrecondition(
            f"Zoom refused to give {what} (HTTP {status}"
            f"{f', code {code}' if code is not None else ''}): the Server-to-Server OAuth app of "
            f"app {app!r} needs the scope {ZAK_SCOPE}"
        ),
        "token_expired" if is_expired_token(status, body) else "refused",
    )


def bad_answer(what: str) -> Failure:
    """An answer Zoom's documentation does not describe (UNAVAILABLE, ZOOM_BAD_ANSWER)."""
    return Failure(
        Unavailable(
            f"Zoom's API answered {what} in a form it does not document", "ZOOM_BAD_ANSWER"
        ),
        "bad_answer",
    )


def usable_for(expires_in: float) -> float:
    """How long an access token Zoom says expires in `expires_in` seconds is used: until
    ACCESS_TOKEN_MARGIN before, or half its life when it lives under twice that."""
    if expires_in >= 2 * ACCESS_TOKEN_MARGIN:
        return expires_in - ACCESS_TOKEN_MARGIN
    return expires_in / 2


def unreachable(what: str, timed_out: bool) -> Failure:
    """Zoom's API did not answer: no connection, or no answer within [zoom] timeout."""
    if timed_out:
        return Failure(
            Unavailable(f"Zoom's API did not answer {what} in time", "ZOOM_TIMEOUT"), "timeout"
        )
    return Failure(
        Unavailable(f"Zoom's API cannot be reached for {what}", "ZOOM_UNREACHABLE"), "unreachable"
    )
