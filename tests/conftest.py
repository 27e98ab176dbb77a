"""Shared fixtures: test apps with throwaway secrets, an in-process server, a server process;
and each folder's markers."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdksign.server import App, Config
from sdksign.server._serve import add_port, build_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The markers (listed in pyproject.toml) each folder gives its tests, and those below it.
# tests/unit has none: `-m "not process"` selects the same tests as `make test-unit`.
FOLDER_MARKERS = {
    "process": ("process",),
    "gateway": ("process", "gateway"),
    "browser": ("process", "gateway", "browser"),
    "node": ("process", "node"),
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
    tmp_path: Path, env: dict[str, str], args: Sequence[str] = (), timeout: float = 15.0
) -> ServerProcess:
    """Start `python -m sdksign.server serve` on a free loopback port; wait until it listens."""
    stderr_path = tmp_path / "server.stderr"
    if "--drain" not in args:  # tests that stop a server do not wait for load balancers
        args = [*args, "--drain", "0"]
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
        stdout=subprocess.DEVNULL,
        stderr=stderr_path.open("w"),
        text=True,
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


def log_lines(text: str) -> list[dict[str, object]]:
    """The JSON log lines of a server's stderr (other lines, such as warnings, skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
