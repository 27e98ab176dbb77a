"""The log processors: a whole token never survives into a log line."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
from datetime import UTC, datetime
from typing import Any

import structlog

from sdksign.server._logging import (
    ATOMIC_WRITE,
    LineWriter,
    UtcTimestamp,
    bind,
    configure_logging,
    redact_tokens,
    start_call,
)
from sdksign.server._tokens import encode, fingerprint


def test_redact_tokens_replaces_whole_tokens_with_their_fingerprint() -> None:
    token = encode({"sdkKey": "k", "iat": 1}, b"secret")
    event = {"event": "oops", "detail": f"got {token} from caller", "count": 3}
    redacted = redact_tokens(None, "info", event)
    assert token not in json.dumps(redacted)
    assert redacted["detail"] == f"got <token {fingerprint(token)}> from caller"
    assert redacted["count"] == 3


def test_configured_logger_writes_json_lines_with_the_calls_fields() -> None:
    stream = io.BytesIO()
    configure_logging("info", stream)
    token = encode({"x": 1}, b"secret")

    def one_call() -> None:
        start_call()
        bind(app="meeting", role="host")
        structlog.get_logger("t").info("rpc", detail=token, role="participant")
        structlog.get_logger("t").debug("hidden at info level")

    try:
        contextvars.copy_context().run(one_call)
        bind(app="outside a call: ignored")
        structlog.get_logger("t").info("after the call")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["rpc", "after the call"]
    assert lines[0]["app"] == "meeting" and lines[0]["level"] == "info"
    assert lines[0]["role"] == "participant"  # the line's own field wins
    assert "app" not in lines[1]
    assert token.encode() not in stream.getvalue()


class CountingStream(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


async def test_lines_of_one_event_loop_iteration_are_written_together() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    for n in range(3):
        writer.msg(f'{{"n": {n}}}'.encode())
    assert stream.writes == 0  # not yet: the loop has not finished this iteration
    await asyncio.sleep(0)
    assert stream.writes == 1
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2]
    writer.msg(b'{"n": 3}')
    await asyncio.sleep(0)
    assert stream.writes == 2


def test_without_an_event_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    writer.msg(b'{"n": 0}')
    assert stream.getvalue() == b'{"n": 0}\n'


def test_timestamps_are_iso_utc_like_structlogs() -> None:
    stamp = UtcTimestamp()
    before = datetime.now(UTC)
    ours = str(stamp(None, "info", {})["timestamp"])
    after = datetime.now(UTC)
    theirs = str(
        structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    )
    assert len(ours) == len(theirs) == len("2026-11-23T05:29:03.366143Z")
    assert ours.endswith("Z") and theirs.endswith("Z")
    parsed = datetime.fromisoformat(ours.replace("Z", "+00:00"))
    assert before <= parsed <= after
    second = str(stamp(None, "info", {})["timestamp"])  # the cached second still holds
    assert datetime.fromisoformat(second.replace("Z", "+00:00")) >= parsed


async def test_writes_hold_whole_lines_and_fit_in_pipe_buf() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    sizes = []
    original = stream.write

    def record(data: Any) -> int:
        sizes.append(len(data))
        assert bytes(data).endswith(b"\n")
        return original(data)

    stream.write = record  # type: ignore[method-assign]
    lines = [json.dumps({"n": n, "pad": "x" * (n % 300)}).encode() for n in range(200)]
    for line in lines:
        writer.msg(line)
    await asyncio.sleep(0)
    assert len(sizes) > 1 and max(sizes) <= ATOMIC_WRITE
    assert stream.getvalue().splitlines() == lines
    writer.msg(b"y" * 10_000)  # a longer line still goes out whole
    await asyncio.sleep(0)
    assert sizes[-1] == 10_001
