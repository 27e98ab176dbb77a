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
(runtime.deadlines: RequestDeadlines, Answer).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from ..zoom.rules import is_method_path, shown
from .deadlines import Answer, RequestDeadlines

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
            answer = Answer(deadlines, full_method, write, start, span, code, context.peer())
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
    UNIMPLEMENTED, as gRPC would, and also logged (with the path it asked for when it is
    shaped like one, else its length and fingerprint: zoom.rules.shown) and counted (under
    UNKNOWN_METHOD)."""

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
                    method=shown(path, is_method_path),
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
