"""Rate limits shared by every worker and replica: token buckets in Redis.

A call of a rate-limited caller spends its token through one Lua script (EVALSHA,
loaded at start; redis-py loads it again when a restarted Redis has forgotten it) that
refills and spends buckets atomically on Redis's own clock (TIME), so replicas whose
clocks differ agree. One run at a time per worker: calls that arrive while a run is out
go together in the next (Batches). A bucket's key names the caller and its rate and
burst (a changed rule starts a new, full bucket) and expires once the bucket would be
full again, so that no key means a full bucket.

The store is never waited for longer than its timeout. When it cannot be reached (or
answers with an error), the limiter says so once in the log, stops asking it for a
second at a time (one call per RETRY_INTERVAL tries again), and meanwhile either falls
back to this worker's own buckets (on_store_error = "local") or refuses the calls of
rate-limited callers ("refuse") with RESOURCE_EXHAUSTED, retry in RETRY_INTERVAL (not
UNAVAILABLE, which clients and proxies retry at once); it logs once when the store is
back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ResourceExhausted
from ..observe import metrics
from .buckets import TokenBuckets, over_limit

if TYPE_CHECKING:
    from ..config import RateLimitStore
    from .policy import Caller

log = structlog.get_logger("sdksign")

# While the store is unreachable, it is tried again this often (by one call), not by every call.
RETRY_INTERVAL = 1.0
KEY_PREFIX = "sdksign:rate:"
# How long the start may wait for the store (a first connection, the script loaded).
START_TIMEOUT = 2.0

# One token from each of the buckets KEYS[i], in order (a bucket may come more than once),
# whose rate (tokens per second) is ARGV[2i-1] and burst (its size) ARGV[2i]. Returns, for
# each, 1 and 0 when a token was spent, else 0 and the microseconds until there is one
# (Lua numbers come back as integers).
BUCKET_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local replies = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1]) or burst
  local at = tonumber(saved[2]) or now
  -- A clock that went back (another Redis, after a failover) refills nothing.
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then
    replies[2 * i - 1] = 0
    replies[2 * i] = math.ceil((1 - tokens) / rate * 1000000)
  else
    redis.call('HSET', key, 'tokens', tokens - 1, 'at', now)
    -- Left alone, the bucket is full again within burst / rate s, and its key expires a
    -- second later: no key means a full bucket, always. A bucket slower to refill than
    -- 1e12 ms (31 years; Lua writes smaller numbers as exact integers) keeps its key.
    local full_ms = math.ceil(burst / rate * 1000) + 1000
    if full_ms <= 1e12 then
      redis.call('PEXPIRE', key, full_ms)
    end
    replies[2 * i - 1] = 1
    replies[2 * i] = 0
  end
end
return replies
"""
# Calls that wait for the same run of the script (Batches): at most this many to a run.
MAX_BATCH = 128


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


class _Ask(NamedTuple):
    """A call's token to spend: its bucket, and when it started waiting (the loop's clock)."""

    key: str
    rate: str
    burst: int
    answer: asyncio.Future[tuple[int, int]]
    since: float


