"""What native code writes to file descriptor 2, as JSON log lines.

grpc's C core writes its log lines (`E1123 18:00:00.123456 12 hpack_parser.cc:901] ...`)
straight to file descriptor 2, where they would land among the JSON lines as they are.
capture_native_stderr makes fd 2 a pipe, read by a thread of its own that writes each line
as one JSON line; original_stderr puts fd 2 back while a process is started.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import orjson

from .redact import redact_and_bound
from .timestamp import UtcTimestamp

# A native line is read up to this long before it is written out as it is.
_NATIVE_LINE_BYTES = 64 * 1024
# The level of a grpc core line, from its first letter (absl's format: E1123 18:00:00.123456).
_NATIVE_LEVELS = {"F": "critical", "E": "error", "W": "warning", "I": "info", "D": "debug"}
_LEVEL_NUMBERS = logging.getLevelNamesMapping()
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
    fd 2 is the pipe inherits it: start it inside original_stderr().
    """
    global _native
    if _native is not None:
        return _native.stream
    sys.stderr.flush()
    original = os.dup(2)
    read_end, pipe = os.pipe()
    os.dup2(pipe, 2)
    stream = open(original, "wb", closefd=False)  # noqa: SIM115 (kept open for the process)
    text = io.TextIOWrapper(stream, errors="backslashreplace", line_buffering=True)
    floor = _LEVEL_NUMBERS[level.upper()]
    reader = threading.Thread(
        target=_forward_native_lines,
        args=(read_end, original, floor, worker),
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


def _forward_native_lines(read_end: int, original: int, floor: int, worker: int | None) -> None:
    """The reader thread: each line from the pipe, as a JSON line, until the pipe closes."""
    stamp = UtcTimestamp()
    pending = b""
    while chunk := os.read(read_end, _NATIVE_LINE_BYTES):
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
    pipe would fill, and every native thread writing to it would block."""
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
