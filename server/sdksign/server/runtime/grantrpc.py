"""The grant RPCs (BeginGrant, CompleteGrant, RemoveGrant, ListGrants) and the OBF token of a
Sign with on_behalf_of: requests checked, the caller's rule asked, zoomapi.grants.GrantKeeper
called. The keeper (its store, its HTTP client) is made on the first call that needs it, so a
server that never sees one opens no store and imports no httpx; a reload with another
[grants] or [zoom] makes a new one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sdksign.v1 import signature_service_pb2 as pb

from ..access.policy import Caller, app_for, authorize_app, authorize_grants
from ..config import App, Config, app_named
from ..config.grants import GRANTS_FILE, dev_grant_key, state_folder
from ..errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
)
from ..observe import metrics
from ..observe.context import bind
from ..zoom.rules import REDIRECT_URI_LENGTH

if TYPE_CHECKING:
    from ..zoomapi.grants import GrantKeeper, Obf
    from ..zoomapi.grantstore import StoredGrant

# The grants gauges (sdksign_grants by state, sdksign_grants_sealed_with_old_key) are counted
# again at most this often, by a grant call or an on-behalf Sign, in the background (a Redis
# store is scanned), and at once after CompleteGrant and RemoveGrant.
COUNT_INTERVAL = 30.0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def refresh_lock_seconds(config: Config) -> float:
    """How long a refresh may hold its grant's lock (Redis: the lock's life): the longest
    exchange with Zoom a refresh still waits for (userauth.refresh_limit), plus [grants]
    timeout and a second for the store's reads and writes around it (docs/join.md)."""
    from ..zoomapi.userauth import refresh_limit

    return refresh_limit(config.zoom) + config.grants.timeout + 1


async def make_keeper(config: Config) -> GrantKeeper:
    """A keeper of the grants `config` names, its store started."""
    from ..zoomapi.grants import GrantKeeper
    from ..zoomapi.grantstore import GrantStore, SqliteGrants
    from ..zoomapi.sealing import Sealer
    from ..zoomapi.userauth import UserOAuth

    settings = config.grants
    key = settings.key
    if key is None:  # the development key, made on first use
        key = await asyncio.to_thread(dev_grant_key, state_folder())
    sealer = Sealer(key, settings.previous_keys)
    lock_seconds = refresh_lock_seconds(config)
    store: GrantStore
    if settings.redis is not None:
        from ..zoomapi.grantredis import RedisGrants, redis_client  # the redis extra

        client = redis_client(settings.redis)
        store = RedisGrants(client, sealer, lock_seconds, settings.redis.address)
    else:
        path = settings.sqlite or state_folder() / GRANTS_FILE
        store = SqliteGrants(path, sealer, lock_seconds + settings.timeout)
    await store.start()
    return GrantKeeper(store, UserOAuth(config.zoom))


