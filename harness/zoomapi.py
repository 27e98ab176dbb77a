"""A stand-in for Zoom's API on loopback: the endpoints a host start and a user's grant need,
answering as Zoom documents them, with faults on demand. It is not Zoom: nothing here reaches Zoom, and
what it issues starts no meeting.

Zoom's API cannot be reached from where the tests run, so the tests run the real server
against this over HTTP on loopback (`[zoom] oauth_url` and `api_url` pointed at it). It
follows Zoom's documented contract, from these pages:

- Server-to-Server OAuth, https://developers.zoom.us/docs/internal-apps/s2s-oauth/ and
  OAuth 2.0's "Request an access token", "App Type: Server to Server",
  https://developers.zoom.us/docs/rooms/oauth/ :
  `POST /oauth/token` with `grant_type=account_credentials` and `account_id=ID` "either as
  query parameters or in the request body using the x-www-form-urlencoded format" (Zoom's
  words; both are accepted here, and each request's form counted in `token_forms`) and HTTP
  Basic `client_id:client_secret` answers 200 `{"access_token": ..., "token_type": "bearer",
  "expires_in": 3599, "scope": ..., "api_url": ...}`; the token lives an hour and there is
  no refresh token. Wrong credentials answer 401 `{"reason": "Invalid client_id or
  client_secret", "error": "invalid_client"}`, a grant other than account_credentials 400
  `{"reason": "unsupported grant type", "error": "unsupported_grant_type"}`.
- Get a user's token, https://developers.zoom.us/docs/api/users/#tag/users/GET/users/{userId}/token
  (scope `user:read:token:admin`): `GET /v2/users/{userId}/token?type=zak&ttl=SECONDS`, the
  user by ID or email, answers 200 `{"token": "<the ZAK>"}`; an unknown user 404
  `{"code": 1001, "message": "User does not exist: {userId}."}`; an expired or revoked access
  token 401 `{"code": 124, "message": "Invalid access token."}`; a token without the scope
  400 `{"code": 4711, "message": "Invalid access token, does not contain scopes:[...]"}`.
- Rate limits, https://developers.zoom.us/docs/api/rest/rate-limits/ : 429 `{"code": 429,
  "message": "You have reached the maximum per-second rate limit for this API. Try again
  later."}`, with a Retry-After header when Zoom knows when to retry. For a daily limit the
  page's example under "Best practices for handling errors" (seen at its former address,
  https://marketplace.zoom.us/docs/api-reference/rate-limits ) is a date,
  `Retry-After: 2020-05-31T00:00:00Z` (ISO 8601); HTTP's own forms are seconds and an
  HTTP-date (RFC 9110). All three can be sent.

Faults (set the attributes while it serves): `fail_429` and `fail_500`, the share of requests
answered 429 (with `retry_after` seconds, sent as `retry_after_form` says: "seconds", "iso"
for Zoom's daily-limit date, "http-date") or 500 at random; `fault_on`, the endpoint the
faults hit (one of ENDPOINTS: "oauth_token", "user_token", or a user grant's "user_oauth",
"user_me", "user_obf"; "" for all); `hang`, no answer until it is turned off or the stand-in
stops; `drop`, the next that many requests never answered nor acted on (a request lost on
its way: each is held until its client gives up, and counted in `dropped`);
`expire_tokens()`, every access token issued so far answered with 124. Counts:
`token_requests` (and their forms in `token_forms`), `zak_requests` (both without the
faults, which `faulted` counts by endpoint), each user's ZAKs in `issued`, and the access
token each ZAK was asked with in `zak_tokens`. Users' grants and OBF tokens:
harness.zoomusers, in `user_oauth`.

    with running_zoom_api() as zoom:
        ...  # zoom.url, zoom.users, zoom.issued["u-alice"], zoom.token_requests

`python -m harness.zoomapi` serves one on 127.0.0.1:8765 and prints the [zoom] and
[apps.s2s] tables that point a server at it (docs/join.md, `make try-host-start`).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import random
import re
import secrets
import select
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from harness.zoomusers import UserOAuth

ACCOUNT_ID = "standin-account"
CLIENT_ID = "standin-client"
# A throwaway secret, the same every run, so that a configuration can name it: the
# stand-in guards nothing.
CLIENT_SECRET = "standin-client-secret-not-a-real-one"  # noqa: S105
# The users of the stand-in's account: email -> user ID.
USERS = {
    "alice@example.com": "u-alice",
    "bob@example.com": "u-bob",
    "carol@example.org": "u-carol",
}
ACCESS_TOKEN_LIFETIME = 3599
# The environment variable the printed configuration reads the client secret from.
SECRET_VARIABLE = "STANDIN_S2S_SECRET"  # noqa: S105 (a variable's name)
ZAK_SCOPE = "user:read:token:admin"
# How long a hanging request waits at most before it gives up on its own.
MAX_HANG = 120.0
# An answer: HTTP status, headers, JSON body.
Answer = tuple[int, dict[str, str], dict[str, object]]
_ZAK_PATH = re.compile(r"\A/v2/users/([^/]+)/token\Z")
# The forms a Retry-After is sent in (ZoomApi.retry_after_form), and the endpoints faults can
# be kept to (ZoomApi.fault_on).
RETRY_AFTER_FORMS = ("seconds", "iso", "http-date")
ENDPOINTS = ("oauth_token", "user_token", "user_oauth", "user_me", "user_obf")


@dataclass
class ZoomApi:
    """The stand-in's state: its account, faults and counts (read and set from any thread)."""

    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    account_id: str = ACCOUNT_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    scopes: tuple[str, ...] = (ZAK_SCOPE,)
    access_token_lifetime: int = ACCESS_TOKEN_LIFETIME
    fail_429: float = 0.0
    fail_500: float = 0.0
    retry_after: int | None = 2
    retry_after_form: str = "seconds"
    fault_on: str = ""
    hang: bool = False
    drop: int = 0
    dropped: int = 0
    url: str = ""
    token_requests: int = 0
    # How each token request gave grant_type and account_id: "query" or "body".
    token_forms: Counter[str] = field(default_factory=Counter)
    zak_requests: int = 0
    # Each endpoint's requests answered with a fault (429 or 500) instead.
    faulted: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)
    # Each user ID's ZAKs, in the order issued, and each ZAK's asked ttl.
    issued: dict[str, list[str]] = field(default_factory=dict)
    zak_ttls: dict[str, int] = field(default_factory=dict)
    # Each ZAK's access token: the one its request carried (which worker asked, in tests).
    zak_tokens: dict[str, str] = field(default_factory=dict)
    # Every access token issued, expired or not (the tests look for them in logs).
    access_tokens: list[str] = field(default_factory=list)
    _tokens: dict[str, float] = field(default_factory=dict)
    # Users authorizing apps (harness.zoomusers): OAuth with PKCE, rotation, the OBF token.
    user_oauth: UserOAuth = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.user_oauth = UserOAuth(self.users)

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (Zoom's 401, code 124)."""
        with self._lock:
            self._tokens.clear()

    def user_id(self, given: str) -> str | None:
        """The ID of the user `given` names (an email, in any case, or an ID)."""
        if given in self.users.values():
            return given
        return self.users.get(given.lower())

    # --- the endpoints (the handler calls these; each returns status, headers, body) ------

    def oauth_token(
        self, query: dict[str, str], form: dict[str, str], authorization: str
    ) -> Answer:
        """`query`: the query string's parameters; `form`: an x-www-form-urlencoded body's.
        Zoom takes the parameters from either; a body's are read first here."""
        params = form if "grant_type" in form else query
        with self._lock:
            self.token_requests += 1
            self.token_forms["body" if params is form else "query"] += 1
        if params.get("grant_type") != "account_credentials":
            return 400, {}, {"reason": "unsupported grant type", "error": "unsupported_grant_type"}
        expected = f"{self.client_id}:{self.client_secret}".encode()
        scheme, _, encoded = authorization.partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            given = b""
        if scheme.lower() != "basic" or not secrets.compare_digest(given, expected):
            return (
                401,
                {},
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
            )
        if params.get("account_id") != self.account_id:
            return 400, {}, {"reason": "Invalid account_id", "error": "invalid_request"}
        token = "standin-at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.access_token_lifetime
            self.access_tokens.append(token)
        return (
            200,
            {},
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.access_token_lifetime,
                "scope": " ".join(self.scopes),
                "api_url": self.url,
            },
        )

    def user_token(self, user: str, query: dict[str, str], authorization: str) -> Answer:
        with self._lock:
            self.zak_requests += 1
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or expires < time.monotonic():
            return 401, {}, {"code": 124, "message": "Invalid access token."}
        if ZAK_SCOPE not in self.scopes:
            return (
                400,
                {},
                {
                    "code": 4711,
                    "message": f"Invalid access token, does not contain scopes:[{ZAK_SCOPE}].",
                },
            )
        user_id = self.user_id(user)
        if user_id is None:
            return 404, {}, {"code": 1001, "message": f"User does not exist: {user}."}
        zak = "standin-zak-" + secrets.token_urlsafe(32)
        with self._lock:
            self.issued.setdefault(user_id, []).append(zak)
            self.zak_ttls[zak] = int(query.get("ttl", "7200"))
            self.zak_tokens[zak] = token
        return 200, {}, {"token": zak}

    def take_drop(self) -> bool:
        """Whether this request is one of the `drop` to lose (counted in `dropped`)."""
        with self._lock:
            if self.drop <= 0:
                return False
            self.drop -= 1
            self.dropped += 1
            return True

    def fault(self, endpoint: str) -> Answer | None:
        """A fault to answer a request to `endpoint` (one of ENDPOINTS) with instead (429 or
        500 at random), or None; hangs first if asked. None when `fault_on` names another."""
        if self.fault_on and self.fault_on != endpoint:
            return None
        deadline = time.monotonic() + MAX_HANG
        while self.hang and not self._stopping.is_set() and time.monotonic() < deadline:
            self._stopping.wait(0.05)
        draw = random.random()  # noqa: S311 (faults, not secrets)
        if draw < self.fail_429 + self.fail_500:
            with self._lock:
                self.faulted[endpoint] += 1
        if draw < self.fail_429:
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after_value()}
            message = (
                "You have reached the maximum per-second rate limit for this API. Try again later."
            )
            return 429, headers, {"code": 429, "message": message}
        if draw < self.fail_429 + self.fail_500:
            return 500, {}, {"code": 500, "message": "Internal Server Error"}
        return None

    def retry_after_value(self) -> str:
        """The Retry-After header for `retry_after` seconds from now, in `retry_after_form`:
        a date is now plus those seconds, to the second (cut, as Zoom's example shows none)."""
        seconds = self.retry_after or 0
        if self.retry_after_form == "seconds":
            return str(seconds)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        when = now + datetime.timedelta(seconds=seconds)
        if self.retry_after_form == "iso":
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.retry_after_form == "http-date":
            return format_datetime(when, usegmt=True)
        raise ValueError(f"retry_after_form: one of {RETRY_AFTER_FORMS}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests count what they need."""

    def do_POST(self) -> None:
        self._answer_or_drop("POST")

    def do_GET(self) -> None:
        self._answer_or_drop("GET")

    def _answer_or_drop(self, method: str) -> None:
        if self.server.api.take_drop():
            self._hold_until_closed(self.server.api)
        else:
            self._answer(method)

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        sent = self.rfile.read(length) if length else b""
        api = self.server.api
        parts = urlsplit(self.path)
        query = _params(parts.query)
        content_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        form = (
            _params(sent.decode("ascii", errors="replace"))
            if content_type == "application/x-www-form-urlencoded"
            else {}
        )
        authorization = self.headers.get("authorization", "")
        endpoint, act = self._route(method, parts.path, query, form, authorization)
        answer = api.fault(endpoint) or act()
        status, headers, body = answer
        with api._lock:
            api.answers[status] += 1
        data = json.dumps(body).encode() if body or status != 302 else b""
        self.send_response(status)
        self.send_header("content-type", "application/json;charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        form: dict[str, str],
        authorization: str,
    ) -> tuple[str, Callable[[], Answer]]:
        """The endpoint (of ENDPOINTS; "" for none) a request is to, and what answers it."""
        api = self.server.api
        users = api.user_oauth
        # Zoom's OAuth endpoints take their parameters from the query or a form body.
        given = query | form
        match = _ZAK_PATH.match(path)
        if method == "GET" and path == "/oauth/authorize":
            return "user_oauth", lambda: users.authorize(query)
        if (
            method == "POST"
            and path == "/oauth/token"
            and given.get("grant_type") in ("authorization_code", "refresh_token")
        ):
            return "user_oauth", lambda: users.token(given, authorization)
        if method == "POST" and path == "/oauth/revoke":
            return "user_oauth", lambda: users.revoke(given, authorization)
        if method == "GET" and path == "/v2/users/me":
            return "user_me", lambda: users.me(authorization)
        if method == "GET" and match and match[1] == "me" and query.get("type") == "onbehalf":
            return "user_obf", lambda: users.onbehalf(query, authorization)
        if method == "POST" and path == "/oauth/token":
            return "oauth_token", lambda: api.oauth_token(query, form, authorization)
        if method == "GET" and match:
            user = unquote(match[1])
            return "user_token", lambda: api.user_token(user, query, authorization)
        return "", lambda: (404, {}, {"code": 404, "message": "Not Found"})

    def _hold_until_closed(self, api: ZoomApi) -> None:
        """No answer: wait until the client closes the connection (or MAX_HANG), then close."""
        self.close_connection = True
        deadline = time.monotonic() + MAX_HANG
        while not api._stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                return


def _params(text: str) -> dict[str, str]:
    """The first value of each parameter of a query string or form body."""
    return {key: values[0] for key, values in parse_qs(text).items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: ZoomApi

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet for a client that gave up (a hanging answer written to a closed connection);
        anything else is printed, as the base class does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def running_zoom_api(host: str = "127.0.0.1", port: int = 0) -> Iterator[ZoomApi]:
    """A stand-in serving in a thread of this process on `host`:`port` (0: a free port)."""
    server = _Server((host, port), _Handler)
    api = ZoomApi()
    server.api = api
    api.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="zoom-standin", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def config_tables(api: ZoomApi, secret_env: str = SECRET_VARIABLE) -> str:
    """The [zoom] table and the [apps.s2s] table (under an app) that point at `api`."""
    return (
        f'[zoom]\noauth_url = "{api.url}"\napi_url = "{api.url}"\n\n'
        f'# under your meeting app\'s [[apps]]:\n[apps.s2s]\naccount_id = "{api.account_id}"\n'
        f'client_id = "{api.client_id}"\nclient_secret_env = "{secret_env}"\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A stand-in for Zoom's API on loopback.")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with running_zoom_api(port=args.port) as api:
        print(f"a stand-in for Zoom's API (not Zoom) on {api.url}; users: {', '.join(api.users)}")
        print(f"client secret: export {SECRET_VARIABLE}={api.client_secret}\n")
        print(config_tables(api), flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
