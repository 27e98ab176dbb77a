"""Zoom's user OAuth, over httpx: the authorize URL (pure), the authorization_code and
refresh_token grants, the revoke endpoint, GET /v2/users/me, and a user's OBF token.

The app's client ID is its SDK key and the client secret its SDK secret (a General App's
Client ID and Client Secret). Zoom's answers are read here into values or RequestErrors;
Zoom's own words, which may quote what was sent, are never echoed, and no token or code is
ever part of a message, a log line or a metric label.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from ..errors import FailedPrecondition, NotFound
from ..observe.metrics import zoom_request
from ..zoom.rules import (
    OAUTH_AUTHORIZE_PATH,
    OAUTH_REVOKE_PATH,
    OAUTH_TOKEN_PATH,
    OBF_PATH,
    REFRESH_REFUSED_ERRORS,
    USER_ME_PATH,
    is_zoom_user,
    quoted,
)
from .answers import (
    Failure,
    bad_answer,
    common_failure,
    error_fields,
    is_expired_token,
    unreachable,
    usable_for,
)
from .client import answer_headers, count_answer
from .grantstore import Refused, Tokens

if TYPE_CHECKING:
    from ..config import ZoomSettings

# A refresh's exchange with Zoom is never dropped at [zoom] timeout: Zoom may have rotated
# the refresh token already, and its answer is the only copy of the new one. The call that
# waits is answered UNAVAILABLE at [zoom] timeout (grants.GrantKeeper); the exchange goes on
# in the background for up to this many times [zoom] timeout, and its tokens are stored.
REFRESH_LIMIT_FACTOR = 4


def refresh_limit(settings: ZoomSettings) -> float:
    """The most a refresh's exchange with Zoom may take, in seconds (docs/join.md)."""
    return settings.timeout * REFRESH_LIMIT_FACTOR


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier (64 characters) and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(
    oauth_url: str, client_id: str, redirect_uri: str, state: str, challenge: str
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{oauth_url}{OAUTH_AUTHORIZE_PATH}?{query}"


def usable_until(now: float, expires_in: float) -> float:
    """Until when (epoch seconds) a user's access token is used (answers.usable_for)."""
    return now + usable_for(expires_in)


def read_tokens(
    status: int, headers: dict[str, str], body: bytes, now: float, what: str
) -> Tokens | Failure:
    """The answer of POST /oauth/token for a user's grant (either grant type)."""
    if status == 200:
        parsed = _json(body)
        access = parsed.get("access_token")
        refresh = parsed.get("refresh_token")
        expires_in = parsed.get("expires_in")
        scope = parsed.get("scope", "")
        if (
            isinstance(access, str)
            and access
            and isinstance(refresh, str)
            and refresh
            and type(expires_in) is int
            and expires_in > 0
            and isinstance(scope, str)
        ):
            return Tokens(access, refresh, usable_until(now, expires_in), tuple(scope.split()))
        return bad_answer(what)
    failure = common_failure(status, headers, now, what)
    if failure is not None:
        return failure
    _, word = error_fields(body)
    return Failure(
        FailedPrecondition(
            f"Zoom's OAuth server refused {what} (HTTP {status}{', ' + word if word else ''})"
        ),
        "refused",
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class Me:
    user_id: str
    email: str


class ExpiredAccess(Exception):
    """Zoom called the user's access token expired or revoked (401, code 124)."""


class UserOAuth:
    """One worker's HTTP client of Zoom's user OAuth and API."""

    def __init__(self, settings: ZoomSettings) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            headers={"accept": "application/json", "user-agent": "sdksign"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def exchange(
        self, client_id: str, secret: bytes, code: str, redirect_uri: str, verifier: str
    ) -> Tokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        answer = await self._token(client_id, secret, form, "the authorization code")
        read = read_tokens(
            answer.status_code,
            answer_headers(answer),
            answer.content,
            time.time(),
            "the authorization code",
        )
        count_answer("user_oauth_code", answer, read)
        if isinstance(read, Failure):
            raise read.error
        return read

    async def refresh(self, client_id: str, secret: bytes, refresh_token: str, user: str) -> Tokens:
        """New tokens for a grant; Refused when Zoom no longer takes its refresh token.
        Bounded by refresh_limit, not [zoom] timeout: see REFRESH_LIMIT_FACTOR."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        what = f"the refresh of the grant of {quoted(user, is_zoom_user)}"
        answer = await self._token(client_id, secret, form, what, refresh_limit(self.settings))
        read = read_tokens(
            answer.status_code, answer_headers(answer), answer.content, time.time(), what
        )
        count_answer("user_oauth_refresh", answer, read)
        if isinstance(read, Failure):
            if (
                answer.status_code in (400, 401)
                and error_fields(answer.content)[1] in REFRESH_REFUSED_ERRORS
            ):
                raise Refused(what)
            raise read.error
        return read

    async def revoke(self, client_id: str, secret: bytes, token: str, user: str) -> None:
        """Revoke a grant at Zoom. Only a 429 or Zoom's failure (5xx, no answer) is an error:
        any other answer (one Zoom already forgot, 400/401, included) counts as revoked."""
        url = f"{self.settings.oauth_url}{OAUTH_REVOKE_PATH}"
        what = f"the revocation of the grant of {quoted(user, is_zoom_user)}"
        auth = httpx.BasicAuth(client_id, secret.decode())
        answer = await self._request(
            "user_oauth_revoke", "POST", url, what, data={"token": token}, auth=auth
        )
        failure = common_failure(answer.status_code, answer_headers(answer), time.time(), what)
        count_answer("user_oauth_revoke", answer, failure or "ok")
        if failure is not None:
            raise failure.error

    async def me(self, access_token: str) -> Me:
        url = f"{self.settings.api_url}{USER_ME_PATH}"
        what = "the user who authorized"
        answer = await self._request("user_me", "GET", url, what, bearer=access_token)
        parsed = _json(answer.content) if answer.status_code == 200 else {}
        user_id, email = parsed.get("id"), parsed.get("email")
        if isinstance(user_id, str) and user_id and isinstance(email, str) and "@" in email:
            count_answer("user_me", answer, "ok")
            return Me(user_id, email)
        failure = common_failure(
            answer.status_code, answer_headers(answer), time.time(), what
        ) or bad_answer(what)
        count_answer("user_me", answer, failure)
        raise failure.error

    async def obf(self, access_token: str, meeting_number: str, user: str) -> str:
        """The OBF token of the grant's user for the meeting; ExpiredAccess on Zoom's 124."""
        url = f"{self.settings.api_url}{OBF_PATH}"
        what = f"the OBF token of {quoted(user, is_zoom_user)}"
        params = {"type": "onbehalf", "meeting_id": meeting_number}
        answer = await self._request(
            "user_obf", "GET", url, what, params=params, bearer=access_token
        )
        if is_expired_token(answer.status_code, answer.content):
            count_answer("user_obf", answer, Failure(FailedPrecondition(""), "token_expired"))
            raise ExpiredAccess(what)
        token = _json(answer.content).get("token") if answer.status_code == 200 else None
        if isinstance(token, str) and token:
            count_answer("user_obf", answer, "ok")
            return token
        failure = common_failure(answer.status_code, answer_headers(answer), time.time(), what)
        if failure is None and answer.status_code == 404:
            failure = Failure(
                NotFound(
                    f"Zoom has no meeting {meeting_number} for {what}",
                    "ZOOM_MEETING_NOT_FOUND",
                    meeting_number,
                ),
                "not_found",
            )
        if failure is None and answer.status_code != 200:
            code, _ = error_fields(answer.content)
            failure = Failure(
                FailedPrecondition(
                    f"Zoom refused {what} (HTTP {answer.status_code}"
                    f"{f', code {code}' if code is not None else ''})"
                ),
                "refused",
            )
        failure = failure or bad_answer(what)
        count_answer("user_obf", answer, failure)
        raise failure.error

    async def _token(
        self,
        client_id: str,
        secret: bytes,
        form: dict[str, str],
        what: str,
        limit: float | None = None,
    ) -> httpx.Response:
        url = f"{self.settings.oauth_url}{OAUTH_TOKEN_PATH}"
        auth = httpx.BasicAuth(client_id, secret.decode())
        return await self._request(
            "user_oauth", "POST", url, what, data=form, auth=auth, limit=limit
        )

    async def _request(
        self,
        endpoint: str,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        bearer: str | None = None,
        auth: httpx.Auth | None = None,
        limit: float | None = None,
    ) -> httpx.Response:
        """One request bounded whole by `limit` (None: [zoom] timeout); no answer is
        UNAVAILABLE."""
        headers = {"authorization": f"Bearer {bearer}"} if bearer is not None else None
        seconds = self.settings.timeout if limit is None else limit
        started = time.monotonic()
        try:
            async with asyncio.timeout(seconds):
                return await self._http.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=auth,
                    timeout=httpx.Timeout(seconds),
                )
        except (TimeoutError, httpx.TimeoutException):
            failure = unreachable(what, timed_out=True)
        except httpx.HTTPError:
            failure = unreachable(what, timed_out=False)
        zoom_request(endpoint, failure.outcome, time.monotonic() - started)
        raise failure.error from None
