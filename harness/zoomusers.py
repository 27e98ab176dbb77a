"""The stand-in's user OAuth (harness.zoomapi serves it): users authorizing an app, Zoom's
rotating refresh tokens, revocation, GET /v2/users/me and the OBF token. Not Zoom.

From Zoom's documented contract:
- OAuth with PKCE, https://developers.zoom.us/docs/integrations/oauth/ :
  `GET /oauth/authorize?response_type=code&client_id=...&redirect_uri=...&state=...
  &code_challenge=...&code_challenge_method=S256` sends the browser back to
  `redirect_uri?code=...&state=...` once the user agrees (here at once, as `consenting`);
  `POST /oauth/token` with HTTP Basic `client_id:client_secret` and
  `grant_type=authorization_code&code=...&redirect_uri=...&code_verifier=...` answers
  `{"access_token", "token_type": "bearer", "refresh_token", "expires_in": 3599, "scope"}`;
  `grant_type=refresh_token&refresh_token=...` answers the same with a NEW refresh token,
  and the old one then fails: 400 `{"reason": "Invalid Token!", "error": "invalid_request"}`;
  a bad or used code is 400 `{"reason": "Invalid authorization code", "error":
  "invalid_request"}`.
- `POST /oauth/revoke?token=...` with HTTP Basic answers `{"status": "success"}`: the grant's
  tokens stop working.
- `GET /v2/users/me` with the user's access token answers `{"id", "email", ...}`.
- The OBF token, https://developers.zoom.us/docs/meeting-sdk/auth/obf/ :
  `GET /v2/users/me/token?type=onbehalf&meeting_id=...` answers `{"token": ...}`.
An expired or revoked access token is 401 `{"code": 124, "message": "Invalid access token."}`.

Counts: `refreshes`, `stale_refreshes` (a rotated-out refresh token sent: the number the soak
wants at 0), `revoked`, and each (user ID, meeting)'s OBF tokens in `obf_issued`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

Answer = tuple[int, dict[str, str], dict[str, object]]
USER_ACCESS_LIFETIME = 3599
USER_SCOPES = ("user:read:token",)
_INVALID_TOKEN: Answer = 400, {}, {"reason": "Invalid Token!", "error": "invalid_request"}
_EXPIRED: Answer = 401, {}, {"code": 124, "message": "Invalid access token."}


@dataclass
class _Grant:
    user_id: str
    client_id: str
    refresh: str
    revoked: bool = False


@dataclass
class UserOAuth:
    """Apps (client ID -> secret) users may authorize, and what they were given."""

    users: dict[str, str]  # email -> user ID (the account's, shared with ZoomApi)
    apps: dict[str, str] = field(default_factory=dict)
    consenting: str = "alice@example.com"  # the user who agrees on the authorize page
    access_lifetime: int = USER_ACCESS_LIFETIME
    # Seconds a refresh's answer is held back once Zoom has rotated the token (the soak's
    # window for a kill mid-refresh); `refreshing` counts those in flight.
    refresh_delay: float = 0.0
    # The next that many OBF requests are refused as Zoom refuses a meeting_id it will not
    # take: 400 {"code": 300}.
    obf_refusals: int = 0
    refreshing: int = 0
    refreshes: int = 0
    stale_refreshes: int = 0
    revoked: int = 0
    obf_issued: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # Every token and code handed out (the tests look for them in logs and stores).
    handed_out: list[str] = field(default_factory=list)
    _codes: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    _grants: dict[str, _Grant] = field(default_factory=dict)  # refresh token -> grant
    _rotated: set[str] = field(default_factory=set)
    _access: dict[str, tuple[_Grant, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorize(self, query: dict[str, str]) -> Answer:
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 400, {}, {"reason": "Invalid request", "error": "invalid_request"}
        client_id = query.get("client_id", "")
        if client_id not in self.apps or not query.get("redirect_uri"):
            return 400, {}, {"reason": "Invalid client_id", "error": "invalid_client"}
        code = secrets.token_urlsafe(24)
        user_id = self.users[self.consenting]
        with self._lock:
            self._codes[code] = (client_id, query["redirect_uri"], query["code_challenge"], user_id)
            self.handed_out.append(code)
        back = urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": f"{query['redirect_uri']}?{back}"}, {}

    def token(self, form: dict[str, str], authorization: str) -> Answer:
        client_id = self._client(authorization)
        if client_id is None:
            return (
                401,
                {},
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._code(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, form.get("refresh_token", ""))
        return 400, {}, {"reason": "unsupported grant type", "error": "unsupported_grant_type"}

    def _client(self, authorization: str) -> str | None:
        scheme, _, encoded = authorization.partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return None
        expected = self.apps.get(client_id)
        if scheme.lower() != "basic" or expected is None:
            return None
        return client_id if secrets.compare_digest(secret, expected) else None

    def _code(self, client_id: str, form: dict[str, str]) -> Answer:
        with self._lock:
            given = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            given is None
            or given[0] != client_id
            or given[1] != form.get("redirect_uri")
            or given[2] != challenge.decode()
        ):
            return 400, {}, {"reason": "Invalid authorization code", "error": "invalid_request"}
        return self._issue(_Grant(given[3], client_id, ""))

    def _refresh(self, client_id: str, refresh: str) -> Answer:
        with self._lock:
            self.refreshes += 1
            if refresh in self._rotated:
                self.stale_refreshes += 1
                return _INVALID_TOKEN
            grant = self._grants.pop(refresh, None)
            if grant is None or grant.client_id != client_id or grant.revoked:
                return _INVALID_TOKEN
            self._rotated.add(refresh)
        answer = self._issue(grant)
        if self.refresh_delay:
            with self._lock:
                self.refreshing += 1
            time.sleep(self.refresh_delay)
            with self._lock:
                self.refreshing -= 1
        return answer

    def _issue(self, grant: _Grant) -> Answer:
        access = "standin-uat-" + secrets.token_urlsafe(24)
        refresh = "standin-urt-" + secrets.token_urlsafe(24)
        with self._lock:
            grant.refresh = refresh
            self._grants[refresh] = grant
            self._access[access] = (grant, time.monotonic() + self.access_lifetime)
            self.handed_out += [access, refresh]
        body: dict[str, object] = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": self.access_lifetime,
            "scope": " ".join(USER_SCOPES),
        }
        return 200, {}, body

    def revoke(self, query: dict[str, str], authorization: str) -> Answer:
        if self._client(authorization) is None:
            return (
                401,
                {},
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
            )
        with self._lock:
            found = self._access.get(query.get("token", ""))
            grant = found[0] if found else self._grants.get(query.get("token", ""))
            if grant is None:
                return _INVALID_TOKEN
            grant.revoked = True
            self.revoked += 1
        return 200, {}, {"status": "success"}

    def _user_of(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            found = self._access.get(token) if scheme.lower() == "bearer" else None
        if found is None or found[1] < time.monotonic() or found[0].revoked:
            return None
        return found[0].user_id

    def me(self, authorization: str) -> Answer:
        user_id = self._user_of(authorization)
        if user_id is None:
            return _EXPIRED
        email = next(email for email, uid in self.users.items() if uid == user_id)
        return 200, {}, {"id": user_id, "email": email, "type": 1, "account_id": "other-account"}

    def onbehalf(self, query: dict[str, str], authorization: str) -> Answer:
        user_id = self._user_of(authorization)
        if user_id is None:
            return _EXPIRED
        meeting = query.get("meeting_id", "")
        with self._lock:
            refused = self.obf_refusals > 0
            self.obf_refusals -= refused
        if refused or not meeting.isdigit():
            return 400, {}, {"code": 300, "message": "Invalid meeting_id."}
        token = "standin-obf-" + secrets.token_urlsafe(32)
        with self._lock:
            self.obf_issued.setdefault((user_id, meeting), []).append(token)
            self.handed_out.append(token)
        return 200, {}, {"token": token}
