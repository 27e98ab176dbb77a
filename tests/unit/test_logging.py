"""The log processors: a whole token never survives into a log line, and no field is long."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server.observe.context import bind, start_call
from sdksign.server.observe.log import ATOMIC_WRITE, LineWriter, configure_logging
from sdksign.server.observe.redact import redact_and_bound
from sdksign.server.observe.timestamp import UtcTimestamp
from sdksign.server.zoom.jwt import encode, fingerprint


def test_redact_tokens_replaces_whole_tokens_with_their_fingerprint() -> None:
    token = encode({"sdkKey": "k", "iat": 1}, b"secret")
    event = {"event": "oops", "detail": f"got {token} from caller", "count": 3}
    redacted = redact_and_bound(None, "info", event)
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


# --- tokens, whatever their first characters ------------------------------------------------


def b64(data: bytes, alphabet: str = "url", padded: bool = False) -> str:
    text = (base64.urlsafe_b64encode if alphabet == "url" else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")


def jwt_text(header: bytes, alphabet: str = "url", padded: bool = False) -> str:
    payload = b'{"sdkKey":"k","role":1,"iat":1,"exp":7201,"x":"\xff\xfe>>??"}'
    signature = hashlib.sha256(header + payload).digest()
    return ".".join(b64(part, alphabet, padded) for part in (header, payload, signature))


@pytest.mark.parametrize(
    ("token", "begins"),
    [
        (jwt_text(b'{"alg":"HS256","typ":"JWT"}'), "eyJ"),
        (jwt_text(b'{ "alg": "HS256", "typ": "JWT" }'), "eyAi"),
        (jwt_text(b' {"alg":"HS256"}'), "IHsi"),
        (jwt_text(b'\n{\n  "alg": "HS256"\n}'), "CnsK"),
        (jwt_text(b'\r\n\t{"alg":"HS256"}'), "DQoJ"),
        (jwt_text(b"{}"), "e30"),
        (jwt_text(b'{"alg":"HS256","typ":"JWT>"}', "standard", padded=True), "eyJ"),
    ],
    ids=["usual", "spaced", "leading space", "newlines", "crlf tab", "empty header", "std padded"],
)
def test_any_token_is_replaced_whatever_its_first_characters(token: str, begins: str) -> None:
    assert token.startswith(begins)
    for text in (
        token,
        f"got {token} from caller",
        f"Bearer{token}",  # glued on
        f"https://x.example/verify/{token}?q=1",
        f"({token}),{token}.",
    ):
        event = redact_and_bound(None, "info", {"event": "e", "detail": text, "list": [text]})
        for value in (event["detail"], event["list"][0]):
            assert token not in value and token.split(".")[2] not in value
            assert f"<token {fingerprint(token)}>" in value


@pytest.mark.parametrize(
    "text",
    [
        "ipv4:127.0.0.1:54321",
        "/sdksign.v1.SignatureService/Sign",
        "example.com.au",
        "grpcio 1.85.1",
        "e.g. a.b.c",
        "eyes.on.it",
        f"{b64(b'hello')}.{b64(b'world')}.{b64(b'sig')}",  # base64, but no JSON object
        f"{b64(b'{not json')}.e30.x",
    ],
)
def test_dotted_text_that_is_no_token_is_left_alone(text: str) -> None:
    for _ in range(2):  # the second time from the set of strings known to hold no token
        assert redact_and_bound(None, "info", {"event": "e", "detail": text})["detail"] == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    spaces=st.text(alphabet=" \t\n\r", max_size=8),
    indent=st.none() | st.integers(min_value=0, max_value=3),
    rest=st.lists(st.binary(max_size=40), min_size=2, max_size=2),
    alphabet=st.sampled_from(["url", "standard"]),
    padded=st.booleans(),
    around=st.lists(st.text(max_size=20), min_size=2, max_size=2),
)
def test_any_jwt_in_any_text_is_replaced(
    header: dict[str, object],
    spaces: str,
    indent: int | None,
    rest: list[bytes],
    alphabet: str,
    padded: bool,
    around: list[str],
) -> None:
    encoded = (spaces + json.dumps(header, indent=indent)).encode()
    token = ".".join(b64(part, alphabet, padded) for part in (encoded, *rest))
    text = f"{around[0]} {token} {around[1]}"
    detail = redact_and_bound(None, "info", {"event": "e", "detail": text})["detail"]
    assert f"<token {fingerprint(token)}>" in detail
    assert token not in detail


def test_a_63_kb_field_of_near_tokens_is_redacted_then_cut() -> None:
    # The eyJ regex before this backtracked over the whole run from every "eyJ" (0.9 s for
    # the first; about a millisecond now, measured, not asserted: no timing in tests).
    for text, redacted in [
        ("eyJ" * 21000 + ".!.", False),
        ("eyJ9.e30.x " * 5700, True),  # {} . {} . x: each one a token
        ("e0e0.a.b " * 7000, False),
    ]:
        meeting = redact_and_bound(None, "info", {"event": "e", "meeting": text})["meeting"]
        assert meeting.startswith("<token ") == redacted
        assert len(meeting) < 280 and "…(+" in meeting


# --- every field bounded ---------------------------------------------------------------------


def test_long_fields_are_cut_with_a_marker() -> None:
    event = redact_and_bound(
        None,
        "info",
        {"event": "rpc", "app": "a" * 72_000, "meeting": "9" * 256, "ttl": 7200},
    )
    assert event["app"] == "a" * 256 + "…(+71744 chars)"
    assert event["meeting"] == "9" * 256 and event["ttl"] == 7200


def test_a_token_the_cut_goes_through_is_fingerprinted_whole() -> None:
    token = encode({"sdkKey": "k", "pad": "p" * 300}, b"secret")
    # The cut at 256 characters goes through the token: it was fingerprinted before.
    event = redact_and_bound(None, "info", {"event": "e", "meeting": "9" * 200 + " " + token})
    assert event["meeting"] == "9" * 200 + f" <token {fingerprint(token)}>"
    assert token[:20] not in event["meeting"]


def test_lists_are_cut_in_count_and_in_each_item() -> None:
    event = redact_and_bound(None, "info", {"event": "e", "problems": ("x" * 300,) * 20})
    assert event["problems"] == ["x" * 256 + "…(+44 chars)"] * 16 + ["…(+4 items)"]


def test_a_traceback_keeps_more() -> None:
    event = redact_and_bound(None, "info", {"event": "e", "exception": "t" * 10_000})
    assert event["exception"] == "t" * 8192 + "…(+1808 chars)"


def test_a_refused_sign_with_huge_fields_logs_a_short_line() -> None:
    stream = io.BytesIO()
    configure_logging("info", stream)
    token = encode({"sdkKey": "k"}, b"secret")

    def refused_call() -> None:
        start_call()
        bind(app="a" * 40_000, meeting=f"{token} {'9' * 40_000}", reason="r" * 1000)
        structlog.get_logger("t").info("rpc", code="INVALID_ARGUMENT")

    try:
        contextvars.copy_context().run(refused_call)
    finally:
        structlog.reset_defaults()
    line = stream.getvalue()
    assert len(line) < 1200 and token.encode() not in line
    assert json.loads(line)["meeting"].startswith(f"<token {fingerprint(token)}> 9999")
