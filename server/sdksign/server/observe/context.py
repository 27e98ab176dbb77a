"""The running RPC's log fields: one dict per call (start_call), added to with bind(),
read by call_fields() and put on every line logged during the call (merge_call_fields).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

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
