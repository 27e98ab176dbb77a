"""Shared fixtures: test apps with throwaway secrets, an in-process server, a server process,
a Redis server; and each folder's markers."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import structlog

from sdksign.server import App, Config
from sdksign.server.observe.log import configure_logging
from sdksign.server.runtime.serve import add_port, build_server
from tests.certs import Authority

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Every server a test starts serves its admin listener on a free port (the default, 9464,
# would be taken by the first, and by a server of the machine's).
ADMIN = ("--admin-listen", "127.0.0.1:0")

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


@dataclass
class ServerProcess:
    """`sdksign serve` running as its own process."""

    process: subprocess.Popen[str]
    target: str
    stderr_path: Path

    def logs(self) -> str:
        return self.stderr_path.read_text()


def start_server_process(
    tmp_path: Path,
    env: dict[str, str],
    args: Sequence[str] = (),
    timeout: float = 15.0,
    preexec: Callable[[], None] | None = None,
) -> ServerProcess:
    """Start `python -m sdksign.server serve` on a free loopback port; wait until it listens.
    `preexec` runs in the child before the server starts (a resource limit)."""
    stderr_path = tmp_path / "server.stderr"
    if "--drain" not in args:  # tests that stop a server do not wait for load balancers
        args = [*args, "--drain", "0"]
    if "--admin-listen" not in args:  # any free port: 9464 is the first server's
        args = [*args, *ADMIN]
    process = subprocess.Popen(
        [sys.executable, "-m", "sdksign.server", "serve", "--listen", "127.0.0.1:0", *args],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}",
            # Development apps (no configuration) are kept under the test's own folder.
            "XDG_STATE_HOME": str(tmp_path / "state"),
            **env,
        },
        stdout=(tmp_path / "server.stdout").open("w"),  # spans, with OTEL_TRACES_EXPORTER=console
        stderr=stderr_path.open("w"),
        text=True,
        preexec_fn=preexec,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The first worker's line: from then on the port takes connections.
        match = re.search(r'"address":"([^"]+)"[^\n]*"event":"listening"', stderr_path.read_text())
        if match:
            return ServerProcess(process, match.group(1), stderr_path)
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {stderr_path.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server did not start: {stderr_path.read_text()}")


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
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=15)


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


def log_lines(text: str) -> list[dict[str, object]]:
    """The JSON log lines of a server's stderr (other lines, such as warnings, skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --- Redis: Debian's redis-server (make test installs it), one per test on a free port -----

REDIS_SERVER = Path("/usr/bin/redis-server")


@dataclass
class RedisServer:
    """Debian's redis-server on a loopback port: no persistence, a password required; with
    `ca_file`, TLS only (its certificate, for 127.0.0.1, signed by the CA in that file)."""

    port: int
    password: str
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        """The store's URL for [rate_limits] store (the password goes in password_env)."""
        return f"{'redis' if self.ca_file is None else 'rediss'}://127.0.0.1:{self.port}/0"

    def _listen(self) -> list[str]:
        """Its port: plain, or (with `ca_file`) TLS only, clients not asked for certificates."""
        if self.ca_file is None:
            return ["--port", str(self.port)]
        return [
            *("--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"),
            *("--tls-cert-file", str(self.folder / "redis.crt")),
            *("--tls-key-file", str(self.folder / "redis.key")),
            *("--tls-ca-cert-file", str(self.ca_file)),
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port, empty) and wait until it answers."""
        assert REDIS_SERVER.exists(), "redis-server not found: make test installs Debian's"
        options = [*self._listen(), "--bind", "127.0.0.1", "--save", ""]
        options += ["--appendonly", "no", "--requirepass", self.password, "--dir", str(self.folder)]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, *options], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as plain:
                connection = plain
                if self.ca_file is not None:
                    context = ssl.create_default_context(cafile=self.ca_file)
                    connection = context.wrap_socket(plain, server_hostname="127.0.0.1")
                connection.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return connection.recv(64).startswith(b"+OK")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: gone at once, as a crashed or unplugged Redis is."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        """A client of its own (over TLS when it has a `ca_file`), for tests to look at what
        the store holds."""
        ca = None if self.ca_file is None else str(self.ca_file)
        return redis.Redis(
            "127.0.0.1",
            self.port,
            password=self.password,
            socket_timeout=5,
            ssl=bool(ca),
            ssl_ca_certs=ca,
        )


@contextmanager
def running_redis(
    folder: Path, password: str | None = None, tls: Authority | None = None
) -> Iterator[RedisServer]:
    """A RedisServer in `folder` on a free loopback port (its password random unless given;
    TLS only with a certificate of `tls`, when given); stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = password or secrets.token_urlsafe(24)
    server = RedisServer(port=port, password=password, folder=folder)
    if tls is not None:
        issued = tls.issue("redis", ips=("127.0.0.1",), server=True)
        (folder / "redis.crt").write_bytes(issued.cert)
        (folder / "redis.key").write_bytes(issued.key)
        server.ca_file = folder / "ca.pem"
        server.ca_file.write_bytes(tls.pem)
    try:
        server.start()
        yield server
    finally:
        server.stop()


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
