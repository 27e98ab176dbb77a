"""Shared fixtures: test apps with throwaway secrets, an in-process server, a server process,
a Redis server; and each folder's markers."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog

from harness import ROOT
from harness.redis import RedisServer, RedisTLS
from harness.redis import running_redis as harness_redis
from harness.server import ADMIN_ANY_PORT, ServerError, ServerProcess, start_server
from harness.server import server_env as harness_env
from sdksign.server import App, Config
from sdksign.server.observe.log import configure_logging
from sdksign.server.runtime.serve import add_port, build_server
from tests.certs import Authority

BIN = Path(sys.executable).parent
# The admin listener on a free port (the default, 9464, would be taken by the first server,
# and by a server of the machine's): what start_server_process gives every server.
ADMIN = ADMIN_ANY_PORT
# The environment of a `sdksign` command the tests run to its end: PATH, and this checkout's
# code on PYTHONPATH.
ENV = harness_env(inherit=False)

# The markers (listed in pyproject.toml) each folder gives its tests, and those below it.
# tests/unit has none: `-m "not process"` selects the same tests as `make test-unit`.
FOLDER_MARKERS = {
    "process": ("process",),
    "gateway": ("process", "gateway"),
    "browser": ("process", "gateway", "browser"),
    "node": ("process", "node"),
    "deploy": ("process",),
}

# Helpers that assert, outside a test module: pytest shows their values as it does in a test.
pytest.register_assert_rewrite("tests.unit.diagnose_helpers")

MEETING_KEY = "TestMeetingKey0123456"
VIDEO_KEY = "TestVideoKey012345678"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(tests):
            folders = item.path.relative_to(tests).parts[:-1]
            for name in sorted({m for folder in folders for m in FOLDER_MARKERS.get(folder, ())}):
                item.add_marker(name)


@pytest.fixture(scope="session")
def meeting_secret() -> str:
    # Random per run, 43 characters (odd length, so jsrsasign never reads it as hex).
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def video_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def meeting_app(meeting_secret: str) -> App:
    return App(name="meeting", kind="meeting", sdk_key=MEETING_KEY, secret=meeting_secret.encode())


@pytest.fixture(scope="session")
def video_app(video_secret: str) -> App:
    return App(name="video", kind="video", sdk_key=VIDEO_KEY, secret=video_secret.encode())


@pytest.fixture(scope="session")
def config(meeting_app: App, video_app: App) -> Config:
    return Config(apps=(meeting_app, video_app), source="tests")


@pytest.fixture
async def target(config: Config) -> AsyncIterator[str]:
    """An in-process grpc.aio server on a free loopback port, built exactly as `serve` builds it."""
    server, health_servicer = build_server(config)
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    await health_servicer.set("", 1)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def start_server_process(
    tmp_path: Path,
    env: dict[str, str],
    args: Sequence[str] = (),
    timeout: float = 15.0,
    preexec: Callable[[], None] | None = None,
    listening: int = 1,
) -> ServerProcess:
    """`sdksign serve` on a free loopback port, run in `tmp_path` with `env` and nothing of this
    process's environment; returned once `listening` workers listen (the first: the port
    takes connections). Its stderr in server.stderr, its stdout (spans, with
    OTEL_TRACES_EXPORTER=console) in server.stdout. `preexec` runs in the child before the
    server starts (a resource limit)."""
    if "--drain" not in args:  # tests that stop a server do not wait for load balancers
        args = [*args, "--drain", "0"]
    # Development apps (no configuration) are kept under the test's own folder.
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), **env}
    try:
        return start_server(
            tmp_path,
            args,
            env,
            workers=listening,
            inherit_env=False,
            stdout_path=tmp_path / "server.stdout",
            timeout=timeout,
            preexec=preexec,
        )
    except ServerError as exc:
        raise AssertionError(f"{exc}\n{(tmp_path / 'server.stderr').read_text()}") from None


@pytest.fixture
def server_env(meeting_secret: str, video_secret: str) -> dict[str, str]:
    """Zoom's sample variables, naming the same apps as the `config` fixture."""
    return {
        "ZOOM_MEETING_SDK_KEY": MEETING_KEY,
        "ZOOM_MEETING_SDK_SECRET": meeting_secret,
        "ZOOM_VIDEO_SDK_KEY": VIDEO_KEY,
        "ZOOM_VIDEO_SDK_SECRET": video_secret,
    }


@pytest.fixture
def server_process(tmp_path: Path, server_env: dict[str, str]) -> Iterator[ServerProcess]:
    server = start_server_process(tmp_path, server_env)
    try:
        yield server
    finally:
        assert server.stop(timeout=15) is not None, "the server did not stop within 15 s"


def run(
    command: Sequence[str | Path],
    env: dict[str, str],
    cwd: Path = ROOT,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end, its output captured as text; its exit status is the caller's
    to check."""
    return subprocess.run(
        command,
        input=stdin,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a server's stderr (other lines, such as warnings, skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def rpc_lines(log_stream: io.BytesIO, count: int = 1) -> list[dict[str, Any]]:
    """The in-process log's rpc lines, once there are `count` (fails after 5 s with fewer).

    A call is logged once gRPC has sent its answer (runtime.deadlines), which may be just
    after its client has it: wait, letting the event loop run, before reading."""
    deadline = time.monotonic() + 5
    while True:
        lines = [
            line for line in log_lines(log_stream.getvalue().decode()) if line["event"] == "rpc"
        ]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{len(lines)} rpc lines, not {count}"
        await asyncio.sleep(0.01)


def wait_until(
    condition: Callable[[], object], what: Callable[[], str] | str = "", timeout: float = 15.0
) -> None:
    """Until `condition()` is true; AssertionError with `what` (text, or made when it fails)
    after `timeout` seconds. For a server in another process: a call is logged and counted
    once gRPC has sent its answer (runtime.deadlines), which may be just after its client
    has it, so what a test reads of a call it has just made may not be there yet."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.05)


# --- Redis: Debian's redis-server (make test installs it), one per test on a free port -----


@contextmanager
def running_redis(
    folder: Path, password: str | None = None, tls: Authority | None = None
) -> Iterator[RedisServer]:
    """A RedisServer in `folder` on a free loopback port, a password required (random unless
    given); TLS only with a certificate of `tls`, when given. Stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    files = None
    if tls is not None:
        issued = tls.issue("redis", ips=("127.0.0.1",), server=True)
        files = RedisTLS(folder / "redis.crt", folder / "redis.key", folder / "ca.pem")
        files.cert_file.write_bytes(issued.cert)
        files.key_file.write_bytes(issued.key)
        files.ca_file.write_bytes(tls.pem)
    with harness_redis(folder, password or secrets.token_urlsafe(24), files) as server:
        yield server


def redis_password(redis: RedisServer) -> str:
    """The password of a Redis of running_redis: it always has one."""
    assert redis.password is not None
    return redis.password


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def log_stream() -> Iterator[io.BytesIO]:
    """The log's JSON lines, kept here (ask for it before the server: each method's logger
    is bound when the server is built)."""
    stream = io.BytesIO()
    configure_logging("info", stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
