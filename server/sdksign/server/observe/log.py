"""structlog, configured once at start-up: JSON lines on stderr, context bound per RPC.

Each RPC gets one dict of log fields (start_call); the servicer adds to it with
bind(), and every line logged during the call carries them (merge_call_fields),
the audit line at its end among them. On every line a whole token is replaced by
its fingerprint and no field is longer than MAX_FIELD_CHARS (redact_and_bound);
what grpc's C core writes to stderr comes out as JSON lines too
(capture_native_stderr).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import orjson
import structlog

from ..zoom.jwt import b64decode_lenient, fingerprint

# A string value longer than this is cut to it on the log line, with a marker; a list keeps
# this many items, its strings cut the same way. Request fields (app, meeting, a refusal's
# reason) are logged as they were sent: this keeps a line short whatever was sent.
MAX_FIELD_CHARS = 256
MAX_FIELD_ITEMS = 16
# A traceback is longer, and comes from the code.
MAX_EXCEPTION_CHARS = 8192


def redact_and_bound(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: in every string value (and every list's strings), first each whole token
    is replaced by its fingerprint, then the string is cut to MAX_FIELD_CHARS; a list is cut
    to MAX_FIELD_ITEMS. A token that the cut goes through was already replaced whole.

    A token is three runs of base64 characters (url-safe or standard, padded or not)
    joined by dots, whose first run decodes to text that starts like a JSON object
    (JSON white space, "{", then '"', white space or "}"), whatever its first characters
    are: `eyJ` for `{"`, `eyAi` for `{ "alg"`, `IHsi` for ` {"`.

    One pass over the line, as cheap as can be: a string without a dot, as most are,
    costs one `in` and one len(); a dotted one seen before without a token, one set lookup.
    And bounded: past what the cut keeps, nothing is looked at.
    """
    for key, value in event.items():
        kind = value.__class__  # the usual cases first, tested faster than by isinstance
        if kind is str:
            if ("." in value and value not in _NO_TOKEN) or len(value) > MAX_FIELD_CHARS:
                event[key] = _cleaned(value, _limit(key))
        elif kind in _PLAIN:
            continue
        elif isinstance(value, str):
            event[key] = _cleaned(value, _limit(key))
        elif isinstance(value, list | tuple):
            event[key] = _cleaned_items(value)
    return event


# Values with nothing in them to redact or cut.
_PLAIN = frozenset({int, float, bool, type(None)})


def _limit(key: str) -> int:
    return MAX_EXCEPTION_CHARS if key == "exception" else MAX_FIELD_CHARS


def _cleaned(text: str, limit: int) -> str:
    """`text` with its tokens replaced, then cut to `limit` characters."""
    text = _redacted(text, limit)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def _cleaned_items(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    kept = [
        _cleaned(item, MAX_FIELD_CHARS) if isinstance(item, str) else item
        for item in items[:MAX_FIELD_ITEMS]
    ]
    if len(items) > MAX_FIELD_ITEMS:
        kept.append(f"…(+{len(items) - MAX_FIELD_ITEMS} items)")
    return kept


# A run of base64 characters (either alphabet, padded or not), a dot, another run, a dot, a
# third run: what any JWT looks like in text. The first run starts where no base64 character
# goes before it; possessive quantifiers keep each try linear in the text's length.
_B64 = r"[A-Za-z0-9_\-+/]"
_JWT_SHAPE = re.compile(rf"(?<!{_B64})({_B64}++)=*+\.{_B64}*+=*+\.{_B64}*+=*+")
# Base64 of JSON white space (" ", tab, newline, return) starts with I, C or D; of "{" then
# '"' or white space, with ey or ew; of "{}", with e3. A token may be glued to the end of
# other base64 characters ("Bearer" + token, "/verify/" + token): the first few of these
# near the start of the run are tried.
_HEADER_START = re.compile(r"[ICD]|e[wy3]")
_HEADER_TRIES = 4
_GLUE = 64
# How much of a header is decoded to see whether it starts like a JSON object: 48 bytes.
_WINDOW = 64
_JSON_SPACE = b" \t\n\r"
# Strings already searched and found to hold no token (the method, the peers of open
# connections): most audit lines look each of their dotted values up here, and no further.
_NO_TOKEN: set[str] = set()
_NO_TOKEN_SIZE = 1024
_NO_TOKEN_LENGTH = 128


def _redacted(text: str, keep: int) -> str:
    """`text` with each whole token in it replaced by `<token FINGERPRINT>`, up to `keep`
    characters of the result: what comes after is left as it is, for the caller to cut."""
    if "." not in text or text in _NO_TOKEN:
        return text
    pieces: list[str] = []
    end = length = 0  # in text, and in the result so far
    match = _JWT_SHAPE.search(text)
    while match and length + match.start() - end < keep:
        start = _header_start(match[1])
        if start is None:  # the next try starts at the second run, which may be a header
            match = _JWT_SHAPE.search(text, match.end(1))
            continue
        pieces += (text[end : match.start() + start], f"<token {fingerprint(match[0][start:])}>")
        length += len(pieces[-2]) + len(pieces[-1])
        end = match.end()
        match = _JWT_SHAPE.search(text, end)
    if match is None and not pieces and len(text) <= _NO_TOKEN_LENGTH:
        _remember_no_token(text)
    pieces.append(text[end:])
    return "".join(pieces)


def _remember_no_token(text: str) -> None:
    if len(_NO_TOKEN) >= _NO_TOKEN_SIZE:
        _NO_TOKEN.clear()
    _NO_TOKEN.add(text)


def _header_start(run: str) -> int | None:
    """Where in `run` (base64 characters) a JWT header begins, if near its start."""
    for tries, candidate in enumerate(_HEADER_START.finditer(run, 0, _GLUE + 2)):
        if tries == _HEADER_TRIES:
            break
        if _starts_like_json_object(run[candidate.start() : candidate.start() + _WINDOW]):
            return candidate.start()
    return None


def _starts_like_json_object(segment: str) -> bool:
    """Whether `segment` (base64) decodes to JSON white space, "{", then '"' or "}"."""
    try:  # a length of 4n + 1 is no base64: its last character is left out
        text = b64decode_lenient(segment[: len(segment) - (len(segment) % 4 == 1)])
    except ValueError:
        return False
    text = text.lstrip(_JSON_SPACE)
    return text[:1] == b"{" and text[1:].lstrip(_JSON_SPACE)[:1] in (b'"', b"}")


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


def call_fields() -> dict[str, Any]:
    """The running RPC's log fields bound so far (outside an RPC, none): to read, not change."""
    return _CALL_FIELDS.get() or {}


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


# --- what native code writes to file descriptor 2 ---------------------------------------------

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
    original stderr as a stream, for the JSON writer (configure_logging(native_stderr=True)
    does both). Call it before grpc makes its first server or channel.

    grpc's C core writes its log lines (`E1123 18:00:00.123456 12 hpack_parser.cc:901] ...`)
    straight to file descriptor 2, where they would land among the JSON lines as they are.
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
