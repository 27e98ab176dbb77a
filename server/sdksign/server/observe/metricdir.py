"""PROMETHEUS_MULTIPROC_DIR: whether this process's metric values go to files (in_files),
and the folder the workers' parent makes for them (multiprocess_dir).

With several workers each worker process writes its values to files in that folder
(prometheus-client's multiprocess mode): the parent sets the variable before it starts
them, and adds their files up when /metrics is scraped (exposition.registry).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# PROMETHEUS_MULTIPROC_DIR as the operator gave it, when in_files found it was no folder
# and took it out of the environment.
_unusable: str | None = None


def in_files() -> bool:
    """Whether this process's metric values go to files: PROMETHEUS_MULTIPROC_DIR is set (by
    the parent, in a worker; or by the operator), as prometheus-client itself decides
    (values.get_value_class, which also reads the variable's old lower-case name).

    Set to what is not a folder, it is taken out of the environment first: prometheus-client
    would fail on the first value with a traceback, and warn at each gauge removed;
    multiprocess_dir makes that folder, or says in one line why it cannot.
    """
    global _unusable
    given = os.environ.get(MULTIPROC_ENV)
    if given is not None and not os.path.isdir(given):
        del os.environ[MULTIPROC_ENV]
        _unusable = given
    return MULTIPROC_ENV in os.environ or MULTIPROC_ENV.lower() in os.environ


class FolderError(Exception):
    """The workers' metrics folder cannot be made or emptied; the message is one line."""


def multiprocess_dir() -> tuple[Path, bool]:
    """The folder where the workers write their metrics, set in PROMETHEUS_MULTIPROC_DIR for
    the workers to come; and whether it is this process's own, to delete at the end.

    The operator's own PROMETHEUS_MULTIPROC_DIR, if set, made if need be, checked that a
    file can be made and removed there, and emptied of the files of earlier runs (*.db);
    else a new temporary folder. FolderError when neither can be.
    """
    given = os.environ.get(MULTIPROC_ENV) or _unusable
    try:
        if not given:
            _remove_orphans(Path(tempfile.gettempdir()))
            path = Path(tempfile.mkdtemp(prefix=f"{_OWN_PREFIX}{os.getpid()}-"))
            os.environ[MULTIPROC_ENV] = str(path)
            return path, True
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        # A file made and removed: a folder that is there but takes none (not this user's,
        # /proc/1) is refused here, not by the workers' first counts.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sdksign-probe-"):
            pass
        _lock(path, given)
        for file in path.glob("*.db"):
            file.unlink()
    except OSError as exc:
        where = f"{MULTIPROC_ENV} {given!r}" if given else tempfile.gettempdir()
        raise FolderError(
            f"cannot keep the workers' metrics in {where}: {exc.strerror or exc} "
            f"(set {MULTIPROC_ENV} to a folder this user may write)"
        ) from None
    os.environ[MULTIPROC_ENV] = str(path)
    return path, False


# The operator's folders this process uses, each with its lock's open file (held until exit).
_LOCKS: dict[Path, int] = {}


def _lock(path: Path, given: str) -> None:
    """Take `path`'s lock for the rest of this process (FolderError when another server holds
    it): two servers' workers in one folder would count into each other's files, and each
    would empty the other's at its start."""
    if path.resolve() in _LOCKS:
        return
    held = os.open(path / ".sdksign.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(held)
        raise FolderError(
            f"cannot keep the workers' metrics in {MULTIPROC_ENV} {given!r}: another sdksign "
            "server uses it (give each server a folder of its own)"
        ) from None
    _LOCKS[path.resolve()] = held


# The temporary folders of multiprocess_dir: the prefix, then the pid of the server's parent.
_OWN_PREFIX = "sdksign-metrics-"
_OWN_FOLDER = re.compile(rf"{_OWN_PREFIX}(\d+)-\w+")


def _remove_orphans(temporary: Path) -> None:
    """Delete the folders of this user's servers whose parent is gone without deleting its
    own (killed with SIGKILL): a folder of ours whose pid no longer runs, or is this
    process's own (made by an earlier run with the same pid: PID 1 in a container whose
    /tmp outlives a restart; this process makes its folder after this sweep)."""
    for folder in temporary.glob(f"{_OWN_PREFIX}*"):
        match = _OWN_FOLDER.fullmatch(folder.name)
        with contextlib.suppress(OSError):
            if match and folder.stat().st_uid == os.getuid() and _gone(int(match[1])):
                shutil.rmtree(folder)


def _gone(pid: int) -> bool:
    """Whether the server whose folder is named with `pid` has ended."""
    return pid == os.getpid() or not _runs(pid)


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def worker_gone(path: Path, pid: int) -> None:
    """A worker has stopped: its live gauges (secrets) go; its counts stay."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove_dir(path: Path) -> None:
    """Delete this process's own metrics folder (at its end)."""
    shutil.rmtree(path, ignore_errors=True)
