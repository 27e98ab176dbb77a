"""Scenarios that stop or kill processes of `sdksign serve --workers 2` under AsyncClient load:
drain on SIGTERM, a worker killed, the parent killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.process import alive
from harness.server import ServerError, ServerProcess
from sdksign.server.runtime.serve import SERVICE_NAME

from .common import SIGN, Row, Soak
from .load import Load
from .server import (
    STOP_MARGIN,
    drain_option,
    scenario_config,
    serving,
    start_server,
    stop,
    wait_exit,
)

DRAIN = 3  # seconds: the drain scenario's --drain
DRAIN_GRACE = 5
PARENT_DRAIN = 2  # the parent-kill scenario's --drain
PARENT_GRACE = 2
# Past drain + grace, how long workers whose parent died may take to notice it and to exit.
PARENT_MARGIN = 3.0
WORKERS = 2
WARM_UP = 1.5  # seconds of load before the signal or the kill
# Load before the kill: the client has connections to both workers by then.
WORKER_KILL_WARM_UP = 3.5
STOP_SENDING_BEFORE_DRAIN_ENDS = 0.5
# How soon after SIGTERM health must answer NOT_SERVING ("at once", with room for a busy machine).
NOT_SERVING_WITHIN = 1.0
RESPAWN_TIMEOUT = 15.0


# --- drain -----------------------------------------------------------------------------------


async def drain(soak: Soak, row: Row) -> None:
    """SIGTERM the parent under load, keep calling until the drain is nearly over: every call
    answered OK, exit status 0, one log line per call, health NOT_SERVING at once."""
    config = scenario_config(soak, "drain", grace=DRAIN_GRACE)
    server = await start_server(soak, "drain", config, WORKERS, drain_option(DRAIN))
    try:
        await _drain_under_load(soak, server, row)
    finally:
        server.kill()


async def _drain_under_load(soak: Soak, server: ServerProcess, row: Row) -> None:
    settings = soak.settings
    async with Load(server.target, settings.load_rate, settings.deadline) as load:
        load.start()
        await asyncio.sleep(WARM_UP)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        stop_at = signalled + DRAIN - STOP_SENDING_BEFORE_DRAIN_ENDS
        by = signalled + NOT_SERVING_WITHIN
        health = asyncio.create_task(_not_serving_after(server.target, signalled, by))
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        await load.finish()
    left = signalled + DRAIN + DRAIN_GRACE + STOP_MARGIN - time.monotonic()
    status = await wait_exit(server.process, max(left, 0.0))
    row.outcomes = load.outcomes()
    row.note(f"{load.outcomes(since=signalled).calls:,} calls after SIGTERM")
    row.note(f"up to {load.max_in_flight} in flight")
    _check_failures(row)
    _check_exit(row, status)
    _check_one_line_per_call(row, server, load.launched)
    _check_health(row, await health)


async def _not_serving_after(address: str, since: float, until: float) -> float | None:
    """Seconds from `since` until Health/Check first answers NOT_SERVING (None: not by `until`)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        while time.monotonic() < until:
            try:
                answer = await stub.Check(request, timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    return time.monotonic() - since
            except grpc.RpcError:
                pass
            await asyncio.sleep(0.05)
    return None


def _check_failures(row: Row) -> None:
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")


def _check_exit(row: Row, status: int | None) -> None:
    if status is None:
        row.miss(f"still running {DRAIN + DRAIN_GRACE + STOP_MARGIN:.0f} s after SIGTERM")
    else:
        row.note(f"exit status {status}")
        if status != 0:
            row.miss(f"exit status {status}")


def _check_one_line_per_call(row: Row, server: ServerProcess, calls: int) -> None:
    logged = sum(server.rpc_codes(SIGN).values())
    row.note(f"{logged:,} rpc lines logged for {calls:,} calls")
    if logged != calls:
        row.miss(f"{logged:,} rpc lines logged for {calls:,} calls made")


def _check_health(row: Row, seconds: float | None) -> None:
    if seconds is None:
        row.miss(f"health not NOT_SERVING within {NOT_SERVING_WITHIN:.0f} s of SIGTERM")
    else:
        row.note(f"health NOT_SERVING {seconds * 1000:.0f} ms after SIGTERM")


# --- worker kill -----------------------------------------------------------------------------


async def worker_kill(soak: Soak, row: Row) -> None:
    """SIGKILL one worker under load: every call still answered OK (the client retries
    UNAVAILABLE), the worker replaced."""
    settings = soak.settings
    config = scenario_config(soak, "worker-kill")
    async with serving(soak, "worker-kill", config, WORKERS) as server:
        index, victim = min(server.workers().items())
        async with Load(server.target, settings.load_rate, settings.deadline) as load:
            load.start()
            await asyncio.sleep(WORKER_KILL_WARM_UP)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            respawn = asyncio.create_task(_respawned(server, index, victim, killed))
            await asyncio.sleep(settings.kill_window)
            await load.finish()
        row.outcomes = load.outcomes()
        around = load.outcomes(since=killed - 0.5, until=killed + settings.kill_window)
        row.note(f"max latency around the kill {around.max_ms() or 0:.0f} ms")
        _check_failures(row)
        _check_respawn(row, await respawn, index)
        row.note(f"{len(server.events('worker exited'))} `worker exited` line(s)")


async def _respawned(server: ServerProcess, index: int, victim: int, since: float) -> float | None:
    """Seconds from `since` until worker `index` listens again with a new pid (None: never)."""
    while time.monotonic() < since + RESPAWN_TIMEOUT:
        pid = server.workers().get(index)
        if pid is not None and pid != victim:
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    return None


def _check_respawn(row: Row, seconds: float | None, index: int) -> None:
    if seconds is None:
        row.miss(f"worker {index} not listening again {RESPAWN_TIMEOUT:.0f} s after the kill")
    else:
        row.note(f"worker {index} respawned, listening after {seconds:.1f} s")


# --- parent kill -----------------------------------------------------------------------------


async def parent_kill(soak: Soak, row: Row) -> None:
    """SIGKILL the parent under load: calls in the drain window OK, the workers exit by
    themselves within drain + grace, and a new server starts on the same port."""
    config = scenario_config(soak, "parent-kill", grace=PARENT_GRACE)
    extra = drain_option(PARENT_DRAIN)
    server = await start_server(soak, "parent-kill", config, WORKERS, extra)
    try:
        await _parent_kill_under_load(soak, server, row)
        await _restart_on_same_port(soak, server, row, config, extra)
    finally:
        server.kill()


async def _parent_kill_under_load(soak: Soak, server: ServerProcess, row: Row) -> None:
    settings = soak.settings
    workers = list(server.workers().values())
    sending = PARENT_DRAIN - STOP_SENDING_BEFORE_DRAIN_ENDS
    async with Load(server.target, settings.load_rate, settings.deadline) as load:
        load.start()
        await asyncio.sleep(WARM_UP)
        killed = time.monotonic()
        server.process.kill()
        await asyncio.sleep(sending)
        await load.finish()
    row.note(f"parent exit status {await wait_exit(server.process, 5)}")
    row.outcomes = load.outcomes()
    row.note(f"{load.outcomes(since=killed).calls:,} calls in the {sending:.1f} s after the kill")
    _check_failures(row)
    allowed = PARENT_DRAIN + PARENT_GRACE + PARENT_MARGIN
    gone = await _all_gone(workers, killed + allowed)
    if gone is None:
        left = [pid for pid in workers if alive(pid)]
        row.miss(f"workers {left} still running {allowed:.0f} s after their parent died")
    else:
        row.note(f"workers gone {gone - killed:.1f} s after the kill")


async def _all_gone(pids: list[int], deadline: float) -> float | None:
    """When none of `pids` runs any more (None: some still run at `deadline`)."""
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.05)
    return time.monotonic()


async def _restart_on_same_port(
    soak: Soak, old: ServerProcess, row: Row, config: Path, extra: list[str]
) -> None:
    try:
        new = await start_server(soak, "parent-kill", config, WORKERS, extra, listen=old.target)
    except ServerError as exc:
        row.miss(f"a new server on {old.target} did not start ({exc})")
        return
    row.note("a new server started on the same port")
    await stop(new, PARENT_DRAIN + PARENT_GRACE + STOP_MARGIN)
