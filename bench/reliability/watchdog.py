"""Scenarios of issue 21's process side, each under AsyncClient load on `--workers 2`:
gRPC core's tracing on, a worker stopped with SIGSTOP, the youngest worker killed again and
again. Every call counted by outcome."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import time
from collections import Counter

from harness.process import alive
from harness.server import ServerProcess

from .common import Row, Soak
from .load import Load
from .server import GRACE, SHORT_DRAIN, STOP_MARGIN, scenario_config, serving, start_server, stop

WORKERS = 2
WARM_UP = 1.5
# SIGSTOP: readiness must say so within this, and the worker be replaced within that.
NOT_READY_WITHIN = 3.0
REPLACED_WITHIN = 10.0
# Rapid kills: five in ten seconds; at most 1 % of calls may fail.
KILLS = 5
KILL_EVERY = 2.0
MAX_FAILED_SHARE = 0.01


def _ready(admin: str) -> tuple[int, str]:
    host, port = admin.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        connection.request("GET", "/healthz/ready")
        answer = connection.getresponse()
        return answer.status, answer.read().decode().strip()
    except OSError as exc:
        return 0, str(exc)
    finally:
        connection.close()


def _admin(server: ServerProcess) -> str:
    return str(server.events("listening")[0]["admin_address"])


async def traced(soak: Soak, row: Row) -> None:
    """GRPC_TRACE=all, GRPC_VERBOSITY=debug: every call OK, and SIGTERM obeyed."""
    settings = soak.settings
    config = scenario_config(soak, "trace")
    env = {"GRPC_TRACE": "all", "GRPC_VERBOSITY": "debug"}
    extra = ["--drain", str(SHORT_DRAIN)]
    server = await start_server(soak, "trace", config, WORKERS, extra, env=env)
    try:
        async with Load(server.target, settings.load_rate, settings.deadline) as load:
            load.start()
            await asyncio.sleep(settings.kill_window + WARM_UP)
            await load.finish()
        signalled = time.monotonic()
        status = await stop(server, SHORT_DRAIN + GRACE + STOP_MARGIN)
    finally:
        server.kill()
    row.outcomes = load.outcomes()
    core = len(server.events("grpc core"))
    dropped = server.events("grpc core lines dropped: the pipe was full")
    full = sum(int(line.get("times_full", 0)) for line in dropped)
    row.note(f"GRPC_TRACE=all: {core:,} core lines logged, pipe found full {full} time(s)")
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")
    if status is None:
        row.miss("still running after SIGTERM")
    else:
        row.note(f"SIGTERM: exit status {status} after {time.monotonic() - signalled:.1f} s")


async def stopped_worker(soak: Soak, row: Row) -> None:
    """SIGSTOP one of two workers under load: out of readiness within NOT_READY_WITHIN,
    killed and replaced within REPLACED_WITHIN, calls answered."""
    settings = soak.settings
    config = scenario_config(soak, "sigstop")
    async with serving(soak, "sigstop", config, WORKERS) as server:
        admin = _admin(server)
        async with Load(server.target, settings.load_rate, settings.deadline) as load:
            load.start()
            await asyncio.sleep(WARM_UP)
            # The worker that serves the load (its clients share one connection): stopped, its
            # calls wait for the watchdog, then go elsewhere.
            busiest = Counter(int(line.get("worker", 0)) for line in server.events("rpc"))
            index = busiest.most_common(1)[0][0]
            victim = server.workers()[index]
            stopped = time.monotonic()
            os.kill(victim, signal.SIGSTOP)
            not_ready = await _until(lambda: _ready(admin)[0] == 503, stopped, REPLACED_WITHIN)
            replaced = await _until(
                lambda: server.workers()[index] != victim, stopped, REPLACED_WITHIN
            )
            ready = await _until(lambda: _ready(admin)[0] == 200, stopped, 2 * REPLACED_WITHIN)
            await asyncio.sleep(settings.kill_window)
            await load.finish()
        if alive(victim):
            os.kill(victim, signal.SIGKILL)
    row.outcomes = load.outcomes()
    around = load.outcomes(since=stopped - 0.5, until=stopped + REPLACED_WITHIN)
    row.note(
        f"worker {index}, serving the load, stopped; max latency around it {around.max_ms() or 0:.0f} ms"
    )
    _judged(row, "not ready", not_ready, NOT_READY_WITHIN)
    _judged(row, "killed and listening again", replaced, REPLACED_WITHIN)
    _judged(row, "ready again", ready, 2 * REPLACED_WITHIN)
    row.note(f"{len(server.events('worker silent: killed'))} `worker silent: killed` line(s)")
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")


async def rapid_kills(soak: Soak, row: Row) -> None:
    """SIGKILL the youngest living worker KILLS times, KILL_EVERY seconds apart, under load:
    the server stays up, at most MAX_FAILED_SHARE of calls fail."""
    settings = soak.settings
    config = scenario_config(soak, "rapid-kills")
    async with serving(soak, "rapid-kills", config, WORKERS) as server:
        admin = _admin(server)
        async with Load(server.target, settings.load_rate, settings.deadline) as load:
            load.start()
            await asyncio.sleep(WARM_UP)
            for _ in range(KILLS):
                living = [line for line in server.events("listening") if alive(int(line["pid"]))]
                os.kill(int(living[-1]["pid"]), signal.SIGKILL)
                await asyncio.sleep(KILL_EVERY)
            began = time.monotonic()
            ready = await _until(lambda: _ready(admin)[0] == 200, began, 3 * REPLACED_WITHIN)
            await load.finish()
        up = server.process.poll() is None
        exited = server.events("worker exited")
    row.outcomes = load.outcomes()
    delays = [line.get("restart_in_seconds") for line in exited]
    row.note(f"{len(exited)} `worker exited` lines, restarted after {delays} s")
    _judged(
        row,
        f"ready again (from {KILL_EVERY:.0f} s after the last kill)",
        ready,
        3 * REPLACED_WITHIN,
    )
    if not up:
        row.miss("the server stopped")
    if row.outcomes.failed > MAX_FAILED_SHARE * row.outcomes.calls:
        row.miss(f"{row.outcomes.failed:,} of {row.outcomes.calls:,} calls failed (over 1 %)")


async def _until(condition: object, since: float, within: float) -> float | None:
    """Seconds from `since` until `condition()` holds (polled in a thread); None if it does
    not within `within` seconds."""
    assert callable(condition)
    while time.monotonic() < since + within:
        if await asyncio.to_thread(condition):
            return time.monotonic() - since
        await asyncio.sleep(0.1)
    return None


def _judged(row: Row, what: str, seconds: float | None, within: float) -> None:
    if seconds is None:
        row.miss(f"not {what} within {within:.0f} s")
    else:
        row.note(f"{what} after {seconds:.1f} s")
