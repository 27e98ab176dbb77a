"""structlog, configured once at start-up: JSON lines on stderr, context bound per RPC.

Each RPC gets one dict of log fields (start_call); the servicer adds to it with
bind(), and every line logged during the call carries them (merge_call_fields),
the audit line at its end among them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, BinaryIO

import orjson
import structlog

from ._tokens import fingerprint

# Three base64url segments starting like a JSON header: what a JWT looks like in text.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def redact_tokens(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: a whole token that slipped into a string value is replaced by its fingerprint."""
    for key, value in event.items():
        if isinstance(value, str) and "eyJ" in value:
            event[key] = _JWT.sub(lambda m: f"<token {fingerprint(m.group())}>", value)
    return event


# The running RPC's log fields. grpc.aio runs each call in a task of its own, with a copy of
# the server's context, so what one call sets here never reaches another.
_CALL_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("sdksign_call_fields", default=None)


def start_call() -> None:
    """Give the running RPC an empty set of log fields (call it first thing in its task)."""
    _CALL_FIELDS.set({})


def bind(**fields: Any) -> None:
    """Add `fields` to every later log line of the running RPC; outside an RPC, nothing."""
    current = _CALL_FIELDS.get()
    if current is not None:
        current.update(fields)


def merge_call_fields(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: the running RPC's fields, under the line's own (the line wins a clash)."""
    fields = _CALL_FIELDS.get()
    return {**fields, **event} if fields else event


class UtcTimestamp:
    """Processor: `timestamp` in ISO 8601 UTC with microseconds, as TimeStamper(fmt="iso",
    utc=True) writes it, at a quarter of the cost: the date and time up to the second
    are formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def configure_logging(
    level: str = "info", stream: BinaryIO | None = None, worker: int | None = None
) -> None:
    """Configure structlog for the whole process; call once, before serving.

    A worker process (`serve --workers`) passes its index, and every line names it.
    """
    writer = LineWriter(stream or sys.stderr.buffer)
    structlog.configure(
        processors=[
            merge_call_fields,
            *([_name_worker(worker)] if worker is not None else []),
            structlog.processors.add_log_level,
            UtcTimestamp(),
            structlog.processors.format_exc_info,
            redact_tokens,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_args: writer,
        # Loggers are looked up when a handler is wrapped (at start-up), not per call; not
        # caching them lets tests configure logging again.
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
        self._stream.write(chunk)
        self._stream.flush()

    debug = info = warning = error = critical = exception = msg


def _name_worker(worker: int) -> structlog.types.Processor:
    """Processor: add `worker` to every line of a worker process."""

    def name_worker(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event["worker"] = worker
        return event

    return name_worker
