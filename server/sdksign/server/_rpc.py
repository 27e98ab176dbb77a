"""The one thing every RPC shares: a log line, and errors turned into gRPC statuses.

A servicer raises RequestError (or returns); this interceptor aborts with the
right code and a google.rpc.Status carrying BadRequest field violations, maps
anything unexpected to INTERNAL (never UNKNOWN), and writes one log line with
the method, the peer, the status code, the duration and whatever the servicer
bound with structlog.contextvars (app, role, token fingerprint).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ._errors import RequestError

log = structlog.get_logger("sdksign.rpc")


def status_for(error: RequestError) -> grpc.Status:
    """The gRPC status (with google.rpc details) that tells the caller what to change."""
    detail = any_pb2.Any()
    if error.violations:
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    else:
        detail.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type="CONFIGURATION", subject="apps", description=error.message
                    )
                ]
            )
        )
    status = status_pb2.Status(
        code=code_pb2.Code.Value(error.status), message=error.message, details=[detail]
    )
    return rpc_status.to_status(status)


# Health checks come every few seconds from every load balancer: logged at debug level only.
QUIET_PREFIX = "/grpc.health.v1.Health/"


class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every unary-unary handler: status mapping and one log line per RPC.

    grpc.aio asks on every call; the wrapped handler of each method is made once
    and kept (only methods the server has, so the cache cannot grow without bound).
    """

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = grpc.unary_unary_rpc_method_handler(
            _wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._handlers[method] = wrapped
        return wrapped


def _wrap(
    method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
) -> Callable[[Any, Any], Awaitable[Any]]:
    write = log.debug if method.startswith(QUIET_PREFIX) else log.info

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        structlog.contextvars.clear_contextvars()
        start = time.perf_counter()
        code = "OK"
        try:
            return await behavior(request, context)
        except RequestError as error:
            code = error.status
            await context.abort_with_status(status_for(error))
        except grpc.aio.AbortError:
            code = context.code().name if context.code() else "UNKNOWN"
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            log.exception("unexpected error", method=method)
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error: the server log has the details"
            )
        finally:
            write(
                "rpc",
                method=method,
                peer=context.peer(),
                code=code,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
            )

    return unary_unary
