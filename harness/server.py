"""`sdksign serve` as its own process: started from a checkout's code on a loopback port, waited
for until its workers listen, its JSON log lines read back, and stopped.

    server = start_server(folder, ["--workers", "2"], {"ZOOM_MEETING_SDK_KEY": ...}, workers=2)
    try:
        ...  # server.target, server.events("rpc"), server.workers()
    finally:
        server.stop()

Every server runs in a process group of its own: stop() and kill() end its workers too, and
a server that does not start is killed whole before ServerError is raised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT
from harness.process import signal_group, spawn
from harness.process import stop as stop_process

# How long a server may take to listen (every worker), and to stop after SIGTERM (the
# server's drain and grace periods, plus a margin).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0
# Any free port for the admin listener (its default port is taken by the first server).
ADMIN_ANY_PORT = ("--admin-listen", "127.0.0.1:0")


class ServerError(RuntimeError):
    """A `sdksign serve` did not start; the message says how it ended and what it logged last."""


def server_env(
    extra: Mapping[str, str] = {}, *, checkout: Path = ROOT, inherit: bool = True
) -> dict[str, str]:
    """The environment of `sdksign serve` from `checkout`'s code (its client/ and server/ on
    PYTHONPATH), and `extra`: with `inherit`, this one without any SDKSIGN_* variable (the
    command line says everything); else PATH alone."""
    if inherit:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SDKSIGN_")}
    else:
        base = {"PATH": os.environ["PATH"]}
    pythonpath = os.pathsep.join(str(checkout / part) for part in ("client", "server"))
    return {**base, "PYTHONPATH": pythonpath, **extra}


def has_admin_listener(checkout: Path) -> bool:
    """Whether `checkout`'s server has the admin listener (--admin-listen): older commits,
    which bench/compare.py runs, do not; it was server/sdksign/server/_admin.py before the
    server's modules moved into folders."""
    server = checkout / "server" / "sdksign" / "server"
    return (server / "observe" / "admin.py").exists() or (server / "_admin.py").exists()


@dataclass
class ServerProcess:
    """A running `sdksign serve`: its parent process, the file its log goes to, the address
    its workers listen on."""

    process: subprocess.Popen[bytes]
    log_path: Path
    target: str = ""

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """The complete JSON lines logged so far (other lines, such as warnings, skipped)."""
        found = []
        for line in self.logs().splitlines(keepends=True):
            if line.startswith("{") and line.endswith("\n"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON lines of `event`."""
        return [line for line in self.lines() if line.get("event") == event]

    def workers(self) -> dict[int, int]:
        """Each worker's index and pid, from its latest `listening` line."""
        return {int(line.get("worker", 0)): int(line["pid"]) for line in self.events("listening")}

    def rpc_codes(self, method: str | None = None, after: int = 0) -> Counter[str]:
        """The codes of the RPCs logged (of `method`, from the `after`th rpc line on)."""
        lines = [line for line in self.events("rpc") if method in (None, line.get("method"))]
        return Counter(str(line.get("code")) for line in lines[after:])

    @property
    def pids(self) -> list[int]:
        """The parent, then every process that has logged `listening` (once each)."""
        listening = (int(line["pid"]) for line in self.events("listening"))
        return list(dict.fromkeys([self.process.pid, *listening]))

    def wait_for_events(self, event: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until the log holds `count` lines of `event` (a worker's `listening` after a
        restart, a reload's line). AssertionError with the log if the server exits first or
        it does not come within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.events(event)) < count:
            # Once the server has exited its log is whole: waiting longer cannot help.
            exited = self.process.poll() is not None and len(self.events(event)) < count
            late = time.monotonic() > deadline
            assert not (exited or late), f"{count} x {event!r} not logged:\n{self.logs()}"
            time.sleep(0.05)

    def wait_listening(self, workers: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Until `workers` `listening` lines are logged (the first: the port takes
        connections); `target` is then their address. ServerError if the server exits
        first or does not get there within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(listening := self.events("listening")) < workers:
            last = " / ".join(line[:300] for line in self.logs().strip().splitlines()[-3:])
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.log_path.name}: exit status {self.process.returncode}: {last}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.log_path.name}: not listening after {timeout:.0f} s: {last}"
                )
            time.sleep(0.05)
        if listening:
            self.target = str(listening[0]["address"])

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """`signum` to the parent alone, as an orchestrator sends it; SIGKILL to whatever is
        left of its group once it has stopped or after `timeout`. Its exit status, or None if
        it had not stopped by itself."""
        return stop_process(self.process, signum, timeout)

    def kill(self) -> None:
        """SIGKILL to the parent and its workers at once (its whole group), as a crash."""
        signal_group(self.process, signal.SIGKILL)
        self.process.wait(10)


def start_server(
    folder: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] = {},
    *,
    workers: int = 1,
    listen: str = "127.0.0.1:0",
    checkout: Path = ROOT,
    inherit_env: bool = True,
    log_path: Path | None = None,
    stdout_path: Path | None = None,
    timeout: float = START_TIMEOUT,
    preexec: Callable[[], None] | None = None,
) -> ServerProcess:
    """`python -m sdksign.server serve --listen LISTEN ARGS`, from `checkout`'s code, run in
    `folder` with server_env(env); return once `workers` workers listen (0: at once).

    The admin listener takes any free port unless `args` name one. Its stderr goes to
    `log_path` (default: folder/server.stderr), its stdout there too unless `stdout_path`
    is given; both files are emptied first. `preexec` runs in the child before the server
    (a resource limit). A server that does not start is killed, group and all, and
    ServerError says why."""
    command = [sys.executable, "-m", "sdksign.server", "serve", "--listen", listen, *args]
    if "--admin-listen" not in args and has_admin_listener(checkout):
        command += ADMIN_ANY_PORT
    log_path = log_path or folder / "server.stderr"
    for path in (log_path, stdout_path):
        if path is not None:
            path.write_bytes(b"")
    environment = server_env(env, checkout=checkout, inherit=inherit_env)
    process = spawn(
        command, log_path, environment, folder, stdout_path=stdout_path, preexec=preexec
    )
    server = ServerProcess(process, log_path)
    try:
        server.wait_listening(workers, timeout)
    except BaseException:
        server.kill()
        raise
    return server
