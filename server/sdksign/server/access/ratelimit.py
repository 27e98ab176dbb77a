"""Rate limits: a token bucket per caller, kept by each worker or shared by all in a store.

A caller's rule gives its `rate` (requests per second) and `burst` (the bucket's size).
Without a store ([rate_limits] store) every worker process keeps its own buckets, so a
caller gets its rate once per worker and per replica; with one, every worker and replica
spends from the same bucket (access.ratestore). Either way a refusal is the same
ResourceExhausted, which the RPC layer answers with RetryInfo and QuotaFailure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from ..errors import ResourceExhausted

if TYPE_CHECKING:
    from ..config.model import RateLimitStore
    from .policy import Caller


def over_limit(caller: Caller, retry_after: float) -> ResourceExhausted:
    """The refusal of a call of `caller`, whose bucket has a token again in `retry_after` s."""
    rule = caller.rule
    return ResourceExhausted(
        f"caller {caller.name!r} is over its rate limit of {rule.rate:g} requests/s "
        f"(burst {max(rule.burst, 1)}); retry in {retry_after:.2f} s",
        retry_after=retry_after,
        subject=caller.name,
    )


class TokenBuckets:
    """A token bucket per caller name, in this process; the clock is passed in, so tests
    need no sleeping."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last time)

    def take(self, caller: Caller, now: float | None = None) -> None:
        """Spend one request of `caller`'s allowance; raise ResourceExhausted when it is gone."""
        rate = caller.rule.rate
        if rate is None:
            return
        now = time.monotonic() if now is None else now
        capacity = float(max(caller.rule.burst, 1))
        tokens, last = self._buckets.get(caller.name, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[caller.name] = (tokens, now)
            raise over_limit(caller, (1.0 - tokens) / rate)
        self._buckets[caller.name] = (tokens - 1.0, now)


class Limiter(Protocol):
    """What the servicer spends a rate-limited caller's requests from."""

    async def start(self) -> None:
        """Get ready before the first call (connect, load what the store runs); never raises."""

    async def take(self, caller: Caller) -> None:
        """Spend one request of `caller`'s allowance (its rule has a rate); raise
        ResourceExhausted when it is gone, or when it cannot be known (the store
        unreachable and on_store_error "refuse")."""

    async def aclose(self) -> None:
        """Let go of what the limiter holds (connections); it is not used afterwards."""


class LocalLimiter:
    """Buckets kept by this worker process alone."""

    def __init__(self) -> None:
        self._buckets = TokenBuckets()

    async def start(self) -> None:
        return None

    async def take(self, caller: Caller) -> None:
        self._buckets.take(caller)

    async def aclose(self) -> None:
        return None


def limiter_for(store: RateLimitStore | None) -> Limiter:
    """The limiter for a configuration's [rate_limits] store (None: this worker's buckets)."""
    if store is None:
        return LocalLimiter()
    from .ratestore import SharedLimiter  # only with a store: the redis extra

    return SharedLimiter(store)