class Grants:
    """This worker's grants: the keeper for the configuration served."""

    def __init__(self) -> None:
        self._keeper: GrantKeeper | None = None
        self._made_for: tuple[object, object] | None = None
        self._making = asyncio.Lock()
        self._counted_at = -COUNT_INTERVAL
        self._counting: asyncio.Task[None] | None = None

    def _count_later(self, keeper: GrantKeeper) -> None:
        now = time.monotonic()
        if now - self._counted_at < COUNT_INTERVAL or self._counting is not None:
            return
        self._counted_at = now
        self._counting = asyncio.get_running_loop().create_task(self._count(keeper))

    def _recount(self, keeper: GrantKeeper) -> None:
        """Count again now: a grant was added or removed."""
        self._counted_at = -COUNT_INTERVAL
        self._count_later(keeper)

    async def _count(self, keeper: GrantKeeper) -> None:
        try:
            metrics.grants_counted(await keeper.store.census())
        except Exception:  # the store's trouble shows in the calls; counted again later
            self._counted_at = time.monotonic() - COUNT_INTERVAL / 2
        finally:
            self._counting = None

    async def keeper(self, config: Config) -> GrantKeeper:
        wanted = (config.grants, config.zoom)
        if self._keeper is not None and self._made_for == wanted:
            self._count_later(self._keeper)
            return self._keeper
        async with self._making:
            if self._keeper is None or self._made_for != wanted:
                old = self._keeper
                try:
                    self._keeper = await make_keeper(config)
                except ImportError as error:
                    raise FailedPrecondition(
                        f"users' grants need the zoom extra ({error.name} is not installed): "
                        "pip install 'sdksign[server,zoom]'"
                    ) from None
                except Exception as error:
                    raise Unavailable(
                        f"the grant store cannot be opened: {type(error).__name__}",
                        "GRANT_STORE_UNAVAILABLE",
                    ) from None
                self._made_for = wanted
                self._counted_at = -COUNT_INTERVAL
                if old is not None:
                    await old.aclose()
        self._count_later(self._keeper)
        return self._keeper

    async def aclose(self) -> None:
        if self._counting is not None:
            self._counting.cancel()
        if self._keeper is not None:
            await self._keeper.aclose()
            self._keeper = None

    async def begin(
        self, config: Config, caller: Caller, request: pb.BeginGrantRequest
    ) -> pb.BeginGrantResponse:
        authorize_grants(caller)
        app = app_for(caller, request.app, "meeting", config.apps)
        _check_redirect(request.redirect_uri)
        keeper = await self.keeper(config)
        url, state, expires_at = await keeper.begin(app, caller.name, request.redirect_uri)
        bind(app=app.name)
        response = pb.BeginGrantResponse(authorize_url=url, state=state)
        response.expires_at.seconds = int(expires_at)
        return response

    async def complete(
        self, config: Config, caller: Caller, request: pb.CompleteGrantRequest
    ) -> pb.Grant:
        authorize_grants(caller)
        violations = [
            FieldViolation(name, "is required: the query parameter Zoom sent to the callback")
            for name, value in (("state", request.state), ("code", request.code))
            if not value
        ]
        if violations:
            raise InvalidArgument(violations)
        keeper = await self.keeper(config)

        def find_app(name: str) -> App | None:
            # The app the state was begun for, still within the caller's rule (a reload may
            # have narrowed it): refused as Sign would refuse it.
            authorize_app(caller, name)
            return app_named(config.apps_of_kind("meeting"), name)

        grant = await keeper.complete(find_app, caller.name, request.state, request.code)
        bind(app=grant.app, user_id=grant.user_id)
        self._recount(keeper)
        return grant_message(grant)

    async def remove(
        self, config: Config, caller: Caller, request: pb.RemoveGrantRequest
    ) -> pb.RemoveGrantResponse:
        authorize_grants(caller)
        app = app_for(caller, request.app, "meeting", config.apps)
        if not request.user:
            raise InvalidArgument([FieldViolation("user", "is required: an email or user ID")])
        keeper = await self.keeper(config)
        grant = await keeper.remove(app, request.user)
        bind(app=app.name, user_id=grant.user_id)
        self._recount(keeper)
        return pb.RemoveGrantResponse(grant=grant_message(grant))

    async def list(
        self, config: Config, caller: Caller, request: pb.ListGrantsRequest
    ) -> pb.ListGrantsResponse:
        authorize_grants(caller)
        app = app_for(caller, request.app, "meeting", config.apps)
        size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument(
                [FieldViolation("page_size", f"must be from 1 to {MAX_PAGE_SIZE} (0: 100)")]
            )
        after = _page_after(request.page_token)
        keeper = await self.keeper(config)
        grants = await keeper.page(app, after, size + 1)
        response = pb.ListGrantsResponse(grants=[grant_message(g) for g in grants[:size]])
        if len(grants) > size:
            last = grants[size - 1].user_id
            response.next_page_token = base64.urlsafe_b64encode(last.encode()).decode()
        return response

    async def obf(self, config: Config, app: App, user: str, meeting_number: str) -> Obf:
        keeper = await self.keeper(config)
        return await keeper.obf(app, user, meeting_number)


def grant_message(grant: StoredGrant) -> pb.Grant:
    message = pb.Grant(
        app=grant.app,
        user_id=grant.user_id,
        email=grant.email,
        scopes=list(grant.scopes),
        broken=grant.broken,
    )
    message.created_at.seconds = int(grant.created_at)
    return message


def _check_redirect(uri: str) -> None:
    try:
        parts = urlsplit(uri)
    except ValueError:  # a "[" host without its "]": refused below as no URL at all
        parts = urlsplit("")
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    if not uri or len(uri) > REDIRECT_URI_LENGTH or not secure or not parts.hostname:
        raise InvalidArgument(
            [
                FieldViolation(
                    "redirect_uri",
                    f"must be an https URL (http only to loopback) of at most "
                    f"{REDIRECT_URI_LENGTH} characters, listed in the app's Zoom settings",
                )
            ]
        )


def _page_after(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            [FieldViolation("page_token", "must be a next_page_token ListGrants gave")]
        ) from None
