"""The error types: ConfigError for a configuration that cannot be used, and the errors the
pure logic raises for a request it refuses, which the server maps to gRPC statuses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the problem."""


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


# What a status may carry, so that its trailers stay well under a client's metadata limit
# (16 KiB by default in gRPC): a 60-field mistake still reaches the caller, cut short.
MAX_VIOLATIONS = 10
MAX_IN_MESSAGE = 3
MAX_FIELD = 64
MAX_DESCRIPTION = 200
MAX_MESSAGE = 1024


def bounded(violations: Sequence[FieldViolation]) -> tuple[FieldViolation, ...]:
    """At most MAX_VIOLATIONS violations, each cut to length; a last one counts the rest."""
    shown = tuple(
        FieldViolation(shorten(v.field, MAX_FIELD), shorten(v.description, MAX_DESCRIPTION))
        for v in violations[:MAX_VIOLATIONS]
    )
    rest = len(violations) - MAX_VIOLATIONS
    if rest > 0:
        shown += (FieldViolation("", f"{rest} more violations not listed"),)
    return shown


def shorten(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters (the last one an ellipsis) when longer."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class InvalidArgument(RequestError):
    """The request itself is wrong: each violation names a field and what it may hold."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        text = "; ".join(
            f"{v.field}: {v.description}" if v.field else v.description
            for v in bounded(violations[:MAX_IN_MESSAGE])
        )
        if len(violations) > MAX_IN_MESSAGE:
            text += f"; and {len(violations) - MAX_IN_MESSAGE} more (see the details)"
        super().__init__(f"invalid request: {text}", violations)


class DeadlineExceeded(RequestError):
    """The call did not bring its request in time (a stream left open, a message cut short)."""

    status = "DEADLINE_EXCEEDED"


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
    """A caller (`subject`) is over its rate limit, or, with a `reason` (an UPPER_SNAKE_CASE
    word for ErrorInfo), its limit cannot be checked now; it may try again after
    `retry_after` seconds. Not UNAVAILABLE, which gateways and clients retry at once.
    `rule` (for the log line and the refusals metric): rate_limit, or rate_limit_store
    when the limit could not be checked."""

    status = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, retry_after: float, subject: str, reason: str = "", rule: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.subject = subject
        self.reason = reason
        self.rule = rule or ("rate_limit_store" if reason else "rate_limit")


class NotFound(RequestError):
    """What the request names does not exist where it was looked for (a Zoom user Zoom does
    not know); `reason` is ErrorInfo's UPPER_SNAKE_CASE word, `subject` what was looked for."""

    status = "NOT_FOUND"

    def __init__(self, message: str, reason: str, subject: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class Unavailable(RequestError):
    """A backend the call needs (Zoom's API) cannot answer now; the call may be tried again.
    `reason` is ErrorInfo's UPPER_SNAKE_CASE word."""

    status = "UNAVAILABLE"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def unknown_app(name: str, allowed: Iterable[str]) -> FieldViolation:
    """The violation for an `app` field (of Sign or Verify) naming no app of `allowed`, the
    caller's: the same words whether the app is configured or not. `name` is the field as a
    message may show it (zoom.rules.quoted), never as sent."""
    return FieldViolation(
        "app",
        f"{name} is not an app this caller may use (allowed: {', '.join(allowed) or 'none'})",
    )
