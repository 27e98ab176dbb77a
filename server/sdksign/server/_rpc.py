"""The one thing every RPC shares: a log line, and errors turned into gRPC statuses.

Each unary handler is wrapped once, when it is registered (LoggedServicer). A
servicer raises RequestError (or returns); the wrapper aborts with the right code
and a google.rpc.Status with details (BadRequest, ErrorInfo, RetryInfo,
PreconditionFailure), maps anything unexpected to INTERNAL (never UNKNOWN), and
writes one log line, the audit event, with the method, the peer, the status code,
the duration and whatever the servicer bound with _logging.bind (caller, app,
role, meeting, ttl, token fingerprint, and a refusal's reason and rule).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import duration_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ._errors import PermissionDenied, RequestError, ResourceExhausted, Unauthenticated
from ._logging import bind, start_call

log = structlog.get_logger("sdksign.rpc")


def status_for(error: RequestError) -> grpc.Status:
    """The gRPC status (with google.rpc details) that tells the caller what to change."""
    status = status_pb2.Status(code=code_pb2.Code.Value(error.status), message=error.message)
    for detail in _details(error):
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def _details(error: RequestError) -> list[Message]:
    if error.violations:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
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
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after * 1e9))
        return [
            error_details_pb2.RetryInfo(retry_delay=delay),
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"caller:{error.subject}", description=error.message
                    )
                ]
            ),
        ]
    return [
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="CONFIGURATION", subject="apps", description=error.message
                )
            ]
        )
    ]


# ErrorInfo's domain: the service's own name.
ERROR_DOMAIN = "sdksign"


# Health checks come every few seconds from every load balancer: logged at debug level only.
QUIET_PREFIX = "/grpc.health.v1.Health/"


class LoggedServicer:
    """Stands in for a servicer when it is registered: its unary methods come wrapped.

    Each unary method of `service` is wrapped once, here (status mapping and one
    log line per call); streaming methods pass through as they are.
    """

    def __init__(self, servicer: object, service: ServiceDescriptor) -> None:
        self._servicer = servicer
        for method in service.methods:
            if not (method.client_streaming or method.server_streaming):
                behavior = getattr(servicer, method.name)
                setattr(self, method.name, _wrap(f"/{service.full_name}/{method.name}", behavior))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._servicer, name)


def _wrap(
    method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
) -> Callable[[Any, Any], Awaitable[Any]]:
    write = log.debug if method.startswith(QUIET_PREFIX) else log.info

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        start_call()
        code = "OK"
        try:
            return await behavior(request, context)
        except RequestError as error:
            code = error.status
            bind(reason=error.message, rule=getattr(error, "rule", ""))
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
