"""Prometheus metrics: every name and label the service exports is defined here.

(Skeleton: filled in by the metrics work of issue 14.)
"""

from __future__ import annotations


def record_call(full_method: str, code: str, seconds: float) -> None:
    """Count one finished unary RPC (`full_method`: "/package.Service/Method") and what the
    call's log fields say of it (tokens issued, refusals, Verify results)."""
