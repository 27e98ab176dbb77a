"""Traces and a real `sdksign serve`: off, it never imports OpenTelemetry; asked for and not
possible (an unknown exporter, the otel extra missing, a setting the SDK refuses), the start
is refused with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdksign.client import Client, Role
from tests.conftest import ROOT, ServerProcess, log_lines, start_server_process
from tests.process.test_workers import events, wait_for


def serve(tmp_path: Path, env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """`sdksign serve` on a free port, run by `code` (which has `main`), its output captured;
    it must stop by itself (refused) within 30 s."""
    return subprocess.run(
        [sys.executable, "-c", f"from sdksign.cli import main\n{code}"],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}",
            "XDG_STATE_HOME": str(tmp_path / "state"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


RUN = (
    "raise SystemExit(main(['serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', "
    "'--workers', '2']))"
)
# The extra missing: the SDK cannot be imported, as where it is not installed.
WITHOUT_SDK = f"import sys\nsys.modules['opentelemetry.sdk.trace'] = None\n{RUN}"


@pytest.mark.parametrize(
    ("env", "code", "line"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "otlp"},
            WITHOUT_SDK,
            "OTEL_TRACES_EXPORTER=otlp asks for traces, but OpenTelemetry is not installed "
            "(opentelemetry.sdk.trace): pip install 'sdksign[otel]'",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "zipkin"},
            RUN,
            "OTEL_TRACES_EXPORTER: 'zipkin' is not one of otlp, console, none",
        ),
        (  # refused by the SDK as it makes the exporter: before any worker starts
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TIMEOUT": "ten"},
            RUN,
            "OTEL_EXPORTER_OTLP_TIMEOUT: OpenTelemetry refuses it: could not convert string "
            "to float: 'ten'",
        ),
    ],
)
def test_traces_that_cannot_be_made_refuse_the_start(
    tmp_path: Path, env: dict[str, str], code: str, line: str
) -> None:
    done = serve(tmp_path, env, code)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"sdksign: configuration error: {line}"]


@pytest.fixture
def untraced(tmp_path: Path, server_env: dict[str, str]) -> ServerProcess:
    """A server (two workers) that reports every module it imports (Python's -X importtime,
    on its stderr)."""
    return start_server_process(
        tmp_path, {**server_env, "PYTHONPROFILEIMPORTTIME": "1"}, ["--workers", "2"]
    )


def test_off_by_default_no_opentelemetry_is_imported(untraced: ServerProcess) -> None:
    try:
        with Client(untraced.target) as client:
            for _ in range(4):
                client.sign_meeting("123456789", Role.HOST)
    finally:
        untraced.process.terminate()
        assert untraced.process.wait(timeout=15) == 0
    logs = untraced.logs()
    assert "import time:" in logs and "sdksign.server.runtime.serve" in logs  # the report is there
    assert "opentelemetry" not in logs
    rpc = [line for line in log_lines(logs) if line.get("event") == "rpc"]
    assert len(rpc) == 4 and not any("trace_id" in line for line in rpc)


def test_the_sdk_s_warnings_at_start_are_json_log_lines(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """Resource attributes the SDK cannot read: its warning (given as its exporter's module
    loads) is a JSON line from each worker, never plain text among them."""
    env = {
        **server_env,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # nothing there: no span is sent
        "OTEL_RESOURCE_ATTRIBUTES": "garbage",
    }
    server = start_server_process(tmp_path, env, ["--workers", "2"])
    try:
        wait_for(lambda: len(events(server, "listening")) == 2, server)
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
    lines = server.logs().splitlines()
    assert [line for line in lines if not line.startswith("{")] == []
    warned = [line for line in log_lines(server.logs()) if line["event"] == "opentelemetry"]
    assert {line["worker"] for line in warned} == {0, 1}
    assert all("garbage" in str(line["text"]) for line in warned)
