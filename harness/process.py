"""Child processes as every part of the harness starts them: in a session (a process group)
of their own, output to a file, SIGTERM when the process that started them dies; stopped with
one signal, then SIGKILL to the whole group. Free loopback ports for them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _find_prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, looked up here: a child between fork and exec must not load anything."""
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _find_prctl()


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the process that started it dies (Linux only).

    The signal follows the death of the starting thread: start processes from a thread that
    outlives them (the main thread does)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    command: Sequence[str | Path],
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    *,
    stdout_path: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """`command` in a session of its own (so that its whole group can be killed), its stderr
    appended to `log_path`, its stdout too (or to `stdout_path`); `preexec` runs in the child
    before the command (a resource limit)."""

    def before_exec() -> None:
        die_with_parent()  # one prctl call
        if preexec is not None:
            preexec()

    with contextlib.ExitStack() as files:
        log = files.enter_context(log_path.open("ab"))
        out = log if stdout_path is None else files.enter_context(stdout_path.open("ab"))
        return subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=log,
            start_new_session=True,
            preexec_fn=before_exec,
        )


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """`signum` to the process's whole group (its session leader's id is the group's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop(process: subprocess.Popen[bytes], signum: int, timeout: float) -> int | None:
    """`signum` to the process; once it has stopped, or after `timeout` seconds, SIGKILL to
    its whole group (children left behind, if any); reap it. Its exit status, or None when
    it had not stopped by itself within `timeout`."""
    if process.poll() is None:
        process.send_signal(signum)
    status = None
    with contextlib.suppress(subprocess.TimeoutExpired):
        status = process.wait(timeout)
    signal_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait(10)
    return status


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on (bound and let go at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(attempts):
        first = free_port()
        if first + count < 65536 and all(port_is_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")
