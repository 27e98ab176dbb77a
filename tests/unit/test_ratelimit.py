"""Rate limits without a Redis: this worker's token buckets, the shared store's health, and
what the shared limiter does when its store does not answer (nothing listening, or a
listener that never replies)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import socket
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from sdksign.server import Config
from sdksign.server.access.buckets import TokenBuckets
from sdksign.server.access.policy import Caller, Rule
from sdksign.server.access.ratelimit import LocalLimiter, limiter_for
from sdksign.server.access.ratestore import (
    MAX_BATCH,
    RETRY_INTERVAL,
    STORE_UNAVAILABLE,
    Batches,
    SharedLimiter,
    StoreHealth,
)
from sdksign.server.config.model import RateLimitStore
from sdksign.server.errors import ResourceExhausted
from sdksign.server.observe.metrics import ERROR_KINDS
from sdksign.server.runtime import service as _service
from sdksign.server.runtime.rpc import status_for

LIMITED = Caller(name="limited", rule=Rule(rate=1.0, burst=2))
PASSWORD = "store-password-never-logged-0123"


# --- this worker's buckets ---------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_refuses_with_the_wait() -> None:
    caller = Caller(name="bursty", rule=Rule(rate=2.0, burst=3))
    buckets = TokenBuckets()
    for _ in range(3):
        buckets.take(caller, now=100.0)
    with pytest.raises(ResourceExhausted) as raised:
        buckets.take(caller, now=100.0)
    assert raised.value.retry_after == pytest.approx(0.5)
    assert raised.value.subject == "bursty"
    assert raised.value.message == (
        "caller 'bursty' is over its rate limit of 2 requests/s (burst 3); retry in 0.50 s"
    )
    buckets.take(caller, now=100.5)  # half a second buys one request at 2/s
    with pytest.raises(ResourceExhausted):
        buckets.take(caller, now=100.5)


def test_callers_have_their_own_buckets_and_no_rate_means_no_limit() -> None:
    buckets = TokenBuckets()
    one = Caller(name="one", rule=Rule(rate=1.0, burst=1))
    two = Caller(name="two", rule=Rule(rate=1.0, burst=1))
    buckets.take(one, now=0.0)
    buckets.take(two, now=0.0)
    with pytest.raises(ResourceExhausted):
        buckets.take(one, now=0.0)
    unlimited = Caller(name="free", rule=Rule())
    for _ in range(1000):
        buckets.take(unlimited, now=0.0)


async def test_without_a_store_each_worker_keeps_its_own_buckets() -> None:
    limiter = limiter_for(None)
    assert isinstance(limiter, LocalLimiter)
    await limiter.start()
    for _ in range(2):
        await limiter.take(LIMITED)
    with pytest.raises(ResourceExhausted):
        await limiter.take(LIMITED)
    await limiter.aclose()


# --- the shared store's health -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lost_store_is_asked_again_once_a_second_not_on_every_call() -> None:
    clock = Clock()
    health = StoreHealth(clock)
    assert health.should_try() and health.should_try()  # up: every call asks it
    assert health.failed() is True  # lost: said once
    assert health.failed() is False
    clock.now = RETRY_INTERVAL / 2
    assert not health.should_try()
    clock.now = RETRY_INTERVAL
    assert health.should_try()  # one call tries again...
    assert not health.should_try()  # ...and the others, meanwhile, do not
    assert health.failed() is False  # still lost: nothing new to say
    clock.now = 2.5 * RETRY_INTERVAL
    assert health.should_try()
    assert health.recovered() is True  # back: said once
    assert health.recovered() is False
    assert health.should_try() and health.should_try()


# --- a store that does not answer ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentListener:
    """A TCP listener on loopback that takes connections and never answers: a stalled Redis
    (or, `hang_up`, one that closes each connection at once)."""

    def __init__(self, hang_up: bool = False) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._hold = 0 if hang_up else 60

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self._hold)
        writer.close()


async def listening(listener: SilentListener) -> AsyncIterator[tuple[SilentListener, int]]:
    listener.server = await asyncio.start_server(listener._accept, "127.0.0.1", 0)
    port = listener.server.sockets[0].getsockname()[1]
    try:
        yield listener, port
    finally:
        listener.server.close()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[SilentListener, int]]:
    async for listener in listening(SilentListener()):
        yield listener


@pytest.fixture
async def hanging_up() -> AsyncIterator[tuple[SilentListener, int]]:
    async for listener in listening(SilentListener(hang_up=True)):
        yield listener


def store(port: int, on_store_error: str = "local", timeout: float = 0.05) -> RateLimitStore:
    return RateLimitStore(
        host="127.0.0.1",
        port=port,
        password=PASSWORD.encode(),
        timeout=timeout,
        on_store_error=on_store_error,  # type: ignore[arg-type]
    )


def store_errors() -> Counter[str]:
    """sdksign_rate_limit_store_errors_total so far, by kind."""
    name = "sdksign_rate_limit_store_errors_total"
    return Counter({k: REGISTRY.get_sample_value(name, {"error": k}) or 0 for k in ERROR_KINDS})


async def test_unreachable_store_local_falls_back_to_this_workers_buckets() -> None:
    limiter = SharedLimiter(store(free_port()))
    with capture_logs() as logs:
        async with asyncio.timeout(5):  # a hang fails here
            await limiter.start()
            for _ in range(2):
                await limiter.take(LIMITED)  # the local bucket's burst
            with pytest.raises(ResourceExhausted) as raised:
                await limiter.take(LIMITED)
    await limiter.aclose()
    assert raised.value.message.startswith("caller 'limited' is over its rate limit of 1")
    lost = [line for line in logs if line["event"] == "rate limit store lost"]
    assert len(lost) == 1, logs
    assert (
        lost[0]["store"].startswith("redis://127.0.0.1:") and lost[0]["on_store_error"] == "local"
    )
    assert PASSWORD not in str(logs)


async def test_unreachable_store_refuse_answers_resource_exhausted_saying_when_to_retry() -> None:
    # Not UNAVAILABLE: Envoy's retry policy and the project's client retry that at once.
    limiter = SharedLimiter(store(free_port(), "refuse"))
    with capture_logs():
        for _ in range(3):
            with pytest.raises(ResourceExhausted) as raised:
                await limiter.take(LIMITED)
    await limiter.aclose()
    assert raised.value.message == STORE_UNAVAILABLE
    assert STORE_UNAVAILABLE.startswith("the rate limit store cannot be reached")
    assert 'on_store_error = "refuse"' in STORE_UNAVAILABLE
    status = status_for(raised.value)
    assert (status.code, status.details) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        STORE_UNAVAILABLE,
    )
    details = status_pb2.Status.FromString(
        dict(status.trailing_metadata)["grpc-status-details-bin"]
    ).details
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    assert len(details) == 2  # no QuotaFailure: the caller spent nothing
    assert details[0].Unpack(retry) and details[1].Unpack(info)
    assert retry.retry_delay.ToTimedelta().total_seconds() == RETRY_INTERVAL
    assert (info.reason, info.domain) == ("RATE_LIMIT_STORE_UNAVAILABLE", "sdksign")
    assert info.metadata["caller"] == "limited"


async def test_a_store_that_never_answers_costs_a_call_its_timeout_once_a_second(
    silent: tuple[SilentListener, int],
) -> None:
    listener, port = silent
    limiter = SharedLimiter(store(port))
    crowd = Caller(name="crowd", rule=Rule(rate=1.0, burst=10))
    before = store_errors()
    with capture_logs() as logs:
        async with asyncio.timeout(5):  # a hang fails here
            # Calls at once wait for the store together, each no longer than the timeout.
            await asyncio.gather(*(limiter.take(crowd) for _ in range(10)))
            for _ in range(2):
                await limiter.take(LIMITED)
            with pytest.raises(ResourceExhausted):
                await limiter.take(LIMITED)
    await limiter.aclose()
    # One connection waited the timeout; the next calls did not try (backing off).
    assert listener.connections == 1
    assert store_errors() - before == Counter(timeout=1)  # one request, not one per call
    assert [line["event"] for line in logs] == ["rate limit store lost"]
    assert "TimeoutError" in logs[0]["error"]


async def test_each_failed_request_counts_once_however_many_calls_waited_on_it(
    hanging_up: tuple[SilentListener, int],
) -> None:
    listener, port = hanging_up
    limiter = SharedLimiter(store(port, timeout=5.0))  # failures, not timeouts, to count
    crowd = Caller(name="crowd", rule=Rule(rate=1.0, burst=1000))
    calls = 2 * MAX_BATCH + 44  # three runs of the script: 128, 128 and 44 calls
    before = store_errors()
    with capture_logs() as logs:
        async with asyncio.timeout(10):  # a hang fails here
            results = await asyncio.gather(
                *(limiter.take(crowd) for _ in range(calls)), return_exceptions=True
            )
    await limiter.aclose()
    assert results == [None] * calls  # every call answered, by this worker's buckets
    assert listener.connections == 3  # one connection a request (no retries)
    assert store_errors() - before == Counter(connection=3)
    assert [line["event"] for line in logs] == ["rate limit store lost"]


async def test_a_batch_whose_time_ran_out_in_the_queue_is_not_sent_nor_counted() -> None:
    sent: list[int] = []

    async def slow_script(keys: list[str], args: list[object]) -> list[int]:
        sent.append(len(keys))
        time.sleep(0.2)  # noqa: ASYNC251 (holds the loop past every call's timeout: a late answer)
        return [1, 0] * len(keys)

    batches = Batches(slow_script, timeout=0.1)  # type: ignore[arg-type]
    before = store_errors()
    results = await asyncio.gather(
        *(batches.spend(f"k{i}", "1.0", 1) for i in range(MAX_BATCH + 1)),
        return_exceptions=True,
    )
    assert sent == [MAX_BATCH]  # the second batch, too late, was not sent
    assert results[:MAX_BATCH] == [(1, 0)] * MAX_BATCH
    assert isinstance(results[MAX_BATCH], TimeoutError)
    assert store_errors() - before == Counter()


# --- limiters replaced by reloads ----------------------------------------------------------


class CountedLimiter:
    """A limiter that counts, in `closes` (shared by all), how often each one is closed, and
    tells `closed`."""

    def __init__(
        self, store: RateLimitStore | None, closes: Counter[str], closed: asyncio.Condition
    ) -> None:
        self.name = "none" if store is None else store.host
        self._closes = closes
        self._closed = closed

    async def start(self) -> None:
        return None

    async def take(self, caller: Caller) -> None:
        return None

    async def aclose(self) -> None:
        async with self._closed:
            self._closes[self.name] += 1
            self._closed.notify_all()


async def test_each_limiter_a_reload_replaced_is_closed_once_and_let_go(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    closes: Counter[str] = Counter()
    closed = asyncio.Condition()
    monkeypatch.setattr(
        _service, "limiter_for", lambda store: CountedLimiter(store, closes, closed)
    )
    monkeypatch.setattr(_service, "MAX_STORE_TIMEOUT", 0.01)  # closed this soon after
    service = _service.SignatureService(config)
    replaced: list[weakref.ref[CountedLimiter]] = []
    for host in ("one", "two"):
        replaced.append(weakref.ref(service._limiter))  # type: ignore[arg-type]
        service.config = dataclasses.replace(config, rate_limits=RateLimitStore(host=host))
    async with asyncio.timeout(5), closed:  # a limiter never closed fails here
        await closed.wait_for(lambda: closes["none"] + closes["one"] == 2)
    gc.collect()
    assert [ref() for ref in replaced] == [None, None]  # the service holds none of them
    await service.aclose()
    assert closes == {"none": 1, "one": 1, "two": 1}
