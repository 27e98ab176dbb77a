"""grpc core's own lines come out as JSON lines: from a child Python process and from a real
`sdksign serve`, whose traced headers lose their credential."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdksign.client import Client, Role, SdkSignError
from sdksign.server.observe.log import ATOMIC_WRITE
from sdksign.server.zoom.jwt import encode, fingerprint
from tests.conftest import MEETING_KEY, ROOT, start_server_process

# --- grpc core's lines, written by native code to file descriptor 2 -------------------------

CAPTURING = """
import os, subprocess, sys
import structlog
from sdksign.server.observe.log import configure_logging
from sdksign.server.observe.stderr import original_stderr

configure_logging("info", worker=3, native_stderr=True)
token = sys.argv[1]
os.write(2, f"E1123 18:00:00.123456  1 hpack_parser.cc:901] bad header {token}\\n".encode())
os.write(2, b"D1123 18:00:00.123456  1 x.cc:1] below the level: dropped\\n")
os.write(2, b"W1123 18:00:00.123456  1 x.cc:1] " + b"w" * 5000 + b"\\n")
os.write(2, b"I1123 18:00:00.123456  1 x.cc:1] in two wr")
os.write(2, b"ites\\n")
structlog.get_logger("t").info("from python", detail=token)
print("printed by python", file=sys.stderr)
child = [sys.executable, "-c", "import os; os.write(2, b'E0000 from a child\\\\n')"]
subprocess.run(child, check=True)  # inherits the pipe: its line comes out as JSON
with original_stderr():
    subprocess.run(child, check=True)  # inherits the original stderr: its line as it is
os.write(2, b"no newline at the end")  # written out at exit
"""


def test_native_lines_on_fd_2_become_json_lines() -> None:
    token = encode({"sdkKey": "k"}, b"secret")
    done = subprocess.run(
        [sys.executable, "-c", CAPTURING, token],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}"},
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = done.stderr.decode().splitlines()
    assert token not in done.stderr.decode()
    raw = [line for line in lines if not line.startswith("{")]
    assert sorted(raw) == ["E0000 from a child", "printed by python"]
    events = [json.loads(line) for line in lines if line.startswith("{")]
    texts = [e["text"] for e in events if e["event"] == "grpc core"]
    native = sorted(
        (e["level"], e["text"].split("] ")[-1][:12], e["worker"])
        for e in events
        if e["event"] == "grpc core"
    )
    assert native == [
        ("error", "E0000 from a", 3),
        ("error", "bad header <", 3),
        ("info", "in two write", 3),
        ("info", "no newline a", 3),
        ("warning", "wwwwwwwwwwww", 3),
    ]
    [hpack] = [text for text in texts if "hpack" in text]
    assert hpack.endswith(f"bad header <token {fingerprint(token)}>")
    [long] = [text for text in texts if "wwww" in text]
    assert long.endswith("w…(+4777 chars)") and len(long) < 300
    assert "I1123 18:00:00.123456  1 x.cc:1] in two writes" in texts
    assert all(len(line.encode()) <= ATOMIC_WRITE for line in lines)
    [python] = [e for e in events if e["event"] == "from python"]
    assert python["detail"] == f"<token {fingerprint(token)}>" and python["worker"] == 3


# Writes to fd 2 the way grpc's core does: from C, holding the GIL (PyDLL keeps it held), so
# that the reading thread cannot turn lines into JSON meanwhile. Before the pipe was made
# non-blocking, the second write waited for that thread for ever.
HOLDING_THE_GIL = """
import ctypes, sys, time
from sdksign.server.observe import metrics
from sdksign.server.observe.log import configure_logging

configure_logging("info", native_stderr=True)
libc = ctypes.PyDLL(None, use_errno=True)
line = b"E1123 18:00:00.123456  1 x.cc:1] " + b"x" * 60 + b"\\n"
burst = line * (4 * 1024 * 1024 // len(line))
written = [libc.write(2, burst, len(burst)) for _ in range(3)]
time.sleep(1.0)  # the reader gets the GIL, reads the full pipe
print(written, metrics.setup().native_log_overflows._value.get(), flush=True)
"""


def test_a_full_native_stderr_pipe_drops_lines_instead_of_waiting() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOLDING_THE_GIL],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}"},
        capture_output=True,
        timeout=60,
        check=True,
    )
    written, overflows = done.stdout.decode().rsplit("] ", 1)
    sizes = [int(size) for size in written.strip("[").split(",")]
    assert any(size < 4 * 1024 * 1024 - 100 for size in sizes)  # refused, not waited for
    assert float(overflows) >= 1
    events = [json.loads(line) for line in done.stderr.decode().splitlines()]
    [dropped] = [e for e in events if e["event"] == "grpc core lines dropped: the pipe was full"]
    assert dropped["level"] == "warning" and dropped["times_full"] >= 1
    assert any(e["event"] == "grpc core" for e in events)


def test_grpc_core_lines_of_a_real_server_are_json(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """Both ways of making core write: GRPC_VERBOSITY=info has it warn at start that INFO is
    no level for production, and GRPC_TRACE=http has it trace a connection that does not
    speak HTTP/2 ("Failed parsing HTTP/2"). Every line on stderr is JSON."""
    env = {**server_env, "GRPC_VERBOSITY": "info", "GRPC_TRACE": "http"}
    server = start_server_process(tmp_path, env, ["--workers", "1"])
    try:
        host, port = server.target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as garbage:
            garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            garbage.recv(100)
        with Client(server.target) as client:
            assert client.sign_meeting("123456789", Role.PARTICIPANT).sdk_key == MEETING_KEY
        deadline = time.monotonic() + 20
        while "Failed parsing HTTP/2" not in server.logs():
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.05)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    lines = server.logs().splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    core = [e for e in events if e["event"] == "grpc core"]
    assert any(e["level"] == "warning" and "Log level INFO" in e["text"] for e in core)
    assert any("Failed parsing HTTP/2" in e["text"] for e in core)
    assert {e["level"] for e in core} <= {"warning", "info"}
    assert any(e["event"] == "rpc" for e in events)


def test_a_bearer_token_traced_by_grpc_core_is_not_logged(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """With every tracer on, the core prints each request header, `authorization` among
    them: the line comes out with the credential dropped."""
    bearer = "bearer-" + "q" * 30
    env = {**server_env, "GRPC_VERBOSITY": "debug", "GRPC_TRACE": "all"}
    server = start_server_process(tmp_path, env, ["--workers", "1"])
    try:
        client = Client(server.target, bearer_token=bearer, retries=0)
        with client, pytest.raises(SdkSignError):  # no such caller
            client.sign_meeting("123456789", Role.PARTICIPANT)
        deadline = time.monotonic() + 20
        while "authorization: <redacted>" not in server.logs():
            assert time.monotonic() < deadline, "the core never traced the header"
            time.sleep(0.05)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    assert bearer not in server.logs()
