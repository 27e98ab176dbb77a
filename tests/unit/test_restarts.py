"""When a dead worker is started again, and when the parent gives up (runtime.restarts); what
readiness says of a stuck or dead worker (observe.admin.WorkerStates)."""

from __future__ import annotations

import time

from sdksign.server.observe.admin import DRAINING, SERVING, STARTING, WorkerStates
from sdksign.server.runtime.restarts import BACKOFF_MAX, CRASH_LIMIT, CRASH_WINDOW, Restarts


def test_a_first_death_is_restarted_at_once_and_the_delay_grows_after() -> None:
    restarts = Restarts()
    delays = [restarts.died(0, float(second), others_serving=True) for second in range(7)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, BACKOFF_MAX, BACKOFF_MAX]


def test_each_worker_has_its_own_delay() -> None:
    restarts = Restarts()
    assert restarts.died(0, 0.0, others_serving=True) == 0.0
    assert restarts.died(0, 1.0, others_serving=True) == 0.5
    assert restarts.died(1, 2.0, others_serving=True) == 0.0  # worker 1's first


def test_no_delay_when_no_other_worker_serves() -> None:
    restarts = Restarts()
    for second in range(5):
        assert restarts.died(0, float(second), others_serving=False) == 0.0


def test_deaths_older_than_the_window_are_forgotten() -> None:
    restarts = Restarts()
    assert restarts.died(0, 0.0, others_serving=True) == 0.0
    assert restarts.died(0, 1.0, others_serving=True) == 0.5
    assert restarts.died(0, 1.0 + CRASH_WINDOW, others_serving=True) == 0.0
    assert restarts.recent(1.0 + CRASH_WINDOW) == 1


def test_the_parent_gives_up_on_a_crash_loop_only() -> None:
    restarts = Restarts()
    # Five deaths in ten seconds (a youngest worker killed again and again): started again.
    assert None not in [restarts.died(0, 2.0 * n, others_serving=True) for n in range(5)]
    # CRASH_LIMIT within the window: a crash loop.
    results = [restarts.died(n % 2, 10.0 + n, others_serving=False) for n in range(CRASH_LIMIT)]
    assert results[-1] is None and None not in results[: CRASH_LIMIT - 5 - 1]


def states(*given: int) -> WorkerStates:
    workers = WorkerStates(list(given), [time.monotonic()] * len(given))
    return workers


def test_a_silent_worker_is_not_ready() -> None:
    workers = states(SERVING, SERVING)
    assert workers.not_ready() is None
    workers.heartbeats[1] = time.monotonic() - 3.0
    reason = workers.not_ready()
    assert reason is not None and reason.startswith("stuck: worker 1: its event loop has not run")
    now = time.monotonic()
    first, second = workers.silent_for(0, now), workers.silent_for(1, now)
    assert first is not None and first < 1
    assert second is not None and second >= 3


def test_a_starting_worker_is_not_silent_and_a_waiting_one_says_when() -> None:
    workers = states(SERVING, STARTING)
    workers.heartbeats[1] = 0.0
    assert workers.silent_for(1, time.monotonic()) is None
    assert workers.not_ready() == "starting: worker 1 is not serving yet"
    workers.waiting[1] = time.monotonic() + 2
    reason = workers.not_ready()
    assert reason is not None and reason.startswith("restarting: worker 1 died; started again in")
    workers = states(DRAINING)
    assert workers.not_ready() == "draining: worker 0 is stopping"
