"""When a call has waited too long: for its request, or for its answer to leave.

RequestDeadlines ends a call whose request has not arrived REQUEST_READ_TIMEOUT after
it started (DEADLINE_EXCEEDED), and logs, counts and ends the span of each unary call
(an Answer, made by runtime.rpc when its handler returns) once gRPC has sent its last
batch, its answer and status: from the call's done callback. A client that never reads
(an HTTP/2 receive window of 0) leaves its answer waiting; such a call is logged
DEADLINE_EXCEEDED ANSWER_WRITE_TIMEOUT after its handler returned, never OK, and one
still waiting when the server's grace ends on shutdown is logged CANCELLED. One sweep a
second does both. release_memory gives back what the calls it ended held.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import time
from collections.abc import Callable
from contextvars import Context, copy_context
from typing import Any

import grpc
import structlog

from ..errors import DeadlineExceeded
from ..observe import tracing
from ..observe.context import bind
from ..observe.metrics import record_call

# The same logger as runtime.rpc's: these lines are the calls' own.
log = structlog.get_logger("sdksign.rpc")

# A request message must arrive whole this soon after its call starts; a stream that never
# sends one (or never ends it) is answered DEADLINE_EXCEEDED instead of holding memory.
REQUEST_READ_TIMEOUT = 10.0
# A unary call whose answer gRPC has not sent this long after its handler returned (its client
# does not read: an HTTP/2 receive window of 0) is logged and counted DEADLINE_EXCEEDED, not
# OK. As long as a request may take to arrive: a client gets as long to take its answer as to
# send its request. Sending an answer takes microseconds when the client reads; gRPC's
# Python server cannot end one call, so the call itself waits on in the core (for the
# client's deadline or its connection's end), among the 2,000 a process runs at once.
ANSWER_WRITE_TIMEOUT = 10.0
# How long RequestDeadlines.stopped lets gRPC run the done callbacks due once the server
# has stopped.
STOPPED_WAIT = 1.0
# How often RequestDeadlines looks for calls that waited too long for their request, or for
# their answer to leave.
SWEEP_INTERVAL = 1.0


class RequestDeadlines:
    """Ends the calls whose request has not arrived REQUEST_READ_TIMEOUT after they started,
    and logs (and counts) each unary call once gRPC has sent its answer: DEADLINE_EXCEEDED
    for one whose answer has not left ANSWER_WRITE_TIMEOUT after its handler returned.

    A sweep every second looks over the calls still reading and cancels those past
    the limit, and over the answers still waiting, instead of a timer per call:
    asyncio.timeout() around every read made every call dearer, Health/Check too
    (BENCHMARKS.md has the figures). The sweeper runs while calls are reading or answers
    waiting, and stops by itself when none is.

    An answer has left when gRPC runs the call's done callback: after its last batch
    (answer and status, one batch) completed, or failed. gRPC's Python server tells
    neither apart, so a call whose client closed its connection before taking the answer,
    within ANSWER_WRITE_TIMEOUT, is logged as its handler ended it (OK). When the server
    stops (stopping, stopped), answers still waiting once its grace is over are logged
    CANCELLED: gRPC's core then cancels their calls.
    """

    def __init__(self) -> None:
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        # The answers not sent yet, by when their handler returned (perf_counter), oldest
        # first: a dict keeps its order of insertion. At most the calls a process runs at
        # once (MAX_CONCURRENT_CALLS): each entry is one live call's.
        self._answering: dict[Answer, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # When the server's grace ends (perf_counter), once it is stopping; and, from then
        # on, set when no answer waits any more.
        self._cut: float | None = None
        self._all_sent = asyncio.Event()

    async def read(self, context: grpc.aio.ServicerContext) -> Any:
        """`context.read()`, or DeadlineExceeded once it has waited too long."""
        task = asyncio.current_task()
        assert task is not None
        if self._sweeper is None:
            self._start_sweeper()
        self._reading[task] = time.monotonic()
        try:
            return await context.read()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise DeadlineExceeded(
                f"no complete request message arrived within {REQUEST_READ_TIMEOUT:g} s"
            ) from None
        finally:
            del self._reading[task]

    def answering(self, context: grpc.aio.ServicerContext, answer: Answer) -> None:
        """Log and count `answer`'s call once gRPC has sent its answer (or given up)."""
        self._answering[answer] = time.perf_counter()
        context.add_done_callback(answer.sent)
        if self._sweeper is None:
            self._start_sweeper()

    def sent(self, answer: Answer) -> None:
        """`answer`'s call is over: logged as its handler ended it, unless it was given up
        already (logged then), or the server's grace ended first (CANCELLED)."""
        if self._answering.pop(answer, None) is None:
            return
        if self._cut is None:
            answer.end(answer.code)
            return
        if time.perf_counter() >= self._cut:
            answer.end("CANCELLED", _NOT_TAKEN_BEFORE_STOP)
        else:
            answer.end(answer.code)
        if not self._answering:
            self._all_sent.set()

    def stopping(self, grace: float | None) -> None:
        """The server stops, giving its calls `grace` seconds (None: none); then gRPC's core
        cancels those left, answers still waiting among them."""
        self._cut = time.perf_counter() + (grace or 0.0)

    async def stopped(self) -> None:
        """The server has stopped: let gRPC run the done callbacks it has due (its core may
        say it stopped before they ran), for at most STOPPED_WAIT, then log and count
        CANCELLED each answer still waiting (its callback may never run: the loop ends)."""
        if self._answering:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_sent.wait(), STOPPED_WAIT)
        waiting = list(self._answering)
        self._answering.clear()
        for answer in waiting:
            answer.end("CANCELLED", _NOT_TAKEN_BEFORE_STOP)

    def _start_sweeper(self) -> None:
        # A context of its own: the sweeper's log lines carry no call's fields.
        sweep = self._sweep()
        self._sweeper = asyncio.get_running_loop().create_task(sweep, context=Context())

    async def _sweep(self) -> None:
        ended = 0
        try:
            while self._reading or self._answering:
                await asyncio.sleep(SWEEP_INTERVAL)
                limit = time.monotonic() - REQUEST_READ_TIMEOUT
                for task, started in list(self._reading.items()):
                    if started < limit and task not in self._expired:
                        self._expired.add(task)
                        task.cancel()
                        ended += 1
                self._give_up(time.perf_counter() - ANSWER_WRITE_TIMEOUT)
        finally:
            self._sweeper = None
        if ended:
            log.warning("ended calls that never sent their request", calls=ended)
            release_memory()

    def _give_up(self, limit: float) -> None:
        """Log and count DEADLINE_EXCEEDED the answers waiting since before `limit`; their
        calls' done callbacks, later, log nothing."""
        late = []
        for answer, returned in self._answering.items():  # oldest first
            if returned >= limit:
                break
            late.append(answer)
        for answer in late:
            del self._answering[answer]
            answer.end(
                "DEADLINE_EXCEEDED",
                f"the answer was not taken by the client within {ANSWER_WRITE_TIMEOUT:g} s",
            )
        if late and self._cut is not None and not self._answering:
            self._all_sent.set()


