"""structlog, configured once at start-up: JSON lines on stderr, context bound per RPC."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from ._tokens import fingerprint

# Three base64url segments starting like a JSON header: what a JWT looks like in text.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def redact_tokens(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: a whole token that slipped into a string value is replaced by its fingerprint."""
    for key, value in event.items():
        if isinstance(value, str) and "eyJ" in value:
            event[key] = _JWT.sub(lambda m: f"<token {fingerprint(m.group())}>", value)
    return event


def configure_logging(
    level: str = "info", stream: TextIO | None = None, worker: int | None = None
) -> None:
    """Configure structlog for the whole process; call once, before serving.

    A worker process (`serve --workers`) passes its index, and every line names it.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([_name_worker(worker)] if worker is not None else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_tokens,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )


def _name_worker(worker: int) -> structlog.types.Processor:
    """Processor: add `worker` to every line of a worker process."""

    def name_worker(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event["worker"] = worker
        return event

    return name_worker
