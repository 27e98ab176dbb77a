"""OpenTelemetry traces: off unless the standard OTEL_* environment variables turn them on.

(Skeleton: filled in by the tracing work of issue 14.)
"""

from __future__ import annotations

from typing import Any


def configure() -> None:
    """Set up this process's tracer provider and exporter from OTEL_* (each worker calls it)."""


def begin(full_method: str, context: Any) -> Any:
    """Start the server span of one RPC, continuing the call's W3C traceparent; None when
    tracing is off."""
    return None


def end(span: Any, code: str) -> None:
    """End the span `begin` returned (None: nothing) with the call's status and log fields."""
