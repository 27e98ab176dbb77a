"""The shared token bucket itself, in a real redis-server: the Lua script's burst, refusals,
refill and retry-after, one bucket for every limiter of a store, and a Redis that restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from sdksign.server.access.buckets import TokenBuckets
from sdksign.server.access.policy import Caller, Rule
from sdksign.server.access.ratestore import MAX_BATCH, RETRY_INTERVAL, SharedLimiter, bucket_key
from sdksign.server.config.model import RateLimitStore
from sdksign.server.errors import ResourceExhausted
from sdksign.server.observe.metrics import ERROR_KINDS
from tests.conftest import RedisServer, redis_password

Limiters = Callable[[], SharedLimiter]


@pytest.fixture
async def limiters(redis_server: RedisServer) -> AsyncIterator[Limiters]:
    """Makes limiters of the test's Redis (each its own client), all closed at the end."""
    made: list[SharedLimiter] = []

    def make() -> SharedLimiter:
        store = RateLimitStore(
            host="127.0.0.1",
            port=redis_server.port,
            password=redis_password(redis_server).encode(),
            timeout=1.0,  # generous: these tests are about the bucket, not a slow machine
        )
        made.append(SharedLimiter(store))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()


async def outcomes(limiter: SharedLimiter, caller: Caller, calls: int) -> list[bool]:
    """For each of `calls` takes in a row: whether it was allowed."""
    allowed = []
    for _ in range(calls):
        try:
            await limiter.take(caller)
            allowed.append(True)
        except ResourceExhausted:
            allowed.append(False)
    return allowed


async def test_a_burst_then_refusals_worded_as_the_local_buckets_word_them(
    limiters: Limiters,
) -> None:
    caller = Caller(name="bursty", rule=Rule(rate=0.01, burst=3))  # no refill meanwhile
    limiter = limiters()
    await limiter.start()
    assert await outcomes(limiter, caller, 3) == [True] * 3
    with pytest.raises(ResourceExhausted) as shared:
        await limiter.take(caller)
    local = TokenBuckets()
    for _ in range(3):
        local.take(caller, now=0.0)
    with pytest.raises(ResourceExhausted) as kept:
        local.take(caller, now=0.0)
    assert shared.value.message.split("; retry in")[0] == kept.value.message.split("; retry in")[0]
    assert shared.value.subject == "bursty"
    assert await outcomes(limiter, caller, 5) == [False] * 5


async def test_retry_after_is_the_time_to_the_next_token(limiters: Limiters) -> None:
    caller = Caller(name="slow", rule=Rule(rate=0.1, burst=1))  # a token every 10 s
    limiter = limiters()
    await limiter.take(caller)
    with pytest.raises(ResourceExhausted) as raised:
        await limiter.take(caller)
    assert 9.0 < raised.value.retry_after <= 10.0
    assert raised.value.message.endswith(f"retry in {raised.value.retry_after:.2f} s")


async def test_the_bucket_refills_at_the_rate(limiters: Limiters) -> None:
    caller = Caller(name="refilled", rule=Rule(rate=20.0, burst=1))
    limiter = limiters()
    await limiter.take(caller)
    with pytest.raises(ResourceExhausted) as raised:
        await limiter.take(caller)
    assert 0 < raised.value.retry_after <= 0.05
    await asyncio.sleep(raised.value.retry_after + 0.02)
    await limiter.take(caller)  # one more token by now


async def test_two_limiters_of_one_store_spend_from_one_bucket(limiters: Limiters) -> None:
    caller = Caller(name="shared", rule=Rule(rate=0.01, burst=5))
    one, two = limiters(), limiters()
    allowed = []
    for _ in range(10):
        allowed += await outcomes(one, caller, 1) + await outcomes(two, caller, 1)
    assert allowed == [True] * 5 + [False] * 15
    # Another caller, or the same one under another rule, has a bucket of its own.
    assert await outcomes(two, Caller(name="other", rule=Rule(rate=0.01, burst=5)), 1) == [True]
    assert await outcomes(one, Caller(name="shared", rule=Rule(rate=0.01, burst=6)), 1) == [True]


