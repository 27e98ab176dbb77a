"""The log processors: a whole token never survives into a log line."""

from __future__ import annotations

import io
import json

import structlog

from sdksign.server._logging import configure_logging, redact_tokens
from sdksign.server._tokens import encode, fingerprint


def test_redact_tokens_replaces_whole_tokens_with_their_fingerprint() -> None:
    token = encode({"sdkKey": "k", "iat": 1}, b"secret")
    event = {"event": "oops", "detail": f"got {token} from caller", "count": 3}
    redacted = redact_tokens(None, "info", event)
    assert token not in json.dumps(redacted)
    assert redacted["detail"] == f"got <token {fingerprint(token)}> from caller"
    assert redacted["count"] == 3


def test_configured_logger_writes_json_lines_with_bound_context() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        token = encode({"x": 1}, b"secret")
        structlog.contextvars.bind_contextvars(app="meeting")
        structlog.get_logger("t").info("rpc", detail=token)
        structlog.get_logger("t").debug("hidden at info level")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert (
        lines[0]["app"] == "meeting" and lines[0]["event"] == "rpc" and lines[0]["level"] == "info"
    )
    assert token not in stream.getvalue()
