"""The one thing every RPC shares: its request read and parsed, a log line, and errors
turned into gRPC statuses.

Each handler is wrapped once, when it is registered (add_service), and gets its
request as bytes: the wrapper reads it (RequestDeadlines ends a call whose request
never arrives) and parses it, so that a bad body is INVALID_ARGUMENT, not UNKNOWN. A
servicer raises RequestError (or returns); the wrapper aborts with the right code
and a google.rpc.Status with details (BadRequest, ErrorInfo, RetryInfo,
PreconditionFailure), maps anything unexpected to INTERNAL (never UNKNOWN), and
writes one log line, the audit event, with the method, the peer, the status code,
the duration and whatever the servicer bound with observe.context.bind (caller, app,
role, meeting, ttl, token fingerprint, and a refusal's reason and rule).

That line, the call's count and the end of its span wait until gRPC has sent the
call's last batch (its answer and status): a client that never reads (an HTTP/2
receive window of 0) leaves its answer waiting, and such a call is logged
DEADLINE_EXCEEDED ANSWER_WRITE_TIMEOUT after its handler returned, never OK
(RequestDeadlines, _Answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import Context, copy_context
from typing import Any

import grpc
import structlog
from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import (
    MAX_MESSAGE,
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RequestError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    bounded,
    shorten,
)
from ..observe import tracing
from ..observe.context import bind, start_call
from ..observe.metrics import call_started, method_served, record_call

log = structlog.get_logger("sdksign.rpc")


def status_for(error: RequestError) -> grpc.Status:
    """The gRPC status (with google.rpc details) that tells the caller what to change."""
    status = status_pb2.Status(
        code=code_pb2.Code.Value(error.status), message=shorten(error.message, MAX_MESSAGE)
    )
    for detail in _details(error):
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def _details(error: RequestError) -> list[Message]:
    """google.rpc details for `error`: field violations, who was refused and why, or when to retry."""
    if error.violations:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in bounded(error.violations)
                ]
            )
        ]
    if isinstance(error, Unauthenticated | PermissionDenied):
        return [
            error_details_pb2.ErrorInfo(
                reason=f"{error.rule.upper()}_NOT_ALLOWED"
                if isinstance(error, PermissionDenied) or error.rule != "credentials"
                else "CREDENTIALS_REQUIRED_OR_INVALID",
                domain=ERROR_DOMAIN,
                metadata={"rule": error.rule},
            )
        ]
    if isinstance(error, ResourceExhausted):
        return _retry_details(error)
    if isinstance(error, DeadlineExceeded):
        return [error_details_pb2.ErrorInfo(reason="REQUEST_INCOMPLETE", domain=ERROR_DOMAIN)]
    if isinstance(error, NotFound):
        return [
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata={"subject": error.subject}
            )
        ]
    if isinstance(error, Unavailable):
        return [error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)]
    return [
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="CONFIGURATION", subject="apps", description=error.message
                )
            ]
        )
    ]


def _retry_details(error: ResourceExhausted) -> list[Message]:
    """When to retry, and the quota spent (QuotaFailure) or, when the limit could not be
    checked, why (ErrorInfo)."""
    delay = duration_pb2.Duration()
    # At most a day (the smallest rate's wait): a Duration cannot hold infinity.
    delay.FromNanoseconds(int(min(error.retry_after, 86400.0) * 1e9))
    if error.reason:
        why: Message = error_details_pb2.ErrorInfo(
            reason=error.reason,
            domain=ERROR_DOMAIN,
            metadata={"caller": error.subject} if error.subject else {},
        )
    else:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"caller:{error.subject}", description=error.message
        )
        why = error_details_pb2.QuotaFailure(violations=[violation])
    return [error_details_pb2.RetryInfo(retry_delay=delay), why]


# ErrorInfo's domain: the service's own name.
ERROR_DOMAIN = "sdksign"


# Health checks come every few seconds from every load balancer and kubelet: logged at debug
# level only, and given no span (metrics still count them).
QUIET_PREFIX = "/grpc.health.v1.Health/"


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


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    service: ServiceDescriptor,
    deadlines: RequestDeadlines,
) -> None:
    """Register `servicer`'s methods for `service` on `server`, each wrapped once, here.

    Requests reach the wrappers as bytes (no deserializer in gRPC's hands), so that a
    body that is not the method's message, an empty or truncated one, or none at all
    is answered INVALID_ARGUMENT and logged, never UNKNOWN or no answer. Unary methods
    get the status mapping and one log line per call (_unary); streaming ones (health's
    Watch, reflection) the safe parsing and their metrics (_streaming). Every call is
    counted (observe.metrics).
    """
    handlers = {}
    for method in service.methods:
        full_method = f"/{service.full_name}/{method.name}"
        request_type = message_factory.GetMessageClass(method.input_type)
        serialize = message_factory.GetMessageClass(method.output_type).SerializeToString
        behavior = getattr(servicer, method.name)
        # A servicer that answers errors with a message of its own (Zoom's sample, JSON).
        answer_error = getattr(servicer, "answer_error", None)
        method_served(full_method, method.client_streaming, method.server_streaming)
        if method.client_streaming or method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _streaming(full_method, method, behavior, request_type, deadlines),
                response_serializer=serialize,
            )
        elif answer_error is not None:
            # Registered as streaming, though unary in the proto (the wire is the same): a
            # unary handler of grpc.aio drops its answer when the status is not OK.
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _written(_unary(full_method, behavior, request_type, deadlines, answer_error)),
                response_serializer=serialize,
            )
        else:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                _unary(full_method, behavior, request_type, deadlines),
                response_serializer=serialize,
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


class EndedByCore(Exception):
    """gRPC's core ended the call before our code read its request, with a status of its
    own that the server cannot see: INTERNAL for a message flagged compressed without a
    grpc-encoding, RESOURCE_EXHAUSTED for one over the 64 KiB limit. The read gives EOF
    and the call has no peer any more (a client that half-closes without a message still
    has one, and is answered INVALID_ARGUMENT)."""


async def read_request(
    context: grpc.aio.ServicerContext, request_type: type[Message], deadlines: RequestDeadlines
) -> Any:
    """The call's one request message, parsed; RequestError when there is none or it is not
    one; EndedByCore when gRPC's core has answered the call already."""
    raw = await deadlines.read(context)
    if raw is grpc.aio.EOF:
        if not context.peer():
            raise EndedByCore
        raise InvalidArgument(
            [FieldViolation("", "the call ended without a whole request message")]
        )
    return parse_request(raw, request_type)


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
        self._answering: dict[_Answer, float] = {}
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

    def answering(self, context: grpc.aio.ServicerContext, answer: _Answer) -> None:
        """Log and count `answer`'s call once gRPC has sent its answer (or given up)."""
        self._answering[answer] = time.perf_counter()
        context.add_done_callback(answer.sent)
        if self._sweeper is None:
            self._start_sweeper()

    def sent(self, answer: _Answer) -> None:
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


class _Answer:
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


def parse_request(raw: bytes, request_type: type[Message]) -> Any:
    """`raw` read as a `request_type`; InvalidArgument when it is not one."""
    try:
        return request_type.FromString(raw)
    except DecodeError:
        raise InvalidArgument(
            [
                FieldViolation(
                    "",
                    f"the request body ({len(raw)} bytes) is not a "
                    f"{request_type.DESCRIPTOR.full_name} in protobuf encoding",
                )
            ]
        ) from None


def _unary(
    full_method: str,
    behavior: Callable[[Any, Any], Awaitable[Any]],
    request_type: type[Message],
    deadlines: RequestDeadlines,
    answer_error: Callable[[RequestError], Message] | None = None,
) -> Callable[[Any, Any], Awaitable[Any]]:
    """A unary method (`full_method`: "/package.Service/Method", as logged): the request read
    and parsed, errors turned into statuses, the call's metrics (observe.metrics), its span
    (observe.tracing) and its log line.

    With `answer_error`, a refusal is answered with the message it makes of the error as
    well as the error's status (and details): gRPC clients see the status alone; Envoy's
    JSON transcoder sends that message as the body of the HTTP error it maps the status to.
    """
    quiet = full_method.startswith(QUIET_PREFIX)
    write = log.debug if quiet else log.info

    async def unary(_requests: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        start_call()
        call_started(full_method)
        span = None if quiet else tracing.begin(full_method, context)
        code = "OK"
        try:
            request = await read_request(context, request_type, deadlines)
            return await behavior(request, context)
        except RequestError as error:
            code = error.status
            bind(reason=error.message, rule=getattr(error, "rule", ""))
            status = status_for(error)
            if answer_error is not None:
                if isinstance(error, ResourceExhausted):  # an HTTP answer: say when, as HTTP does
                    wait = str(math.ceil(error.retry_after))
                    await context.send_initial_metadata((("retry-after", wait),))
                context.set_code(status.code)
                context.set_details(status.details)
                context.set_trailing_metadata(status.trailing_metadata)
                return answer_error(error)
            await context.abort_with_status(status)
        except grpc.aio.AbortError:
            code = context.code().name if context.code() else "UNKNOWN"
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except EndedByCore:
            # Not the client's code (gRPC's core chose it, and a client can choose to get
            # it: counting it as INTERNAL would page on a client's whim); said in the line.
            code = "CANCELLED"
            bind(reason=_ENDED_BY_CORE)
        except Exception:
            code = "INTERNAL"
            log.exception("unexpected error", method=full_method)
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error: the server log has the details"
            )
        finally:
            # Logged and counted once the answer has left (or is given up): RequestDeadlines.
            answer = _Answer(deadlines, full_method, write, start, span, code, context.peer())
            deadlines.answering(context, answer)

    return unary


_ENDED_BY_CORE = (
    "gRPC's core answered the call before its request was read (INTERNAL for a message "
    "flagged compressed, RESOURCE_EXHAUSTED for one over 64 KiB)"
)
# The metric labels of every call to a method this server does not have: one series,
# whatever paths clients send.
UNKNOWN_METHOD = "/unknown/unknown"


class UnknownMethods(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc is untyped
    """Registered after every service: a call to a method none of them has is answered
    UNIMPLEMENTED, as gRPC would, and also logged (with the path it asked for, cut and
    redacted like any field) and counted (under UNKNOWN_METHOD)."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        asked = details.method
        path = asked.decode("utf-8", "replace") if isinstance(asked, bytes) else str(asked)

        async def answer(_requests: Any, context: grpc.aio.ServicerContext) -> None:
            start = time.perf_counter()
            start_call()
            call_started(UNKNOWN_METHOD)
            try:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_SUCH_METHOD)
            finally:
                seconds = time.perf_counter() - start
                record_call(UNKNOWN_METHOD, "UNIMPLEMENTED", seconds)
                log.info(
                    "rpc",
                    method=path,
                    peer=context.peer(),
                    code="UNIMPLEMENTED",
                    duration_ms=round(seconds * 1000, 3),
                )

        return grpc.stream_unary_rpc_method_handler(answer)


_NO_SUCH_METHOD = (
    "no such method: this server has sdksign.v1.SignatureService (Sign, Verify), "
    "sdksign.v1.ZoomSampleService, grpc.health.v1.Health and reflection"
)


def _written(
    unary: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    """`unary` as a streaming handler that writes its one answer, then ends with the status
    the call has: the answer reaches the client whatever that status is."""

    async def written(requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.write(await unary(requests, context))

    return written


def _streaming(
    full_method: str,
    method: MethodDescriptor,
    behavior: Callable[..., Any],
    request_type: type[Message],
    deadlines: RequestDeadlines,
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    """A streaming method (`full_method`: "/package.Service/Method") whose requests are parsed
    here, a bad one aborting INVALID_ARGUMENT; counted by its status code and duration."""

    async def requests(context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        while (raw := await context.read()) is not grpc.aio.EOF:
            yield await _parsed_or_abort(context, raw, request_type)

    async def streaming(_requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        start = time.perf_counter()
        call_started(full_method)
        code = "OK"
        try:
            if method.client_streaming:
                async for response in behavior(requests(context), context):
                    yield response
                return
            request = await _request_or_abort(context, request_type, deadlines)
            await behavior(request, context)  # server streaming: it writes with context.write
        except grpc.aio.AbortError:
            code = context.code().name if context.code() else "UNKNOWN"
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except EndedByCore:
            code = "CANCELLED"  # as in _unary: the core answered, with a code of its own
        except Exception:
            code = "UNKNOWN"  # what gRPC answers for a handler's exception
            raise
        finally:
            record_call(full_method, code, time.perf_counter() - start)

    return streaming


async def _request_or_abort(
    context: grpc.aio.ServicerContext, request_type: type[Message], deadlines: RequestDeadlines
) -> Any:
    try:
        return await read_request(context, request_type, deadlines)
    except RequestError as error:
        await context.abort_with_status(status_for(error))


async def _parsed_or_abort(
    context: grpc.aio.ServicerContext, raw: bytes, request_type: type[Message]
) -> Any:
    try:
        return parse_request(raw, request_type)
    except RequestError as error:
        await context.abort_with_status(status_for(error))
