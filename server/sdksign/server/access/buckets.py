"""A token bucket per caller, kept in this process, and the refusal when one is empty.

Both limiters spend from these: the worker's own (ratelimit.LocalLimiter), and the
shared one (ratestore.SharedLimiter) while its store cannot be reached.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import ResourceExhausted

if TYPE_CHECKING:
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
