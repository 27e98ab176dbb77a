"""structlog, configured once at start-up (configure_logging): JSON lines on stderr.

Every line carries the running RPC's fields (context), has its tokens replaced and its
fields bounded (redact), and is stamped (timestamp); LineWriter writes the lines of one
event-loop iteration together. With native_stderr, what grpc's C core writes to file
descriptor 2 comes out as JSON lines too (stderr).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import orjson
import structlog

from .context import merge_call_fields
from .redact import redact_and_bound
from .stderr import capture_native_stderr
from .timestamp import UtcTimestamp


def configure_logging(
    level: str = "info",
    stream: BinaryIO | None = None,
    worker: int | None = None,
    native_stderr: bool = False,
) -> None:
    """Configure structlog for the whole process; call once, before serving.

    A worker process (`serve --workers`) passes its index, and every line names it.
    With `native_stderr`, what native code (grpc's C core) writes to file descriptor 2
    comes out as JSON lines too (capture_native_stderr), and the JSON lines go to the
    original stderr.
    """
    if native_stderr:
        stream = capture_native_stderr(level, worker)
    writer = LineWriter(stream or sys.stderr.buffer)
    structlog.configure(
        processors=[
            merge_call_fields,
            *([_name_worker(worker)] if worker is not None else []),
            structlog.processors.format_exc_info,
            # The fields written here, before level and timestamp (never a token, never long).
            redact_and_bound,
            structlog.processors.add_log_level,
            UtcTimestamp(),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_args: writer,
        # Not cached, so that logging can be configured again (tests do); a logger bound
        # once and kept is looked up once.
        cache_logger_on_first_use=False,
    )
    atexit.register(writer.flush)


# POSIX's smallest PIPE_BUF on Linux: a write this size or smaller to a pipe is atomic.
ATOMIC_WRITE = 4096


class LineWriter:
    """The structlog logger: JSON lines, written together once per event-loop iteration.

    Under load many RPCs end in one iteration of the event loop; their lines go
    out in one write instead of one write (and one release of the GIL) each.
    Outside an event loop, and whenever the loop gets to it, lines are written at
    once: nothing waits for a timer.

    Each write holds whole lines and at most PIPE_BUF bytes (unless one line is
    longer): workers share one stderr, and the kernel keeps such a write to a pipe
    in one piece, so lines of different workers never mix.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        # Lines that stderr could not take.
        self.lost_lines = 0

    def msg(self, line: bytes) -> None:
        self._pending.append(line)
        if len(self._pending) > 1:
            return  # a flush is already due
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop: write now
            self.flush()

    def flush(self) -> None:
        """Write every pending line."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        chunk = bytearray()
        for line in lines:
            if chunk and len(chunk) + len(line) + 1 > ATOMIC_WRITE:
                self._write(chunk)
                chunk = bytearray()
            chunk += line
            chunk += b"\n"
        self._write(chunk)

    def _write(self, chunk: bytearray) -> None:
        """Write `chunk`; when stderr cannot take it (its reader is gone: EPIPE), the lines
        are lost and nothing else is: an exception here would stop whatever logged (a call,
        a signal handler forwarding SIGTERM, the thread that watches the parent)."""
        try:
            self._stream.write(chunk)
            self._stream.flush()
        except OSError:
            self.lost_lines += chunk.count(b"\n")

    debug = info = warning = error = critical = exception = msg


def _name_worker(worker: int) -> structlog.types.Processor:
    """Processor: add `worker` to every line of a worker process."""

    def name_worker(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event["worker"] = worker
        return event

    return name_worker