async def test_the_key_names_caller_rate_and_burst_and_expires_when_full_again(
    limiters: Limiters, redis_server: RedisServer
) -> None:
    caller = Caller(name="who: any text", rule=Rule(rate=2.5, burst=10))
    await limiters().take(caller)
    client = redis_server.client()
    assert client.keys("sdksign:rate:*") == [b"sdksign:rate:2.5:10:who: any text"]
    assert bucket_key(caller) == "sdksign:rate:2.5:10:who: any text"
    # Full again in 10 / 2.5 = 4 s; the key lives that long and a second more.
    assert 4000 < client.pttl(bucket_key(caller)) <= 5000
    seconds, micros = client.time()
    at = float(client.hget(bucket_key(caller), "at") or 0)
    assert abs(at - (seconds + micros / 1e6)) < 5  # Redis's clock, not this process's
    assert float(client.hget(bucket_key(caller), "tokens") or 0) == pytest.approx(9, abs=0.1)


async def test_a_bucket_slower_than_a_day_to_refill_keeps_its_key_until_it_is_full(
    limiters: Limiters, redis_server: RedisServer
) -> None:
    # No key reads as a full bucket, so a key must live until its bucket would be full.
    slow = Caller(name="slow", rule=Rule(rate=1e-5, burst=2))  # full again in 200000 s
    limiter = limiters()
    await limiter.take(slow)
    client = redis_server.client()
    assert 200_000_000 < client.pttl(bucket_key(slow)) <= 201_000_000
    # Too slow for any expiry to be written (1e21 s): the key is kept, the call answered.
    glacial = Caller(name="glacial", rule=Rule(rate=1e-12, burst=10**9))
    await limiter.take(glacial)
    assert client.pttl(bucket_key(glacial)) == -1  # no expiry
    assert float(client.hget(bucket_key(glacial), "tokens") or 0) == 10**9 - 1


async def test_a_restarted_redis_is_used_again_once_it_is_back(
    limiters: Limiters, redis_server: RedisServer
) -> None:
    caller = Caller(name="through", rule=Rule(rate=0.01, burst=2))
    limiter = limiters()
    with capture_logs() as logs:
        assert await outcomes(limiter, caller, 2) == [True, True]
        redis_server.kill()
        # Lost: this worker's own bucket (full) answers meanwhile.
        assert await outcomes(limiter, caller, 3) == [True, True, False]
        redis_server.start()  # empty, and without the script
        await asyncio.sleep(RETRY_INTERVAL)  # then one call asks the store again
        assert await outcomes(limiter, caller, 3) == [True, True, False]  # a new, full bucket
    assert redis_server.client().exists(bucket_key(caller)) == 1
    assert [line["event"] for line in logs] == ["rate limit store lost", "rate limit store back"]
    assert redis_password(redis_server) not in str(logs)


async def test_concurrent_calls_share_runs_of_the_script_and_the_burst_exactly(
    limiters: Limiters, redis_server: RedisServer
) -> None:
    caller = Caller(name="crowd", rule=Rule(rate=0.01, burst=50))
    limiter = limiters()
    await limiter.start()
    results = await asyncio.gather(
        *(limiter.take(caller) for _ in range(200)), return_exceptions=True
    )
    assert sum(result is None for result in results) == 50
    assert all(isinstance(r, ResourceExhausted) for r in results if r is not None)
    runs = redis_server.client().info("commandstats")["cmdstat_evalsha"]["calls"]
    assert runs < 200  # calls that waited together went in one run


def store_errors() -> Counter[str]:
    """sdksign_rate_limit_store_errors_total so far, by kind."""
    name = "sdksign_rate_limit_store_errors_total"
    return Counter({k: REGISTRY.get_sample_value(name, {"error": k}) or 0 for k in ERROR_KINDS})


async def test_a_stopped_redis_counts_each_failed_request_once_not_each_call(
    limiters: Limiters, redis_server: RedisServer
) -> None:
    caller = Caller(name="crowd", rule=Rule(rate=0.01, burst=1000))
    limiter = limiters()
    await limiter.start()  # connected, the script loaded
    redis_server.kill()
    calls = MAX_BATCH + 1  # two runs of the script (two requests): 128 calls and 1
    before = store_errors()
    with capture_logs() as logs:
        results = await asyncio.gather(
            *(limiter.take(caller) for _ in range(calls)), return_exceptions=True
        )
    assert results == [None] * calls  # every call answered, by this worker's buckets
    assert store_errors() - before == Counter(connection=2)
    assert [line["event"] for line in logs] == ["rate limit store lost"]
