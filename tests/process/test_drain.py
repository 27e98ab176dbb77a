"""The fleet changes and no call is lost: SIGTERM drains, a lost worker or parent costs nothing.

Real `sdksign serve --workers 2` processes, loaded with the project's own client
(its default retries), every call counted by outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sdksign.client import AsyncClient, Role, SdkSignError
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ADMIN, ENV, ServerProcess, log_lines, start_server_process
from tests.process.test_workers import SIGN, events, wait_for


async def load(target: str, until: Callable[[], bool], tasks: int = 16) -> Counter[str]:
    """Sign calls from `tasks` concurrent callers until `until()`; outcomes counted by code."""
    outcomes: Counter[str] = Counter()
    async with AsyncClient(target, timeout=20) as client:

        async def caller() -> None:
            while not until():
                try:
                    await client.sign_meeting("123456789", Role.PARTICIPANT)
                    outcomes["OK"] += 1
                except SdkSignError as error:
                    outcomes[error.code.name] += 1

        await asyncio.gather(*(caller() for _ in range(tasks)))
    return outcomes


async def health(target: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="sdksign.v1.SignatureService"), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def sign_lines(server: ServerProcess) -> Counter[str]:
    return Counter(
        str(line["code"])
        for line in log_lines(server.logs())
        if line["event"] == "rpc" and line.get("method") == "/sdksign.v1.SignatureService/Sign"
    )


def workers(tmp_path: Path, env: dict[str, str], drain: str) -> ServerProcess:
    server = start_server_process(tmp_path, env, ["--workers", "2", "--drain", drain])
    wait_for(lambda: len(events(server, "listening")) == 2, server)
    return server


async def test_sigterm_drains_and_every_call_is_answered_and_logged(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    server = workers(tmp_path, server_env, drain="3")
    try:
        await load(server.target, until=_after(0.5))
        sent_term = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        during = asyncio.create_task(load(server.target, until=_at(sent_term + 2.0)))
        await asyncio.to_thread(wait_for, lambda: len(events(server, "draining")) == 2, server)
        assert await health(server.target) == "NOT_SERVING"
        outcomes = await during
        assert outcomes["OK"] > 0
        assert await asyncio.to_thread(server.process.wait, 30) == 0
    finally:
        server.process.kill()
    total = sign_lines(server)
    assert set(total) == {"OK"}, total
    order = [line["event"] for line in log_lines(server.logs()) if line.get("worker") == 0]
    tail = [e for e in order if e in ("draining", "shutting down", "stopped")]
    assert tail == ["draining", "shutting down", "stopped"]


async def test_every_call_the_client_made_reached_a_log_line(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    server = workers(tmp_path, server_env, drain="2")
    try:
        before = await load(server.target, until=_after(0.5))
        server.process.send_signal(signal.SIGTERM)
        during = await load(server.target, until=_after(1.0))
        assert await asyncio.to_thread(server.process.wait, 30) == 0
    finally:
        server.process.kill()
    made = before + during
    assert set(made) == {"OK"}, made
    assert sign_lines(server) == made


def test_ctrl_c_skips_the_drain(tmp_path: Path, server_env: dict[str, str]) -> None:
    server = workers(tmp_path, server_env, drain="60")
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=20) == 0
    assert not events(server, "draining")


def test_a_second_sigterm_cuts_the_drain_short(tmp_path: Path, server_env: dict[str, str]) -> None:
    server = workers(tmp_path, server_env, drain="60")
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: len(events(server, "draining")) == 2, server)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
    assert len(events(server, "drain cut short")) == 2


async def test_a_killed_worker_costs_no_call(tmp_path: Path, server_env: dict[str, str]) -> None:
    server = workers(tmp_path, server_env, drain="0")
    try:
        victim = int(str(events(server, "listening")[0]["pid"]))
        await asyncio.sleep(2.5)  # past the age below which a dying worker stops the server
        running = asyncio.create_task(load(server.target, until=_after(3.0)))
        await asyncio.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        outcomes = await running
        await asyncio.to_thread(wait_for, lambda: len(events(server, "listening")) == 3, server)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    assert set(outcomes) == {"OK"}, outcomes
    assert len(events(server, "worker exited")) == 1


async def test_workers_stop_with_their_killed_parent(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    server = workers(tmp_path, server_env, drain="1")
    pids = [int(str(line["pid"])) for line in events(server, "listening")]
    try:
        running = asyncio.create_task(load(server.target, until=_after(0.8)))
        await asyncio.sleep(0.3)
        server.process.kill()
        outcomes = await running
        await asyncio.to_thread(wait_for, lambda: not any(map(_alive, pids)), server)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert set(outcomes) == {"OK"}, outcomes
    assert len(events(server, "parent gone")) == 2
    # The port is free again: a new server takes it.
    port = server.target.rsplit(":", 1)[1]
    (tmp_path / "again").mkdir()
    again = start_server_process(tmp_path / "again", server_env, ["--listen", f"127.0.0.1:{port}"])
    again.process.terminate()
    assert again.process.wait(timeout=30) == 0


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _after(seconds: float) -> Callable[[], bool]:
    return _at(time.monotonic() + seconds)


def _at(moment: float) -> Callable[[], bool]:
    return lambda: time.monotonic() >= moment


def test_workers_serve_and_stop_with_their_parent_when_stderr_has_no_reader(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """`sdksign serve ... 2>&1 | cat` whose `cat` is gone: log lines cannot be written
    (EPIPE), and calls are still served, and the workers still stop with their parent. Its
    stderr is a pipe, read here: not harness.server's, whose stderr is a file."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "sdksign.server", "serve", "--listen", "127.0.0.1:0"),
            *("--workers", "2", "--drain", "0", *ADMIN),
        ],
        cwd=tmp_path,
        env={**ENV, **server_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    listening: list[dict[str, Any]] = []
    while len(listening) < 2:
        line = process.stderr.readline()
        assert line, "the server stopped before its workers listened"
        if b'"event":"listening"' in line:
            listening.append(json.loads(line))
    process.stderr.close()  # the reader is gone: every write to stderr now fails
    pids = [int(line["pid"]) for line in listening]
    try:
        with grpc.insecure_channel(str(listening[0]["address"])) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            assert all(stub.Sign(SIGN, timeout=10).token for _ in range(20))
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(map(_alive, pids)):
            assert time.monotonic() < deadline, "workers outlived their parent"
            time.sleep(0.05)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
