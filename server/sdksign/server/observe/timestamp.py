"""The timestamp of every JSON log line, structlog's and the native stderr lines' alike."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any


class UtcTimestamp:
    """Processor: `timestamp` in ISO 8601 UTC with microseconds, as TimeStamper(fmt="iso",
    utc=True) writes it, for less: the date and time up to the second are formatted once
    per second, not once per line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event
