"""Rate limits shared by every worker and replica: token buckets in Redis.

Each call of a rate-limited caller runs one Lua script (EVALSHA; redis-py loads it
again when a restarted Redis has forgotten it) that refills and spends the caller's
bucket atomically on Redis's own clock (TIME), so replicas whose clocks differ agree.
A bucket's key names the caller and its rate and burst (a changed rule starts a new,
full bucket) and expires once the bucket would be full again.

The store is never waited for longer than its timeout. When it cannot be reached (or
answers with an error), the limiter says so once in the log, stops asking it for a
second at a time (one call per RETRY_INTERVAL tries again), and meanwhile either falls
back to this worker's own buckets (on_store_error = "local") or refuses the calls of
rate-limited callers with UNAVAILABLE ("refuse"); it logs once when the store is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ._config import RateLimitStore
from ._errors import Unavailable
from ._policy import Caller
from ._ratelimit import TokenBuckets, over_limit

log = structlog.get_logger("sdksign")

# While the store is unreachable, it is tried again this often (by one call), not by every call.
RETRY_INTERVAL = 1.0
KEY_PREFIX = "sdksign:rate:"
# How long the start may wait for the store (a first connection, the script loaded).
START_TIMEOUT = 2.0

# KEYS[1]: the caller's bucket; ARGV[1]: its rate (tokens per second); ARGV[2]: its burst
# (the bucket's size). Returns {1, 0} when a token was spent, else {0, microseconds until
# there is one} (Lua numbers come back as integers).
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
-- A clock that went back (another Redis, after a failover) refills nothing.
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < 1 then
  return {0, math.ceil((1 - tokens) / rate * 1000000)}
end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'at', now)
-- Left alone, the bucket is full again in burst / rate seconds: then no key means the same.
redis.call('PEXPIRE', KEYS[1], math.ceil(math.min(burst / rate, 86400) * 1000) + 1000)
return {1, 0}
"""


def bucket_key(caller: Caller) -> str:
    """The Redis key of `caller`'s bucket: its rate and burst, then its name (any text)."""
    return f"{KEY_PREFIX}{caller.rule.rate!r}:{caller.rule.burst}:{caller.name}"


class StoreHealth:
    """Whether the store is reachable, on this worker's clock: after a failure it is asked
    again only once per RETRY_INTERVAL. `failed` and `recovered` say when it changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.lost = False
        self._retry_at = 0.0

    def should_try(self) -> bool:
        """Whether this call asks the store: always while it is up; once it is lost, one
        call per RETRY_INTERVAL (the others go without it)."""
        if not self.lost:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_INTERVAL
        return True

    def failed(self) -> bool:
        """The store did not answer; True when it was up until now."""
        self._retry_at = self._clock() + RETRY_INTERVAL
        was_up, self.lost = not self.lost, True
        return was_up

    def recovered(self) -> bool:
        """The store answered; True when it was lost until now."""
        was_lost, self.lost = self.lost, False
        return was_lost


class SharedLimiter:
    """Buckets in the Redis of `store`, shared by every worker and replica that uses it."""

    def __init__(self, store: RateLimitStore) -> None:
        self._store = store
        self._client = _client(store)
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._health = StoreHealth()
        self._local = TokenBuckets()  # on_store_error = "local", while the store is lost

    async def start(self) -> None:
        """Connect and load the script, so that the first call does not wait for both."""
        try:
            async with asyncio.timeout(max(self._store.timeout, START_TIMEOUT)):
                await self._client.script_load(BUCKET_SCRIPT)
        except (RedisError, OSError, TimeoutError) as error:
            self._lost(error)

    async def take(self, caller: Caller) -> None:
        rule = caller.rule
        if self._health.should_try():
            try:
                async with asyncio.timeout(self._store.timeout):
                    spent, wait_us = await self._script(
                        keys=[bucket_key(caller)], args=[repr(rule.rate), rule.burst]
                    )
            except (RedisError, OSError, TimeoutError) as error:
                self._lost(error)
            else:
                if self._health.recovered():
                    log.info("rate limit store back", store=self._store.address)
                if not spent:
                    raise over_limit(caller, wait_us / 1e6)
                return
        if self._store.on_store_error == "refuse":
            raise Unavailable(STORE_UNAVAILABLE, reason="RATE_LIMIT_STORE_UNAVAILABLE")
        self._local.take(caller)

    def _lost(self, error: BaseException) -> None:
        if self._health.failed():
            log.error(
                "rate limit store lost",
                store=self._store.address,
                error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
                on_store_error=self._store.on_store_error,
                retry_seconds=RETRY_INTERVAL,
            )

    async def aclose(self) -> None:
        await self._client.aclose()


STORE_UNAVAILABLE = (
    "the rate limit store cannot be reached, and this server refuses the calls of "
    'rate-limited callers without it ([rate_limits] on_store_error = "refuse"); retry shortly'
)


def _client(store: RateLimitStore) -> Redis:
    """A client of the store that never retries by itself and never waits longer than the
    store's timeout to connect (each call is bounded as a whole by take)."""
    return Redis(
        host=store.host,
        port=store.port,
        db=store.db,
        username=store.username,
        password=None if store.password is None else store.password.decode(),
        socket_connect_timeout=store.timeout,
        retry=Retry(NoBackoff(), 0),
        ssl=store.tls,
        # The system's CAs, and the configured one.
        ssl_ca_data=None if store.ca is None else store.ca.decode("ascii"),
    )
