"""GRPC_TRACE and GRPC_VERBOSITY=debug on a real server: every call answered, SIGTERM obeyed.

gRPC's core writes its trace lines to file descriptor 2 from whatever thread runs it, the event
loop's among them, holding the GIL; the capture (observe.stderr) must never make that write wait
on the thread that reads the pipe, which needs the GIL too."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdksign.client import Client, Role, SdkSignError
from tests.conftest import MEETING_KEY, start_server_process

CALLS = 60


@pytest.mark.parametrize("trace", ["http", "all"])
def test_traced_server_answers_every_call_and_stops_on_sigterm(
    tmp_path: Path, server_env: dict[str, str], trace: str
) -> None:
    env = {**server_env, "GRPC_VERBOSITY": "debug", "GRPC_TRACE": trace}
    server = start_server_process(tmp_path, env, ["--workers", "1"])
    outcomes: dict[str, int] = {}
    tokens: list[str] = []
    try:
        with Client(server.target, timeout=5, retries=0) as client:
            for _ in range(CALLS):
                try:
                    answer = client.sign_meeting("123456789", Role.PARTICIPANT)
                    outcome = "OK" if answer.sdk_key == MEETING_KEY else "wrong app"
                    tokens.append(answer.token)
                except SdkSignError as error:
                    outcome = error.code.name
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        status = server.stop(timeout=15)
    assert outcomes == {"OK": CALLS}
    assert status == 0, "the server did not stop by itself within 15 s of SIGTERM"
    rpc = [line for line in server.events("rpc") if line.get("code") == "OK"]
    assert len(rpc) == CALLS
    assert any(line["event"] == "grpc core" for line in server.lines())
    logs = server.logs()
    assert not [token for token in tokens if token in logs or token.split(".")[2] in logs]
