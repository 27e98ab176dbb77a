"""ZakSource: a Zoom user's ZAK, asked of Zoom's API through an app's Server-to-Server OAuth
app, with everything that keeps Zoom asked as little as it must be.

- The S2S access token is kept per worker and per credentials (a new client secret takes a
  new token) until answers.ACCESS_TOKEN_MARGIN before it expires, and fetched once at a
  time: calls that need it while it is being fetched wait for that one request.
- Host starts for the same user, app and lifetime at the same time share one Zoom call; one
  that gives up (its deadline) leaves the others theirs.
- A ZAK is asked to live ZAK_REUSE seconds longer than the token, and is handed out again for
  ZAK_REUSE seconds: never with less than the token's lifetime left.
- Zoom's 401 with code 124 (the access token expired or was revoked) is answered once,
  unseen: a new access token, and the request again.
- No client secret, access token or ZAK is ever part of a log line, a metric, a span or an
  error: the messages say whose, never what.
- The access token is asked for as OAuth 2.0's client credentials grant is (RFC 6749 4.4):
  `grant_type` and `account_id` in an application/x-www-form-urlencoded body, the client ID
  and secret in HTTP Basic. Zoom's OAuth page takes them "either as query parameters or in
  the request body using the x-www-form-urlencoded format"; in the body, they stay out of
  the URL that proxies and access logs on the way keep.

httpx carries the requests: [zoom] timeout bounds each one whole (asyncio.timeout around it,
not only httpx's timeouts for each phase); the caller's deadline bounds the call
(runtime.service).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import httpx

from ..observe.metrics import zoom_request
from ..zoom.rules import ZAK_MAX_TTL, ZAK_REUSE
from .answers import (
    Failure,
    access_token,
    is_expired_token,
    unreachable,
    usable_for,
    user_token,
    zak_of,
)

if TYPE_CHECKING:
    from ..config import S2s, ZoomSettings

# The most ZAKs kept for reuse in a worker; past it, those too old to reuse are let go of.
MAX_KEPT_ZAKS = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class _Kept:
    value: str
    until: float  # monotonic seconds: handed out again until then


class ZakSource:
    """ZAKs from the Zoom API at `settings` (one per worker, made on its first host start)."""

    def __init__(self, settings: ZoomSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            headers={"accept": "application/json", "user-agent": "sdksign"},
        )
        self._tokens: dict[tuple[str, str, str], _Kept] = {}
        self._zaks: dict[tuple[object, ...], _Kept] = {}
        self._fetching: dict[tuple[object, ...], asyncio.Task[object]] = {}

    async def aclose(self) -> None:
        """Close the connections; calls in flight fail as unreachable."""
        for task in list(self._fetching.values()):
            task.cancel()
        await self._http.aclose()

    async def zak(self, app: str, s2s: S2s, user: str, ttl: int) -> str:
        """The ZAK of Zoom user `user` (an email or a user ID) for a token of `ttl` seconds of
        app `app`; raises RequestError (NotFound, ResourceExhausted, Unavailable,
        FailedPrecondition) as answers says."""
        # Emails in any case name one user (policy.may_start_as matches them the same way).
        key = ("zak", s2s.key, user.lower() if "@" in user else user, ttl)
        kept = self._zaks.get(key)
        if kept is not None and self._clock() < kept.until:
            return kept.value
        return await self._shared(key, lambda: self._fetch_zak(key, app, s2s, user, ttl))

    async def _shared(self, key: tuple[object, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        """The result of the fetch under way for `key`, or of a new one: each waiter's
        cancellation (its deadline) leaves the fetch to the others."""
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(fetch())  # type: ignore[arg-type]
            self._fetching[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)  # type: ignore[arg-type]

    def _done(self, key: tuple[object, ...], task: asyncio.Task[object]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled():
            task.exception()  # retrieved: a fetch nobody waits for any more logs nothing

    async def _fetch_zak(
        self, key: tuple[object, ...], app: str, s2s: S2s, user: str, ttl: int
    ) -> str:
        started = self._clock()
        zak_ttl = min(ttl + ZAK_REUSE, ZAK_MAX_TTL)
        url = f"{self.settings.api_url}/v2/users/{quote(user, safe='@')}/token"
        params = {"type": "zak", "ttl": str(zak_ttl)}
        token = await self._access_token(app, s2s)
        what = zak_of(user)
        answer = await self._request(
            "user_token", "GET", url, params=params, bearer=token, what=what
        )
        if is_expired_token(answer.status_code, answer.content):
            zoom_request("user_token", "token_expired", answer.elapsed.total_seconds())
            self._forget(s2s, token)
            token = await self._access_token(app, s2s)
            answer = await self._request(
                "user_token", "GET", url, params=params, bearer=token, what=what
            )
        now = time.time()
        read = user_token(
            answer.status_code, answer_headers(answer), answer.content, now, user=user, app=app
        )
        count_answer("user_token", answer, read)
        if isinstance(read, Failure):
            raise read.error
        self._keep(key, read, started + min(ZAK_REUSE, zak_ttl - ttl))
        return read

    def _keep(self, key: tuple[object, ...], zak: str, until: float) -> None:
        if len(self._zaks) >= MAX_KEPT_ZAKS:
            now = self._clock()
            self._zaks = {k: v for k, v in self._zaks.items() if v.until > now}
            if len(self._zaks) >= MAX_KEPT_ZAKS:
                return
        self._zaks[key] = _Kept(zak, until)

    async def _access_token(self, app: str, s2s: S2s) -> str:
        kept = self._tokens.get(s2s.key)
        if kept is not None and self._clock() < kept.until:
            return kept.value
        key = ("token", *s2s.key)
        return await self._shared(key, lambda: self._fetch_access_token(app, s2s))

    def _forget(self, s2s: S2s, token: str) -> None:
        """Let go of `token` (Zoom called it expired), unless a newer one replaced it."""
        kept = self._tokens.get(s2s.key)
        if kept is not None and kept.value == token:
            del self._tokens[s2s.key]

    async def _fetch_access_token(self, app: str, s2s: S2s) -> str:
        started = self._clock()
        url = f"{self.settings.oauth_url}/oauth/token"
        form = {"grant_type": "account_credentials", "account_id": s2s.account_id}
        auth = httpx.BasicAuth(s2s.client_id, s2s.client_secret.decode())
        what = f"the access token of app {app!r}"
        answer = await self._request("oauth_token", "POST", url, form=form, auth=auth, what=what)
        read = access_token(
            answer.status_code, answer_headers(answer), answer.content, time.time(), app
        )
        count_answer("oauth_token", answer, read)
        if isinstance(read, Failure):
            raise read.error
        self._tokens[s2s.key] = _Kept(read.value, started + usable_for(read.expires_in))
        return read.value

    async def _request(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        bearer: str | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """One request (`params` in the query string, `form` as an x-www-form-urlencoded
        body), bounded whole by [zoom] timeout; a failure to get an answer is counted and
        raised as UNAVAILABLE (never with httpx's words: they hold the URL)."""
        headers = {"authorization": f"Bearer {bearer}"} if bearer is not None else None
        started = self._clock()
        failure: Failure | None = None
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._http.request(
                    method, url, params=params, data=form, headers=headers, auth=auth
                )
        except TimeoutError:
            failure = unreachable(what, timed_out=True)
        except httpx.TimeoutException:
            failure = unreachable(what, timed_out=True)
        except httpx.HTTPError:
            failure = unreachable(what, timed_out=False)
        zoom_request(endpoint, failure.outcome, self._clock() - started)
        raise failure.error from None


def answer_headers(answer: httpx.Response) -> dict[str, str]:
    """The headers of Zoom's answer that answers.py reads."""
    return {"retry-after": answer.headers.get("retry-after", "")}


def count_answer(endpoint: str, answer: httpx.Response, read: object) -> None:
    """Count a request to Zoom's API by `read`, what was made of its answer."""
    outcome = read.outcome if isinstance(read, Failure) else "ok"
    zoom_request(endpoint, outcome, answer.elapsed.total_seconds())