class Batches:
    """Spends tokens in the store's buckets, one run of the script at a time: the calls that
    arrive while a run is out go together in the next one (MAX_BATCH at most), so that under
    load one round trip serves many calls, and alone a call goes at once. A run is one
    request to the store: when it fails, it counts once in the store errors metric (by
    error_kind), however many calls waited on it.

    No call waits longer than `timeout`, in the queue and out: a run is bounded by its
    oldest call's timeout. A batch whose oldest call spent all of it in the queue (behind
    a run that took as long) is not sent: its calls fail with TimeoutError, and nothing
    is counted, as no request was made (the run that held them up was counted)."""

    def __init__(self, script: AsyncScript, timeout: float) -> None:
        self._script = script
        self._timeout = timeout
        self._waiting: list[_Ask] = []
        self._sender: asyncio.Task[None] | None = None

    async def spend(self, key: str, rate: str, burst: int) -> tuple[int, int]:
        """(1, 0) when a token of bucket `key` was spent, else (0, microseconds to wait);
        raises whatever kept the store from answering."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._waiting.append(_Ask(key, rate, burst, answer, loop.time()))
        if self._sender is None:
            self._sender = loop.create_task(self._send_all())
        return await answer

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                await self._send(batch)
        except asyncio.CancelledError:  # the limiter is closing: so are the calls waiting
            for ask in self._waiting:
                ask.answer.cancel()
            raise
        finally:
            self._sender = None

    async def _send(self, batch: list[_Ask]) -> None:
        deadline = batch[0].since + self._timeout  # the oldest's
        if deadline <= asyncio.get_running_loop().time():  # too late to ask: not sent
            _fail(batch, TimeoutError())
            return
        try:
            async with asyncio.timeout_at(deadline):
                replies = await self._script(
                    keys=[ask.key for ask in batch],
                    args=[value for ask in batch for value in (ask.rate, ask.burst)],
                )
            answers = [(int(replies[2 * i]), int(replies[2 * i + 1])) for i in range(len(batch))]
        except asyncio.CancelledError:
            for ask in batch:
                ask.answer.cancel()
            raise
        except Exception as error:  # unreachable, too slow, or an answer not understood
            metrics.store_error(error_kind(error))  # one failed request, for all its calls
            _fail(batch, error)
            return
        for ask, answer in zip(batch, answers, strict=True):
            if not ask.answer.done():  # not cancelled meanwhile
                ask.answer.set_result(answer)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()


def _fail(batch: list[_Ask], error: BaseException) -> None:
    """Every call of `batch` still waiting raises `error`."""
    for ask in batch:
        if not ask.answer.done():
            ask.answer.set_exception(error)


class SharedLimiter:
    """Buckets in the Redis of `store`, shared by every worker and replica that uses it."""

    def __init__(self, store: RateLimitStore) -> None:
        self._store = store
        self._client = _client(store)
        self._batches = Batches(self._client.register_script(BUCKET_SCRIPT), store.timeout)
        self._health = StoreHealth()
        self._local = TokenBuckets()  # on_store_error = "local", while the store is lost

    async def start(self) -> None:
        """Connect and load the script, so that the first call does not wait for both."""
        try:
            async with asyncio.timeout(max(self._store.timeout, START_TIMEOUT)):
                await self._client.script_load(BUCKET_SCRIPT)
        except (RedisError, OSError, TimeoutError) as error:
            metrics.store_error(error_kind(error))  # a failed request: the script's load
            self._lost(error)

    async def take(self, caller: Caller) -> None:
        rule = caller.rule
        if self._health.should_try():
            try:
                spent, wait_us = await self._batches.spend(
                    bucket_key(caller), repr(rule.rate), rule.burst
                )
            except Exception as error:  # the store did not answer: without it, then
                self._lost(error)
            else:
                if self._health.recovered():
                    log.info("rate limit store back", store=self._store.address)
                if not spent:
                    raise over_limit(caller, wait_us / 1e6)
                return
        if self._store.on_store_error == "refuse":
            raise ResourceExhausted(
                STORE_UNAVAILABLE,
                retry_after=RETRY_INTERVAL,
                subject=caller.name,
                reason="RATE_LIMIT_STORE_UNAVAILABLE",
            )
        self._local.take(caller)

    def _lost(self, error: BaseException) -> None:
        """A call (or the start) went without the store; its failed request was counted
        where it was made (once, not once per call waiting on it)."""
        if self._health.failed():
            log.error(
                "rate limit store lost",
                store=self._store.address,
                error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
                on_store_error=self._store.on_store_error,
                retry_seconds=RETRY_INTERVAL,
                **({"hint": AUTH_HINT} if isinstance(error, AuthenticationError) else {}),
            )

    async def aclose(self) -> None:
        await self._batches.aclose()
        await self._client.aclose()


def error_kind(error: BaseException) -> str:
    """What kind of failure `error` is, for the errors metric: timeout, connection, auth, other."""
    if isinstance(error, AuthenticationError):  # a ConnectionError to redis-py: first
        return "auth"
    if isinstance(error, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(error, RedisConnectionError | OSError):
        return "connection"
    return "other"


# What the log adds when the store refuses the credentials (never showing them).
AUTH_HINT = (
    "the store refused the credentials: check [rate_limits] username, password_env or "
    "password_file (the store's requirepass or ACL user)"
)
STORE_UNAVAILABLE = (
    "the rate limit store cannot be reached, and this server refuses the calls of "
    'rate-limited callers without it ([rate_limits] on_store_error = "refuse"); '
    f"retry in {RETRY_INTERVAL:g} s"
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
