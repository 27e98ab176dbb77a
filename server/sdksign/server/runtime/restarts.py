"""When the workers' parent starts a dead worker again, and when it gives up: pure logic, fed
with times by runtime.workers.

A worker that dies is started again after a delay that grows with its deaths in the last
CRASH_WINDOW seconds: at once for the first, then BACKOFF_FIRST seconds, doubled at each
death up to BACKOFF_MAX. It is started at once, whatever its deaths, when no other worker
serves, and so are the workers still waiting for their delay: a delay would then leave the
port without a server. The parent gives up (stops
every worker, exit status 1) only when the workers together have died CRASH_LIMIT times
within CRASH_WINDOW seconds: a crash loop that restarts do not cure (a configuration that
fails every worker at its start gets there in seconds). A worker whose event loop has been
silent for KILL_AFTER seconds is killed (and so dies and is started again): see
observe.admin for the heartbeat and for readiness, which drops it after SILENT_AFTER.
"""

from __future__ import annotations

from collections import deque

# The window over which deaths are counted, in seconds.
CRASH_WINDOW = 60.0
# Deaths of any worker within CRASH_WINDOW at which the parent gives up.
CRASH_LIMIT = 10
# The delay before a worker's second start within CRASH_WINDOW, doubled at each death after.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
# A worker whose heartbeat (observe.admin) is older than this is killed by its parent, seconds.
KILL_AFTER = 5.0


class Restarts:
    """The deaths of the last CRASH_WINDOW seconds, each worker's and all of them."""

    def __init__(self, window: float = CRASH_WINDOW, limit: int = CRASH_LIMIT) -> None:
        self._window = window
        self._limit = limit
        self._deaths: deque[tuple[float, int]] = deque()  # (when, worker index)

    def died(self, index: int, now: float, others_serving: bool) -> float | None:
        """Worker `index` died at `now` (time.monotonic()): the seconds to wait before starting
        it again, or None when the workers are in a crash loop (give up)."""
        self._deaths.append((now, index))
        while self._deaths and self._deaths[0][0] <= now - self._window:
            self._deaths.popleft()
        if len(self._deaths) >= self._limit:
            return None
        if not others_serving:
            return 0.0
        own = sum(1 for _, worker in self._deaths if worker == index)
        if own <= 1:
            return 0.0
        return float(min(BACKOFF_FIRST * 2 ** (own - 2), BACKOFF_MAX))

    def recent(self, now: float) -> int:
        """The deaths within the window before `now`."""
        return sum(1 for when, _ in self._deaths if when > now - self._window)