class Answer:
    """A unary call whose handler has returned: what its log line, count and span say, kept
    until gRPC has sent its answer (RequestDeadlines.answering). Logged in the call's own
    context (its observe.context fields), which gRPC's done callback does not run in."""

    __slots__ = ("_context", "_deadlines", "_method", "_peer", "_span", "_start", "_write", "code")

    def __init__(
        self,
        deadlines: RequestDeadlines,
        method: str,
        write: Callable[..., Any],
        start: float,
        span: Any,
        code: str,
        peer: str,
    ) -> None:
        self._deadlines = deadlines
        self._method = method
        self._write = write
        self._start = start
        self._span = span
        self.code = code
        self._peer = peer
        self._context = copy_context()

    def sent(self, _context: grpc.aio.ServicerContext) -> None:
        """gRPC's done callback: the call's last batch is over."""
        self._deadlines.sent(self)

    def end(self, code: str, reason: str = "") -> None:
        """Log and count the call with `code` (and `reason`), and end its span: once."""
        self._context.run(self._end, code, reason)

    def _end(self, code: str, reason: str) -> None:
        if reason:
            bind(reason=reason)
        seconds = time.perf_counter() - self._start
        record_call(self._method, code, seconds)
        tracing.end(self._span, code)
        self._write(
            "rpc",
            method=self._method,
            peer=self._peer,
            code=code,
            duration_ms=round(seconds * 1000, 3),
        )


_NOT_TAKEN_BEFORE_STOP = "the server stopped before the client took the answer"


def release_memory() -> None:
    """Give the memory of calls that are over back to the operating system.

    Thousands of calls left open (and then ended by RequestDeadlines) leave their memory
    in the allocators' free lists: collect what only reference cycles still hold, then
    ask glibc to return free pages (malloc_trim; where there is no glibc, only the first).
    Blocks for a few milliseconds per hundred MiB, so it runs only after such calls.
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()
