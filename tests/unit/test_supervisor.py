"""The workers' parent and the signals it forwards, with real child processes standing in for
workers (a worker is a spawned process; what it runs does not matter here): a SIGTERM that
arrives while a worker starts reaches it, and after one no worker starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sdksign.server import Config
from sdksign.server.observe.admin import SERVING, WorkerStates
from sdksign.server.observe.exposition import ServerState
from sdksign.server.runtime.workers import _Supervisor, _Watch


class Child:
    """What the spawn context's Process gives: a real child process (it sleeps until a
    signal ends it), and `on_start` run as soon as it exists."""

    def __init__(self, on_start: Callable[[], None], **_kwargs: Any) -> None:
        self._on_start = on_start
        self._process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def start(self) -> None:
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        self._process = subprocess.Popen(sleeper)
        self.pid = self._process.pid
        self._on_start()

    @property
    def exitcode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def wait(self) -> int:
        assert self._process is not None
        try:
            return self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            return 0  # it was never signalled


class Context:
    """The spawn context: Process() makes a Child, each kept here."""

    def __init__(self, on_start: Callable[[], None]) -> None:
        self.on_start = on_start
        self.made: list[Child] = []

    def Process(self, **kwargs: Any) -> Child:
        child = Child(self.on_start, **kwargs)
        self.made.append(child)
        return child


@pytest.fixture
def forwarding() -> Iterator[Callable[[Context, Config], _Supervisor]]:
    """A supervisor of one worker whose handler takes SIGTERM, as serve_workers sets it;
    SIGTERM's handler as before afterwards."""
    before = signal.getsignal(signal.SIGTERM)

    def make(context: Context, config: Config) -> _Supervisor:
        states = WorkerStates([SERVING])
        watch = _Watch(states, ServerState(states.not_ready), Path("/nonexistent"))
        supervisor = _Supervisor(config, "127.0.0.1:0", context, watch)  # type: ignore[arg-type]
        signal.signal(signal.SIGTERM, supervisor.forward)
        return supervisor

    try:
        yield make
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_sigterm_while_a_worker_starts_reaches_it(
    forwarding: Callable[[Context, Config], _Supervisor], config: Config
) -> None:
    # The SIGTERM comes just as the worker exists, before the parent has recorded it.
    context = Context(lambda: os.kill(os.getpid(), signal.SIGTERM))
    supervisor = forwarding(context, config)
    assert supervisor.start(0)
    [child] = context.made
    assert child.wait() == -signal.SIGTERM  # forwarded: it drains, as the others do
    assert supervisor._watch.states.not_ready() == "draining: stopping"


def test_after_a_sigterm_no_worker_starts(
    forwarding: Callable[[Context, Config], _Supervisor], config: Config
) -> None:
    context = Context(lambda: None)
    supervisor = forwarding(context, config)
    supervisor.forward(signal.SIGTERM, None)
    assert not supervisor.start(0)
    assert [child.pid for child in context.made] == [None]  # made, never started
