"""`sdksign serve --workers N`: real worker processes on one port, signals reach every one."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ENV, ServerProcess, log_lines, run, start_server_process
from tests.process.test_process import serve_until_exit

SIGN = pb.SignRequest(
    meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
)


@pytest.fixture
def two_workers(tmp_path: Path, server_env: dict[str, str]) -> Iterator[ServerProcess]:
    server = start_server_process(tmp_path, server_env, ["--workers", "2"])
    wait_for(lambda: len(events(server, "listening")) == 2, server)
    try:
        yield server
    finally:
        assert server.stop(timeout=30) is not None, "the server did not stop within 30 s"


def events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(server.logs()) if event in str(line["event"])]


def wait_for(condition: object, server: ServerProcess, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; server log:\n{server.logs()}"
        time.sleep(0.05)


def sign_on_new_connections(target: str, count: int) -> None:
    """`count` Sign calls, each on its own TCP connection (a channel with its own subchannel)."""
    for _ in range(count):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            assert pb_grpc.SignatureServiceStub(channel).Sign(SIGN, timeout=10).token


def test_connections_spread_over_workers_and_lines_name_them(two_workers: ServerProcess) -> None:
    sign_on_new_connections(two_workers.target, 24)
    wait_for(lambda: len(events(two_workers, "rpc")) == 24, two_workers)
    served_by = Counter(line["worker"] for line in events(two_workers, "rpc"))
    # The kernel picks a worker per connection by a hash: 24 connections all on one
    # worker would happen once in 2**23 runs.
    assert set(served_by) == {0, 1}
    assert sorted(line["worker"] for line in events(two_workers, "listening")) == [0, 1]


def test_sigterm_reaches_every_worker(two_workers: ServerProcess) -> None:
    two_workers.process.send_signal(signal.SIGTERM)
    assert two_workers.process.wait(timeout=30) == 0
    assert sorted(line["worker"] for line in events(two_workers, "shutting down")) == [0, 1]
    last = log_lines(two_workers.logs())[-1]
    assert (last["event"], "worker" in last) == ("stopped", False)


def test_sighup_reaches_every_worker_and_serving_goes_on(two_workers: ServerProcess) -> None:
    two_workers.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(events(two_workers, "configuration reloaded")) == 2, two_workers)
    assert sorted(line["worker"] for line in events(two_workers, "configuration reloaded")) == [
        0,
        1,
    ]
    assert two_workers.process.poll() is None
    sign_on_new_connections(two_workers.target, 4)


def test_a_sighup_while_workers_start_reloads_them_once_they_serve(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """A SIGHUP that reaches a worker before its handler exists waits for it, not kills it."""
    server = start_server_process(tmp_path, server_env, ["--workers", "2"], listening=0)
    process = server.process
    try:
        wait_for(lambda: events(server, "starting workers"), server)
        process.send_signal(signal.SIGHUP)  # the workers are being spawned, or importing
        wait_for(lambda: len(events(server, "configuration reloaded")) == 2, server)
        assert sorted(line["worker"] for line in events(server, "listening")) == [0, 1]
        assert process.poll() is None and not events(server, "worker exited")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_worker_that_dies_is_replaced(two_workers: ServerProcess) -> None:
    victim = next(line["pid"] for line in events(two_workers, "listening") if line["worker"] == 0)
    assert isinstance(victim, int)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(events(two_workers, "listening")) == 3, two_workers)
    exited = events(two_workers, "worker exited")
    assert [line["exit_code"] for line in exited] == [-signal.SIGKILL]
    assert two_workers.process.poll() is None
    sign_on_new_connections(two_workers.target, 8)


def test_a_second_server_cannot_share_the_port(
    tmp_path: Path, two_workers: ServerProcess, server_env: dict[str, str]
) -> None:
    # The workers share their port on purpose (SO_REUSEPORT); an unrelated server must not.
    for workers in ("1", "2"):
        second = serve_until_exit(tmp_path, server_env, ["--workers", workers], two_workers.target)
        assert second.returncode == 2
        assert "address in use" in second.stderr


@pytest.mark.parametrize("value", ["0", "-1", "two", "257"])
def test_workers_must_be_a_sensible_count(tmp_path: Path, value: str) -> None:
    result = run(
        [sys.executable, "-m", "sdksign.server", "serve", "--workers", value], ENV, tmp_path
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr
    assert "whole number from 1 to 256" in result.stderr


def sign_outcomes(target: str, bearer: str, count: int) -> Counter[str]:
    """`count` Sign calls with `bearer`, each on its own connection, counted by status code."""
    outcomes: Counter[str] = Counter()
    metadata = (("authorization", f"Bearer {bearer}"),)
    for _ in range(count):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            try:
                pb_grpc.SignatureServiceStub(channel).Sign(SIGN, timeout=10, metadata=metadata)
                outcomes["OK"] += 1
            except grpc.RpcError as exc:
                outcomes[exc.code().name] += 1
    return outcomes


@pytest.mark.parametrize("change", ["reloaded", "broken", "reloaded, then broken"])
def test_a_replaced_worker_serves_what_the_others_serve(tmp_path: Path, change: str) -> None:
    """A caller's token changed and SIGHUP: the replacement of a dead worker serves the new
    one too. A file broken since the start: it serves the configuration of the start. A
    file broken after a reload: the reloaded one, never the start's (a revoked token)."""
    old_token, new_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    secret = secrets.token_urlsafe(32)
    config = tmp_path / "sdksign.toml"

    def write(token: str) -> None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        config.write_text(
            '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "ReplacedKey01"\n'
            f'secret_env = "S"\n[[callers]]\nname = "a"\ntoken_sha256 = "{digest}"\n'
            'roles = ["participant"]\n[anonymous]\nroles = []\nverify = false\n'
        )

    write(old_token)
    args = ["--config", str(config), "--workers", "2"]
    server = start_server_process(tmp_path, {"S": secret}, args)
    try:
        wait_for(lambda: len(events(server, "listening")) == 2, server)
        assert sign_outcomes(server.target, old_token, 4) == {"OK": 4}
        if change.startswith("reloaded"):
            write(new_token)  # the old token is revoked
            server.process.send_signal(signal.SIGHUP)
            wait_for(lambda: len(events(server, "configuration reloaded")) == 2, server)
        # Past the start-up window, a dead worker is replaced (and the parent, which reads
        # the file a second at most after a SIGHUP, has read it).
        time.sleep(2.5)
        if change.endswith("broken"):
            config.write_text(config.read_text() + "[[callers]]\nname = 'b'\n")
        victim = next(line["pid"] for line in events(server, "listening") if line["worker"] == 0)
        assert isinstance(victim, int)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(events(server, "listening")) == 3, server)
        # 24 connections each, spread by the kernel over both workers, the new one among them.
        reloaded = change.startswith("reloaded")
        served, refused = (new_token, old_token) if reloaded else (old_token, new_token)
        assert sign_outcomes(server.target, refused, 24) == {"UNAUTHENTICATED": 24}
        assert sign_outcomes(server.target, served, 24) == {"OK": 24}

        def calls() -> list[dict[str, object]]:
            return [line for line in log_lines(server.logs()) if line["event"] == "rpc"]

        wait_for(lambda: len(calls()) == 52, server)  # each call's line
        # The first 4 calls were served before the kill: worker 0 of the others is the new one.
        assert Counter(line["worker"] for line in calls()[4:])[0] > 0
        fallback = events(server, "this replacement worker serves the last configuration")
        assert [line["worker"] for line in fallback] == ([0] if change.endswith("broken") else [])
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    assert not [value for value in (old_token, new_token, secret) if value in server.logs()]
