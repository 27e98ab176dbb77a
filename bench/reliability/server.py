"""`sdksign serve` as `make soak` runs it: a TOML config, its own process group, its log lines."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from harness.server import ServerProcess
from harness.server import start_server as start

from .common import Soak

MEETING_KEY = "SoakMeetingKey0123456"
MEETING_B_KEY = "SoakMeetingKeyB012345"
VIDEO_KEY = "SoakVideoKey012345678"
# The environment variables that hold the apps' secrets (the config names them, never the values).
SECRET_VARIABLES = (
    "SOAK_MEETING_SECRET",
    "SOAK_MEETING_PREVIOUS_SECRET",
    "SOAK_MEETING_B_SECRET",
    "SOAK_VIDEO_SECRET",
)
# Past the drain period and the grace period, how long a stopping server may take.
STOP_MARGIN = 8.0
# The shutdown grace of every config but the drain and parent-kill scenarios'.
GRACE = 3
# The drain period of the servers whose drain the scenario does not measure: their stop is quick.
SHORT_DRAIN = 1


def new_secrets() -> dict[str, str]:
    """Fresh random secrets for this run, by the variable that carries each to the server."""
    return {name: secrets.token_urlsafe(32) for name in SECRET_VARIABLES}


def config_text(*, grace: int = GRACE, meeting_b: bool = False, clock_skew: int = 30) -> str:
    """The servers' TOML config: a meeting app (with a previous secret) and a video app;
    `meeting_b` adds a second meeting app. The drain period is given with --drain."""
    server = [f'shutdown_grace = "{grace}s"', f'clock_skew = "{clock_skew}s"', 'log_level = "info"']
    apps = [
        _app("meeting", "meeting", MEETING_KEY, "SOAK_MEETING_SECRET"),
        'previous_secret_envs = ["SOAK_MEETING_PREVIOUS_SECRET"]',
        _app("video", "video", VIDEO_KEY, "SOAK_VIDEO_SECRET"),
    ]
    if meeting_b:
        apps.append(_app("meeting-b", "meeting", MEETING_B_KEY, "SOAK_MEETING_B_SECRET"))
    anonymous = ["[anonymous]", 'roles = ["participant", "host"]', "verify = true"]
    return "\n".join(["[server]", *server, "", *apps, "", *anonymous, ""])


def _app(name: str, kind: str, sdk_key: str, secret_env: str) -> str:
    return "\n".join(
        [
            "[[apps]]",
            f'name = "{name}"',
            f'kind = "{kind}"',
            f'sdk_key = "{sdk_key}"',
            f'secret_env = "{secret_env}"',
        ]
    )


def write_config(path: Path, text: str) -> None:
    """Replace the file in one rename, so that a reload never reads half of it."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


async def start_server(
    soak: Soak,
    name: str,
    config: Path,
    workers: int,
    extra: Sequence[str] = (),
    listen: str = "127.0.0.1:0",
    env: Mapping[str, str] = {},
) -> ServerProcess:
    """Start `sdksign serve` in a process group of its own, `env` added to its environment;
    return once every worker listens. Started from this (the main) thread, waited for in
    another."""
    log_path = soak.directory(name) / f"server-{len(soak.logs)}.log"
    soak.logs.append(log_path)
    args = ["--workers", str(workers), "--config", str(config), *extra]
    environment = {**soak.secrets, **env}
    server = start(config.parent, args, environment, workers=0, listen=listen, log_path=log_path)
    try:
        await asyncio.to_thread(server.wait_listening, workers)
    except BaseException:
        server.kill()
        raise
    return server


async def wait_exit(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The process's exit status once it exits, or None if it still runs after `seconds`."""
    try:
        return await asyncio.to_thread(process.wait, seconds)
    except subprocess.TimeoutExpired:
        return None


async def stop(server: ServerProcess, seconds: float) -> int | None:
    """SIGTERM to the parent alone, as an orchestrator sends it; its exit status, or None if it
    had not stopped within `seconds` (then its whole process group is killed)."""
    return await asyncio.to_thread(server.stop, signal.SIGTERM, seconds)


@asynccontextmanager
async def serving(
    soak: Soak,
    name: str,
    config: Path,
    workers: int,
    extra: Sequence[str] = (),
    env: Mapping[str, str] = {},
) -> AsyncIterator[ServerProcess]:
    """A server for the length of the block; stopped (and its group killed) however it ends."""
    server = await start_server(soak, name, config, workers, [*drain_option(), *extra], env=env)
    try:
        yield server
    finally:
        await stop(server, SHORT_DRAIN + GRACE + STOP_MARGIN)


def scenario_config(soak: Soak, name: str, grace: int = GRACE) -> Path:
    """The config file of scenario `name`."""
    path = soak.directory(name) / "sdksign.toml"
    write_config(path, config_text(grace=grace))
    return path


def drain_option(seconds: int = SHORT_DRAIN) -> list[str]:
    """--drain SECONDS."""
    return ["--drain", str(seconds)]
