"""Errors the pure logic raises for a request it refuses; the server maps them to gRPC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One broken rule: the request field (a proto path such as "meeting.role") and what is allowed."""

    field: str
    description: str


class RequestError(Exception):
    """A request the service refuses. `status` is the name of a gRPC status code."""

    status = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: Sequence[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)


class InvalidArgument(RequestError):
    """The request itself is wrong: each violation names a field and what it may hold."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {text}", violations)


class FailedPrecondition(RequestError):
    """The request is well formed but the service is not configured to answer it."""

    status = "FAILED_PRECONDITION"


class Unauthenticated(RequestError):
    """The caller did not prove who it is (or, anonymous, asked for more than anonymous may)."""

    status = "UNAUTHENTICATED"

    def __init__(self, message: str, rule: str = "credentials") -> None:
        super().__init__(message)
        self.rule = rule


class PermissionDenied(RequestError):
    """A known caller asked for something outside its rule; `rule` names which one."""

    status = "PERMISSION_DENIED"

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class ResourceExhausted(RequestError):
    """A caller is over its rate limit; it may try again after `retry_after` seconds."""

    status = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after: float, subject: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.subject = subject
