"""The workers' files of metric values, with their disk space taken before they are written.

prometheus-client's multiprocess mode keeps each process's values in a file it makes with
truncate (a sparse file: no blocks yet) and writes through mmap. On a full filesystem (a
pod's /tmp, a memory emptyDir at its size limit) the first write to a page without a block
is a SIGBUS, which kills the worker: no `except` can catch it. ReservedFile asks for the
blocks first (posix_fallocate), so that a full filesystem is an OSError instead, and then
goes on in the process's own memory: the worker keeps serving, its values from then on
are not shown on /metrics, and the log says so once (report).

set_mode puts it in prometheus-client (values.MmapedDict), before any value is made.
"""

from __future__ import annotations

import mmap
import os
import struct

import structlog
from prometheus_client import values as prometheus_values
from prometheus_client.mmap_dict import MmapedDict

log = structlog.get_logger("sdksign")

# The size of a new file (prometheus-client's own first size), doubled as it fills.
INITIAL_SIZE = 1 << 16
# What one value adds to a file at most, beyond its key: its length (4 bytes), up to 8 bytes
# of padding, then two doubles (the value and a timestamp).
_ENTRY_OVERHEAD = 4 + 8 + 16
_USED = struct.Struct("i")  # the file's first field: how many bytes are in use


def _reserve(filename: str, size: int) -> None:
    """Blocks on disk for the first `size` bytes of `filename` (made if need be), or more if it
    is longer; OSError when the filesystem has no room. On a descriptor of its own, opened
    without O_APPEND: glibc's fallocate, where the filesystem has none (NFS), refuses those.
    """
    descriptor = os.open(filename, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.posix_fallocate(descriptor, 0, max(size, os.fstat(descriptor).st_size))
    finally:
        os.close(descriptor)


def set_mode(in_files: bool) -> None:
    """prometheus-client's mode for this process, set before its first value is made:
    `in_files`, each value written to this process's files (ReservedFile), with the process
    id read once; else kept in memory. prometheus-client chose from the environment as it
    was imported, which may have changed since.

    The file-backed value asks for the process id before every write, to notice a fork: a
    system call each time. With `in_files`, call it in a process that will not fork (a
    spawned worker): its id read now stays its id.
    """
    if in_files:
        pid = os.getpid()
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
        prometheus_values.MmapedDict = ReservedFile  # type: ignore[attr-defined]
    elif getattr(prometheus_values.ValueClass, "_multiprocess", False):
        prometheus_values.ValueClass = prometheus_values.MutexValue


# The files gone to memory, not yet logged: those made before the log is set up, until the
# process calls report (a process whose values nobody reads need never call it).
_said: list[dict[str, str]] = []
_reporting = False


def report() -> None:
    """Log the files gone to memory so far, and each one from now on as it goes."""
    global _reporting
    _reporting = True
    while _said:
        log.error(
            "metrics file cannot grow: this worker's values from now on are not shown",
            **_said.pop(0),
        )


class ReservedFile(MmapedDict):
    """prometheus-client's MmapedDict whose pages exist on disk before they are written; in
    memory (`in_memory`) once the disk cannot give them."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        self.in_memory = False
        if read_mode:  # the collector's side: reads only
            super().__init__(filename, read_mode)  # type: ignore[no-untyped-call]
            return
        try:
            _reserve(filename, INITIAL_SIZE)
            super().__init__(filename)  # type: ignore[no-untyped-call]
        except OSError as error:
            self._f = getattr(self, "_f", None)  # type: ignore[assignment]
            self._positions: dict[str, int] = {}
            self._used = 0
            self._to_memory(filename, error, INITIAL_SIZE)

    def _init_value(self, key: str) -> None:
        """A place for `key`'s value, the file grown first where it has to."""
        needed = self._used + len(key.encode()) + _ENTRY_OVERHEAD
        if needed > self._capacity:
            capacity = self._capacity
            while needed > capacity:
                capacity *= 2  # as prometheus-client grows it: it then finds the size it wants
            if self.in_memory:
                self._to_memory(self._fname, None, capacity)
            else:
                try:
                    _reserve(self._fname, capacity)
                except OSError as error:
                    self._to_memory(self._fname, error, capacity)
        super()._init_value(key)  # type: ignore[no-untyped-call]

    def _to_memory(self, filename: str, error: OSError | None, capacity: int) -> None:
        """Go on in this process's memory, `capacity` bytes, with what was written so far."""
        memory = mmap.mmap(-1, capacity)
        if self._used:
            memory[: self._used] = self._m[: self._used]
        else:
            self._used = 8
            memory[:4] = _USED.pack(self._used)
        if self._f is not None:  # the file keeps what it had; nothing is written there again
            self._f.close()
            self._f = None  # type: ignore[assignment]
        if error is not None:
            _said.append(
                {
                    "file": os.path.basename(filename),
                    "folder": os.path.dirname(filename),
                    "error": error.strerror or str(error),
                }
            )
            if _reporting:
                report()
        self._fname = filename
        self._m = memory
        self._capacity = capacity
        self.in_memory = True
