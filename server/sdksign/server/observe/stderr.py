"""What native code writes to file descriptor 2, as JSON log lines.

grpc's C core writes its log lines (`E1123 18:00:00.123456 12 hpack_parser.cc:901] ...`)
straight to file descriptor 2, where they would land among the JSON lines as they are.
capture_native_stderr makes fd 2 a pipe, read by a thread of its own that writes each line
as one JSON line; original_stderr puts fd 2 back while a process is started.

The pipe never makes a writer wait. The core writes from whatever thread runs it, the event
loop's among them, holding the GIL; the reading thread needs the GIL to turn a line into JSON.
A blocking write into a full pipe would wait for a reader that waits for the writer: the
process wedged for good (GRPC_TRACE=all did it in two calls). So the pipe is made large
and its write end non-blocking: when the reader falls behind, the core's writes fail
(EAGAIN) and their lines are dropped, never the call. The reader sees when it was full
(lines may have been dropped then), counts it (sdksign_native_log_overflows_total) and
says so in a line, at most once every OVERFLOW_NOTICE_INTERVAL seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import orjson

from . import metrics
from .redact import redact_and_bound
from .timestamp import UtcTimestamp

# A native line is read up to this long before it is written out as it is.
_NATIVE_LINE_BYTES = 64 * 1024
# The level of a grpc core line, from its first letter (absl's format: E1123 18:00:00.123456).
_NATIVE_LEVELS = {"F": "critical", "E": "error", "W": "warning", "I": "info", "D": "debug"}
_LEVEL_NUMBERS = logging.getLevelNamesMapping()
# The pipe's size asked for (Linux's F_SETPIPE_SZ; an unprivileged process may ask up to
# /proc/sys/fs/pipe-max-size, 1 MiB by default): bursts of trace lines fit while the reader
# waits for the GIL.
PIPE_BYTES = 1024 * 1024
# A pipe with less room than this left was full, for the writers' purposes: a trace line
# is a few hundred bytes, and one that did not fit was dropped.
_FULL_MARGIN = 4096
# How often, at most, a line says that native lines were dropped.
OVERFLOW_NOTICE_INTERVAL = 10.0
# With GRPC_TRACE set, the core prints request headers, a caller's bearer token among them
# ("HTTP:1:HDR:SVR: authorization: Bearer ..."): the rest of such a line is dropped.
_CREDENTIAL_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization|cookie)\s*:.*")


@dataclass(frozen=True)
class _NativeCapture:
    original: int  # a copy of the original stderr: every JSON line goes there
    pipe: int  # the pipe's write end, where file descriptor 2 points
    stream: BinaryIO  # the original stderr as a stream, for the JSON writer
    text: TextIO  # sys.stderr, now also on the original stderr
    reader: threading.Thread


_native: _NativeCapture | None = None


def capture_native_stderr(level: str = "info", worker: int | None = None) -> BinaryIO:
    """Send what native code writes to file descriptor 2 through the JSON log; return the
    original stderr as a stream, for the JSON writer. Call it before grpc makes its first
    server or channel.

    Here fd 2 becomes a pipe, and a daemon thread writes each line read from it as one
    JSON line: event "grpc core", the level from its first letter (E error, W warning,
    I info, D debug, F critical; others info), dropped below the configured `level`, and
    `text`, redacted and cut like any other field (so each line is at most a few hundred
    bytes, one os.write, atomic on a pipe, never mixed with another process's lines).
    Python's own sys.stderr moves to the original stderr: what the command prints there
    (its warnings, a traceback) reaches it as before.

    Native lines written just before the process dies (an abort) can be lost with the
    thread; at a normal exit the pipe is read to its end first. A process started while
    fd 2 is the pipe inherits it, non-blocking (a write to a full pipe fails): start it
    inside original_stderr().
    """
    global _native
    if _native is not None:
        return _native.stream
    sys.stderr.flush()
    original = os.dup(2)
    read_end, pipe = os.pipe()
    capacity = _enlarge(pipe)
    os.set_blocking(pipe, False)  # never wait for the reader (the module's docstring says why)
    os.dup2(pipe, 2)
    stream = open(original, "wb", closefd=False)  # noqa: SIM115 (kept open for the process)
    text = io.TextIOWrapper(stream, errors="backslashreplace", line_buffering=True)
    floor = _LEVEL_NUMBERS[level.upper()]
    reader = threading.Thread(
        target=_forward_native_lines,
        args=(read_end, original, floor, worker, capacity),
        name="sdksign-native-stderr",
        daemon=True,
    )
    reader.start()
    _native = _NativeCapture(original, pipe, stream, text, reader)
    sys.stderr = text
    atexit.register(_stop_native_capture)
    return stream


@contextlib.contextmanager
def original_stderr() -> Iterator[None]:
    """File descriptor 2 back on the original stderr while inside: a process started here
    inherits the real stderr, not this process's pipe (and may capture its own). Native
    lines written meanwhile by other threads go out as they are. Without a capture, nothing."""
    capture = _native
    if capture is None:
        yield
        return
    os.dup2(capture.original, 2)
    try:
        yield
    finally:
        os.dup2(capture.pipe, 2)


def _stop_native_capture() -> None:
    """At exit: fd 2 back on the original stderr, and the pipe read to its end."""
    capture = _native
    if capture is None:
        return
    os.dup2(capture.original, 2)
    os.close(capture.pipe)
    capture.reader.join(timeout=1.0)


def _enlarge(pipe: int) -> int:
    """Ask for a PIPE_BYTES pipe; return its size as the kernel set it."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # over the user's limit: the default size stays
            fcntl.fcntl(pipe, set_size, PIPE_BYTES)
    if get_size is None:
        return 64 * 1024  # Linux's default, and what the others give at least
    return int(fcntl.fcntl(pipe, get_size))


class _Overflows:
    """How often the reader found the pipe full, said in a line now and then, and counted."""

    def __init__(self, capacity: int, worker: int | None) -> None:
        self._full = max(capacity - _FULL_MARGIN, 1)
        self._worker = worker
        self._unsaid = 0
        self._said_at = -OVERFLOW_NOTICE_INTERVAL

    def look(self, read: int, original: int, stamp: UtcTimestamp) -> None:
        """`read` bytes came in one read of the whole pipe: as many as it holds means that it
        was full, and that lines written then were dropped."""
        if read < self._full:
            return
        self._unsaid += 1
        with contextlib.suppress(Exception):  # uncounted rather than a reader gone
            metrics.native_log_overflow()
        now = time.monotonic()
        if now - self._said_at < OVERFLOW_NOTICE_INTERVAL:
            return
        self._said_at = now
        event: dict[str, Any] = {"event": "grpc core lines dropped: the pipe was full"}
        if self._worker is not None:
            event["worker"] = self._worker
        event["times_full"] = self._unsaid
        event["level"] = "warning"
        with contextlib.suppress(OSError):
            os.write(original, orjson.dumps(stamp(None, "warning", event)) + b"\n")
        self._unsaid = 0


def _forward_native_lines(
    read_end: int, original: int, floor: int, worker: int | None, capacity: int
) -> None:
    """The reader thread: each line from the pipe, as a JSON line, until the pipe closes.
    Each read takes all the pipe holds, so that a full pipe is seen (_Overflows)."""
    stamp = UtcTimestamp()
    overflows = _Overflows(capacity, worker)
    pending = b""
    while chunk := os.read(read_end, capacity):
        overflows.look(len(chunk), original, stamp)
        *lines, pending = (pending + chunk).split(b"\n")
        if len(pending) >= _NATIVE_LINE_BYTES:
            lines.append(pending)
            pending = b""
        for line in lines:
            _write_native_line(line, original, floor, worker, stamp)
    if pending:
        _write_native_line(pending, original, floor, worker, stamp)
    os.close(read_end)


def _write_native_line(
    line: bytes, original: int, floor: int, worker: int | None, stamp: UtcTimestamp
) -> None:
    """One native line as a JSON line. Never raises: if this thread stopped reading, the
    pipe would fill, and every native line after would be dropped."""
    try:
        _write_json_line(line, original, floor, worker, stamp)
    except Exception as exc:  # a closed stderr, or a bug: the line is lost, not the thread
        with contextlib.suppress(OSError):
            os.write(original, f"sdksign: a native stderr line was lost: {exc!r}\n".encode())


def _write_json_line(
    line: bytes, original: int, floor: int, worker: int | None, stamp: UtcTimestamp
) -> None:
    text = _CREDENTIAL_HEADER.sub(r"\1: <redacted>", line.decode("utf-8", "replace").rstrip("\r"))
    level = _NATIVE_LEVELS.get(text[:1], "info")
    if not text.strip() or _LEVEL_NUMBERS[level.upper()] < floor:
        return
    event: MutableMapping[str, Any] = {"event": "grpc core", "text": text}
    if worker is not None:
        event["worker"] = worker
    event = redact_and_bound(None, level, event)
    event["level"] = level
    os.write(original, orjson.dumps(stamp(None, level, event)) + b"\n")
