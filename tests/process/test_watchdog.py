"""The workers' parent as a watchdog: a stopped worker leaves readiness and is killed and
replaced; SIGTERM ends the server with a stopped worker; a worker killed again and again as
soon as it starts is started again each time (with a growing delay) while the others serve."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.process import alive
from sdksign.client import Client, Role, SdkSignError
from tests.conftest import ServerProcess, start_server_process
from tests.process.test_admin_process import get, scrape, total
from tests.process.test_workers import events, sign_on_new_connections, wait_for


@pytest.fixture
def two_workers(tmp_path: Path, server_env: dict[str, str]) -> Iterator[tuple[ServerProcess, str]]:
    """A server of two workers, and its admin listener's address."""
    server = start_server_process(tmp_path, server_env, ["--workers", "2"])
    try:
        wait_for(lambda: len(events(server, "listening")) == 2, server)
        admin = str(events(server, "listening")[0]["admin_address"])
        wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
        yield server, admin
    finally:
        server.stop(timeout=30)


def test_a_stopped_worker_leaves_readiness_then_is_killed_and_replaced(
    two_workers: tuple[ServerProcess, str],
) -> None:
    server, admin = two_workers
    victim = next(int(line["pid"]) for line in events(server, "listening") if line["worker"] == 1)
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_for(lambda: "stuck: worker 1" in get(admin, "/healthz/ready")[1], server)
        assert get(admin, "/healthz/ready")[0] == 503
        wait_for(lambda: len(events(server, "listening")) == 3, server)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    [killed] = events(server, "worker silent: killed")
    assert killed["worker"] == 1 and killed["pid"] == victim and killed["silent_seconds"] >= 5
    assert not alive(victim)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
    samples = scrape(admin)[1]
    assert total(samples, "sdksign_worker_watchdog_kills_total") == 1
    assert total(samples, "sdksign_worker_restarts_total") == 1
    sign_on_new_connections(server.target, 8)


def test_sigterm_ends_the_server_with_a_stopped_worker(
    two_workers: tuple[ServerProcess, str],
) -> None:
    server, _ = two_workers
    victim = next(int(line["pid"]) for line in events(server, "listening") if line["worker"] == 0)
    os.kill(victim, signal.SIGSTOP)
    # --drain 0, grace 10 s by default: the parent kills the stopped worker once silent
    # for KILL_AFTER, well within drain + grace, and exits.
    assert server.stop(timeout=20) == 0
    assert not alive(victim)
    [killed] = events(server, "worker silent: killed")
    assert killed["worker"] == 0


KILLS = 5
KILL_EVERY = 2.0  # seconds: five kills in ten
LOADERS = 4


class Load:
    """Sign calls from LOADERS threads, one after another each, every outcome counted."""

    def __init__(self, target: str) -> None:
        self.outcomes: Counter[str] = Counter()
        self._target = target
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(LOADERS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        with Client(self._target, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    client.sign_meeting("123456789", Role.PARTICIPANT)
                    outcome = "OK"
                except SdkSignError as error:
                    outcome = error.code.name
                self.outcomes[outcome] += 1


def test_the_youngest_worker_killed_five_times_in_ten_seconds_leaves_the_server_up(
    two_workers: tuple[ServerProcess, str],
) -> None:
    server, admin = two_workers
    killed: list[int] = []
    with Load(server.target) as load:
        time.sleep(1.0)
        for _ in range(KILLS):
            living = [line for line in events(server, "listening") if alive(int(line["pid"]))]
            youngest = int(living[-1]["pid"])
            os.kill(youngest, signal.SIGKILL)
            killed.append(youngest)
            time.sleep(KILL_EVERY)
        wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
        time.sleep(1.0)
    assert server.process.poll() is None, "the server stopped"
    exited = events(server, "worker exited")
    assert len(exited) == KILLS and all(line["exit_code"] == -signal.SIGKILL for line in exited)
    assert not events(server, "workers keep dying")
    calls = sum(load.outcomes.values())
    failed = calls - load.outcomes["OK"]
    assert calls > 100 and failed <= calls // 100, load.outcomes
    assert total(scrape(admin)[1], "sdksign_worker_restarts_total") == KILLS
