"""Rate limits: a token bucket per caller, kept by each worker or shared by all in a store.

A caller's rule gives its `rate` (requests per second) and `burst` (the bucket's size).
Without a store ([rate_limits] store) every worker process keeps its own buckets
(access.buckets), so a caller gets its rate once per worker and per replica; with one,
every worker and replica spends from the same bucket (access.ratestore). Either way a
refusal is the same ResourceExhausted (buckets.over_limit), which says when to retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .buckets import TokenBuckets

if TYPE_CHECKING:
    from ..config import RateLimitStore
    from .policy import Caller


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
