"""Workers whose metric files cannot grow (a full /tmp, a memory emptyDir at its limit) go on
serving, uncounted: a real `sdksign serve --workers 2` under a real file size limit."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import grpc

from sdksign.server.observe.metricfiles import INITIAL_SIZE
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import start_server_process
from tests.process.test_admin_process import admin_address, get, stop
from tests.process.test_workers import events, wait_for

# Smaller than a metrics file's first size: no worker can make one. (The log file, written
# by the server too, stays far below it in this test.)
LIMIT = INITIAL_SIZE // 2


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def sign(target: str) -> str:
    options = [("grpc.use_local_subchannel_pool", 1)]  # each call on its own connection
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            pb_grpc.SignatureServiceStub(channel).Sign(
                pb.SignRequest(
                    meeting=pb.MeetingClaims(meeting_number="94843468909", role=pb.ROLE_PARTICIPANT)
                ),
                timeout=10,
            )
        except grpc.RpcError as error:
            return str(error.code().name)
    return "OK"


def test_workers_whose_metric_files_cannot_grow_serve_uncounted(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    server = start_server_process(tmp_path, env, ["--workers", "2"], preexec=limited)
    try:
        wait_for(lambda: len(events(server, "listening")) == 2, server)
        assert [sign(server.target) for _ in range(6)] == ["OK"] * 6
        admin = admin_address(server)
        assert get(admin, "/healthz/ready") == (200, "ready\n")
        assert get(admin, "/metrics")[0] == 200
        said = events(server, "metrics file cannot grow")
        assert {line["worker"] for line in said} == {0, 1}  # the workers', not the parent's
        # Each said as a JSON log line, none as text before the log was set up.
        assert [line for line in server.logs().splitlines() if not line.startswith("{")] == []
        assert (tmp_path / "server.stdout").read_text() == ""

        # A replacement worker starts with no room either, and serves.
        victim = events(server, "listening")[0]
        os.kill(int(str(victim["pid"])), signal.SIGKILL)
        wait_for(lambda: len(events(server, "listening")) == 3, server)
        assert [sign(server.target) for _ in range(6)] == ["OK"] * 6
        assert not events(server, "worker failed")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    finally:
        stop(server)
