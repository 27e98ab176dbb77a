"""RedisGrants: the grant store (grantstore.GrantStore) in Redis, for a fleet.

Keys (PREFIX = "sdksign:grant:"): a hash per grant, `PREFIX g:<app>:<user ID>`, whose token
fields are sealed; `PREFIX e:<app>:<email>` names the user ID of an email; a sorted set
`PREFIX a:<app>` lists an app's user IDs (for ListGrants' pages); a pending grant is
`PREFIX s:<SHA-256 of the state>`, expiring with it, taken with GETDEL (single use).

A refresh takes `PREFIX l:<app>:<user ID>` (SET NX PX, a random value) for lock_seconds,
longer than any exchange with Zoom it waits for (runtime.grantrpc.refresh_lock_seconds), so
that no other worker or replica refreshes meanwhile; the others
poll for the lock's end and read the new access token. The new tokens are written by one
script that checks the fence first: the grant's `version` must be the one the refresh read,
so that a refresh whose lock ran out (a worker paused for longer than lock_seconds) never
writes over a newer refresh token. A worker killed mid-refresh leaves the lock to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ..observe.metrics import GRANT_STATES
from .grantstore import (
    Census,
    Pending,
    Refresher,
    Refused,
    StoredGrant,
    StoreUnavailable,
    needs_refresh,
    open_grant,
    open_pending,
    seal_fields,
    seal_pending,
    state_key,
)
from .sealing import Sealer

if TYPE_CHECKING:
    from ..config import RateLimitStore

PREFIX = "sdksign:grant:"
# A lost connection is tried again this many times, 0.1, 0.2 and 0.4 s apart (the backoff
# doubles from 0.05 s; RETRY_CAP is never reached in three tries).
RETRIES = 3
RETRY_CAP = 0.5
# How often a worker waiting for another's refresh looks again.
POLL_INTERVAL = 0.05

# KEYS[1] the grant, KEYS[2] its lock; ARGV[1] the lock's value, ARGV[2] the version the
# refresh read, then field, value pairs. Writes only when the version is still that one.
WRITE_FENCED = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HINCRBY', KEYS[1], 'version', 1)
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
# KEYS[1] a lock; ARGV[1] its value: let go only if it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def redis_client(store: RateLimitStore) -> Redis:
    """A client of the Redis that `store` names ([grants]' keys, as [rate_limits]' are). A
    lost connection is tried again RETRIES times, within about 0.7 s of waiting (redis-py's
    default, 10 tries with backoff up to 10 s, would outlast any call's deadline)."""
    return Redis(
        retry=Retry(ExponentialBackoff(cap=RETRY_CAP, base=0.05), RETRIES),
        host=store.host,
        port=store.port,
        db=store.db,
        username=store.username,
        password=None if store.password is None else store.password.decode(),
        socket_timeout=store.timeout,
        socket_connect_timeout=store.timeout,
        ssl=store.tls,
        ssl_ca_data=None if store.ca is None else store.ca.decode("ascii"),
        decode_responses=True,
    )


class RedisGrants:
    """Grants in Redis. `lock_seconds` bounds a refresh (it outlasts its exchange with Zoom)."""

    def __init__(self, redis: Redis, sealer: Sealer, lock_seconds: float, name: str) -> None:
        self.redis = redis
        self.sealer = sealer
        self.lock_seconds = lock_seconds
        self.name = name  # the store's address, for messages
        self._write = redis.register_script(WRITE_FENCED)
        self._release = redis.register_script(RELEASE)

    async def start(self) -> None:
        """Nothing to create: keys are made as grants are."""

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def _do(self, work: Any) -> Any:
        try:
            return await work
        except (RedisError, OSError) as error:
            raise StoreUnavailable(
                f"the grant store {self.name} failed ({type(error).__name__})"
            ) from None

    async def put(self, grant: StoredGrant) -> None:
        key = f"{PREFIX}g:{grant.app}:{grant.user_id}"
        fields = {
            "app": grant.app,
            "user_id": grant.user_id,
            "email": grant.email.lower(),
            "created_at": repr(grant.created_at),
            "version": str(grant.version),
            **seal_fields(self.sealer, grant),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, items=[value for pair in fields.items() for value in pair])
        pipe.set(f"{PREFIX}e:{grant.app}:{grant.email.lower()}", grant.user_id)
        pipe.zadd(f"{PREFIX}a:{grant.app}", {grant.user_id: 0})
        await self._do(pipe.execute())

    async def get(self, app: str, user: str) -> StoredGrant | None:
        user_id: str | None = user
        if "@" in user:
            user_id = await self._do(self.redis.get(f"{PREFIX}e:{app}:{user.lower()}"))
            if user_id is None:
                return None
        return await self._read(app, str(user_id))

    async def _read(self, app: str, user_id: str) -> StoredGrant | None:
        fields = await self._do(self.redis.hgetall(f"{PREFIX}g:{app}:{user_id}"))
        if not fields:
            return None
        return open_grant(self.sealer, fields)

    async def delete(self, app: str, user_id: str) -> bool:
        grant = await self._read(app, user_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{PREFIX}g:{app}:{user_id}")
        if grant is not None:
            pipe.delete(f"{PREFIX}e:{app}:{grant.email}")
        pipe.zrem(f"{PREFIX}a:{app}", user_id)
        replies = await self._do(pipe.execute())
        return bool(replies[0])

    async def page(self, app: str, after: str, limit: int) -> list[StoredGrant]:
        low = f"({after}" if after else "-"
        ids = await self._do(
            self.redis.zrangebylex(f"{PREFIX}a:{app}", low, "+", start=0, num=limit)
        )
        found = [await self._read(app, user_id) for user_id in ids]
        return [grant for grant in found if grant is not None]

    async def census(self) -> Census:
        counts = dict.fromkeys(GRANT_STATES, 0)
        old_key = 0
        cursor = 0
        while True:
            cursor, keys = await self._do(self.redis.scan(cursor, match=f"{PREFIX}g:*", count=500))
            for key in keys:
                state, *sealed = await self._do(self.redis.hmget(key, "state", "refresh", "access"))
                if state in counts:
                    counts[state] += 1
                    old_key += state == "ok" and any(self.sealer.stale(s) for s in sealed if s)
            if cursor == 0:
                return Census(counts, old_key)

    async def put_pending(self, state: str, pending: Pending) -> None:
        key = state_key(state)
        body = seal_pending(self.sealer, key, pending)
        ttl = max(1, int(pending.expires_at - time.time()))
        await self._do(self.redis.set(f"{PREFIX}s:{key}", body, ex=ttl))

    async def take_pending(self, state: str, now: float) -> Pending | None:
        key = state_key(state)
        body = await self._do(self.redis.getdel(f"{PREFIX}s:{key}"))
        if body is None:
            return None
        pending = open_pending(self.sealer, key, body)
        return None if pending is None or pending.expires_at < now else pending

    async def refresh(
        self, app: str, user_id: str, stale_access: str, now: float, refresher: Refresher
    ) -> StoredGrant | None:
        """The grant refreshed once across the fleet (see the module's docstring)."""
        lock = f"{PREFIX}l:{app}:{user_id}"
        mine = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_seconds * 2
        while True:
            grant = await self._read(app, user_id)
            if grant is None or not needs_refresh(grant, stale_access, now):
                return grant
            taken = await self._do(
                self.redis.set(lock, mine, nx=True, px=int(self.lock_seconds * 1000))
            )
            if taken:
                break
            if loop.time() > deadline:
                raise StoreUnavailable(f"another worker's refresh of {user_id!r} did not end")
            await asyncio.sleep(POLL_INTERVAL)
        try:
            grant = await self._read(app, user_id)  # again, under the lock
            if grant is None or not needs_refresh(grant, stale_access, now):
                return grant
            try:
                tokens = await refresher(grant)
                fresh = replace(grant, tokens=tokens, scopes=tokens.scopes)
            except Refused:
                fresh = replace(grant, broken=True)
            fields = seal_fields(self.sealer, fresh)
            args = [mine, str(grant.version), *(v for pair in fields.items() for v in pair)]
            written = await self._do(
                self._write(keys=[f"{PREFIX}g:{app}:{user_id}", lock], args=args)
            )
            if not written:  # fenced off: a newer refresh is stored; read it
                return await self._read(app, user_id)
            return replace(fresh, version=grant.version + 1)
        finally:
            # A lock not let go of (the store lost) expires on its own.
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(self._release(keys=[lock], args=[mine]))
