"""GrantKeeper: users' grants to an app, from BeginGrant to an OBF token.

- begin: a state (random, single use, GRANT_STATE_LIFETIME at most, bound to the caller)
  and a PKCE pair; the verifier is kept sealed in the store with the state, and the URL of
  Zoom's authorize page is returned.
- complete: the state taken (a second use, another caller or a late one finds nothing), the
  code exchanged with the verifier, the user named by GET /v2/users/me, the grant stored.
  An exchange Zoom did not answer (timeout, no connection, 5xx) puts the state back, so
  that a retry (the Python clients retry UNAVAILABLE) exchanges again.
- obf: the grant's access token (refreshed through the store's protocol when it is due, or
  when Zoom calls it expired), then the OBF token, never kept: Zoom's are single-use.
- remove: revoked at Zoom (unless broken, or sealed with a key this server lacks: no token
  to revoke), then deleted.

A refresh in this worker is shared by every call that needs it (one task per grant); across
workers and replicas the store makes it one at a time (grantstore, grantredis). A grant Zoom
refuses is marked broken, said once in the log, counted, and never refreshed again: the
user must authorize again.

No token, code, verifier or state reaches a message or a log line: log lines name users by
their Zoom user ID; messages to the caller by their ID or the email the caller gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import structlog

from ..errors import FailedPrecondition, NotFound, Unavailable
from ..observe import metrics
from ..zoom.rules import GRANT_STATE_LIFETIME, is_zoom_user, quoted, shown
from .grantstore import GrantStore, Pending, Refused, StoredGrant, StoreUnavailable, Tokens
from .userauth import ExpiredAccess, UserOAuth, authorize_url, pkce_pair, refresh_limit

if TYPE_CHECKING:
    from ..config import App

log = structlog.get_logger("sdksign")
# The reasons of an exchange Zoom gave no answer to (no answer in time, none at all, or its
# 5xx): the code may still be unused, so CompleteGrant's state is put back for a retry.
NO_ANSWER = frozenset({"ZOOM_TIMEOUT", "ZOOM_UNREACHABLE", "ZOOM_UNAVAILABLE"})
T = TypeVar("T")


@dataclass(frozen=True)
class Obf:
    """An OBF token and the Zoom user ID of the grant it was asked with (for the audit
    line, which names the user by ID, never by the email a caller gave)."""

    token: str = field(repr=False)
    user_id: str


class MustAuthorize(FailedPrecondition):
    """The user has no grant (`outcome` "no_grant") or one Zoom refused ("broken"): they
    must authorize again. `outcome` labels sdksign_obf_requests_total."""

    def __init__(self, user: str, app: str, outcome: str) -> None:
        why = "has no grant" if outcome == "no_grant" else "has a grant Zoom refused"
        super().__init__(
            f"Zoom user {quoted(user, is_zoom_user)} {why} for app {app!r}: they must "
            "authorize again (BeginGrant, then CompleteGrant)"
        )
        self.outcome = outcome


class GrantKeeper:
    """One worker's grants: `store` shared with the others, `oauth` its client of Zoom."""

    def __init__(
        self, store: GrantStore, oauth: UserOAuth, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.oauth = oauth
        self._clock = clock
        self._refreshing: dict[tuple[str, str, str], _Refresh] = {}

    async def aclose(self) -> None:
        # A refresh in flight may hold the only copy of the grant's new refresh token: it is
        # let finish (refresh_limit bounds its exchange with Zoom; one still waiting for
        # another worker's lock then may be cut off, before it has asked Zoom) before the
        # client and the store close.
        runs = [run.task for run in self._refreshing.values()]
        if runs:
            await asyncio.wait(runs, timeout=refresh_limit(self.oauth.settings) + 1)
        for task in runs:
            task.cancel()
        await self.oauth.aclose()
        await self.store.aclose()

    async def begin(self, app: App, caller: str, redirect_uri: str) -> tuple[str, str, float]:
        """Zoom's authorize URL, the state and when it expires (epoch seconds)."""
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        expires_at = self._clock() + GRANT_STATE_LIFETIME
        pending = Pending(app.name, caller, redirect_uri, verifier, expires_at)
        await _stored(self.store.put_pending(state, pending))
        url = authorize_url(
            self.oauth.settings.oauth_url, app.sdk_key, redirect_uri, state, challenge
        )
        return url, state, expires_at

    async def complete(
        self, find_app: Callable[[str], App | None], caller: str, state: str, code: str
    ) -> StoredGrant:
        """The grant the user gave: stored, naming the user by ID and email."""
        pending = await _stored(self.store.take_pending(state, self._clock()))
        if pending is None or pending.caller != caller:
            raise FailedPrecondition(
                "state is unknown, used already, expired or begun by another caller: "
                "begin the grant again (BeginGrant)"
            )
        app = find_app(pending.app)
        if app is None:
            raise FailedPrecondition(f"app {pending.app!r} is no longer served: begin again")
        try:
            tokens = await self.oauth.exchange(
                app.sdk_key, app.secret, code, pending.redirect_uri, pending.verifier
            )
        except Unavailable as error:
            if error.reason in NO_ANSWER:
                await self._put_back(state, pending)
            raise
        me = await self.oauth.me(tokens.access_token)
        grant = StoredGrant(
            app=app.name,
            user_id=me.user_id,
            email=me.email,
            scopes=tokens.scopes,
            created_at=self._clock(),
            tokens=tokens,
        )
        await _stored(self.store.put(grant))
        log.info("grant_stored", app=app.name, user_id=me.user_id)
        return grant

    async def _put_back(self, state: str, pending: Pending) -> None:
        """The state again, as it was (still single use, its expiry unchanged), after an
        exchange Zoom did not answer: a retry of CompleteGrant exchanges the code again
        (and Zoom itself refuses a code it already took). Not when it has expired, nor
        when the store cannot take it: the caller then begins again."""
        if pending.expires_at <= self._clock():
            return
        with contextlib.suppress(StoreUnavailable):
            await self.store.put_pending(state, pending)

    async def remove(self, app: App, user: str) -> StoredGrant:
        """Revoke the grant of `user` (an email or ID) at Zoom, then delete it."""
        grant = await _stored(self.store.get(app.name, user))
        if grant is None:
            raise NotFound(
                f"no grant of Zoom user {quoted(user, is_zoom_user)} for app {app.name!r}",
                "GRANT_NOT_FOUND",
                shown(user, is_zoom_user),
            )
        # A broken grant Zoom already refuses, and an unopened one has no token to revoke.
        if not grant.broken and not grant.unopened and not grant.usable(self._clock()):
            grant = await self._refreshed(app, grant, user) or grant
        revoke = not grant.broken and not grant.unopened
        if revoke:
            await self.oauth.revoke(app.sdk_key, app.secret, grant.tokens.access_token, user)
        await _stored(self.store.delete(app.name, grant.user_id))
        log.info("grant_removed", app=app.name, user_id=grant.user_id, revoked=revoke)
        return grant

    async def page(self, app: App, after: str, limit: int) -> list[StoredGrant]:
        return await _stored(self.store.page(app.name, after, limit))

    async def obf(self, app: App, user: str, meeting_number: str) -> Obf:
        """The OBF token Zoom issues for `user`'s grant and the meeting, and whose it is."""
        try:
            token = await self._obf(app, user, meeting_number)
        except MustAuthorize as error:
            metrics.obf_request(error.outcome)
            raise
        except BaseException:
            metrics.obf_request("failed")
            raise
        metrics.obf_request("ok")
        return token

    async def _obf(self, app: App, user: str, meeting_number: str) -> Obf:
        grant = await _stored(self.store.get(app.name, user))
        grant = self._live(grant, app, user)
        if not grant.usable(self._clock()):
            grant = self._live(await self._refreshed(app, grant, user), app, user)
        try:
            token = await self.oauth.obf(grant.tokens.access_token, meeting_number, user)
            return Obf(token, grant.user_id)
        except ExpiredAccess:
            # Revoked or expired early: one refresh, one more try.
            grant = self._live(await self._refreshed(app, grant, user), app, user)
        try:
            token = await self.oauth.obf(grant.tokens.access_token, meeting_number, user)
            return Obf(token, grant.user_id)
        except ExpiredAccess:
            raise MustAuthorize(user, app.name, "broken") from None

    @staticmethod
    def _live(grant: StoredGrant | None, app: App, user: str) -> StoredGrant:
        if grant is None:
            raise MustAuthorize(user, app.name, "no_grant")
        if grant.broken:
            raise MustAuthorize(user, app.name, "broken")
        if grant.unopened:
            raise Unavailable(
                f"the grant of Zoom user {quoted(user, is_zoom_user)} for app {app.name!r} is "
                "sealed with a grant key this server does not have: give that key back as a "
                "previous key, or the user must authorize again (BeginGrant, CompleteGrant)",
                "GRANT_KEY_UNKNOWN",
            )
        return grant

    async def _refreshed(self, app: App, grant: StoredGrant, user: str) -> StoredGrant | None:
        """The grant after one refresh shared by this worker's calls (and, through the
        store, made once across every worker). The refresh is a task of its own that no
        caller cancels: when Zoom has not answered within [zoom] timeout, the callers are
        answered UNAVAILABLE and the refresh goes on (up to refresh_limit), storing the
        tokens Zoom answers, since Zoom may already have rotated the refresh token."""
        key = (app.name, grant.user_id, grant.tokens.access_token)
        run = self._refreshing.get(key)
        if run is None:
            run = _Refresh()
            run.task = asyncio.get_running_loop().create_task(self._refresh(app, grant, user, run))
            self._refreshing[key] = run
            run.task.add_done_callback(lambda done: self._done(key, done))
        late = asyncio.ensure_future(run.late.wait())
        try:
            await asyncio.wait((run.task, late), return_when=asyncio.FIRST_COMPLETED)
        finally:
            late.cancel()
        if run.task.done():
            return run.task.result()
        raise Unavailable(
            "Zoom's API did not answer the refresh of the grant of "
            f"{quoted(user, is_zoom_user)} in time (its answer is still awaited, and stored "
            "when it comes)",
            "ZOOM_TIMEOUT",
        )

    def _done(self, key: tuple[str, str, str], task: asyncio.Task[StoredGrant | None]) -> None:
        run = self._refreshing.get(key)
        if run is not None and run.task is task:
            del self._refreshing[key]
        if not task.cancelled():
            task.exception()

    async def _refresh(
        self, app: App, grant: StoredGrant, user: str, run: _Refresh
    ) -> StoredGrant | None:
        refused = refreshed = False

        async def refresher(stored: StoredGrant) -> Tokens:
            nonlocal refused, refreshed
            # The callers stop waiting once the exchange has taken [zoom] timeout; it goes on.
            timer = asyncio.get_running_loop().call_later(self.oauth.settings.timeout, run.late.set)
            try:
                tokens = await self.oauth.refresh(
                    app.sdk_key, app.secret, stored.tokens.refresh_token, stored.user_id
                )
                refreshed = True
                return tokens
            except Refused:
                refused = True
                raise
            finally:
                timer.cancel()

        try:
            fresh = await _stored(
                self.store.refresh(
                    app.name, grant.user_id, grant.tokens.access_token, self._clock(), refresher
                )
            )
        except BaseException:
            metrics.grant_refresh("failed")
            raise
        if refused:
            metrics.grant_refresh("refused")
            log.warning(
                "grant_broken",
                app=app.name,
                user_id=grant.user_id,
                reason="Zoom refused the refresh token: the user must authorize again",
            )
        elif refreshed:
            metrics.grant_refresh("ok")
        return fresh


class _Refresh:
    """One refresh in this worker: its task, and `late`, set once Zoom has not answered
    its exchange within [zoom] timeout (the callers then stop waiting)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[StoredGrant | None]
        self.late = asyncio.Event()


async def _stored(work: Awaitable[T]) -> T:
    """The store's answer; StoreUnavailable becomes UNAVAILABLE for the caller."""
    try:
        return await work
    except StoreUnavailable as error:
        raise Unavailable(str(error), "GRANT_STORE_UNAVAILABLE") from None
