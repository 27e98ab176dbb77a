"""Malformed gRPC frames over raw HTTP/2 (the h2 package): a length prefix longer than the body,
an empty body, a 3-byte body and the like, each then END_STREAM. Each must be answered (a
grpc-status) or reset (RST_STREAM, GOAWAY) within a few seconds, on a connection of its own."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter

import grpc
import h2.config
import h2.connection
import h2.events

from .common import HEALTH, HUNG, SIGN, VERIFY, Row, Soak
from .server import scenario_config, serving

ANSWER_TIMEOUT = 5.0
# What was sent after the request headers: None is END_STREAM on the headers themselves.
FRAMES: dict[str, bytes | None] = {
    "length prefix 100, 10 bytes": struct.pack(">BI", 0, 100) + b"\x0a" * 10,
    "length prefix 2^32-1, 3 bytes": struct.pack(">BI", 0, 0xFFFFFFFF) + b"abc",
    "empty body": b"",
    "3-byte body": b"\x00\x00\x00",
    "no body at all": None,
    "compressed flag, no grpc-encoding": struct.pack(">BI", 1, 3) + b"abc",
    "flag byte 0xff": struct.pack(">BI", 0xFF, 0),
    "two messages": struct.pack(">BI", 0, 0) * 2,
}
UNANSWERED = "closed unanswered"
NO_STATUS = "ended without grpc-status"
_CODES = {code.value[0]: str(code.name) for code in grpc.StatusCode}


async def malformed_frames(soak: Soak, row: Row) -> None:
    config = scenario_config(soak, "frames")
    async with serving(soak, "frames", config, soak.settings.workers) as server:
        host, port = server.target.rsplit(":", 1)
        sends = [
            _timed(kind, host, int(port), method, body)
            for method in (SIGN, VERIFY, HEALTH)
            for kind, body in FRAMES.items()
        ]
        results = await asyncio.gather(*sends)
        restarted = len(server.events("worker exited"))
    # Neither a grpc-status nor a reset: each is a miss.
    unanswered = {outcome: Counter[str]() for outcome in (HUNG, UNANSWERED, NO_STATUS)}
    for kind, outcome, ms in results:
        row.outcomes.add(outcome, ms)
        if outcome in unanswered:
            unanswered[outcome][kind] += 1
    row.note(f"{len(FRAMES)} kinds of frame to each of Sign, Verify, Health/Check, at once")
    row.note(f"slowest answer {row.outcomes.max_ms() or 0:.0f} ms")
    internal = {kind for kind, outcome, _ in results if outcome == "INTERNAL"}
    if internal:
        # gRPC's core answers these itself, before any code of ours runs.
        row.note(f"INTERNAL from gRPC's core for: {', '.join(sorted(internal))}")
    for outcome, kinds in unanswered.items():
        if kinds:
            row.miss(f"{outcome}: " + ", ".join(f"{k} (to {n} methods)" for k, n in kinds.items()))
    if restarted:
        row.miss(f"{restarted} worker(s) died and were restarted")


async def _timed(
    kind: str, host: str, port: int, method: str, body: bytes | None
) -> tuple[str, str, float]:
    started = time.monotonic()
    outcome = await _send(host, port, method, body)
    return kind, outcome, (time.monotonic() - started) * 1000


async def _send(host: str, port: int, method: str, body: bytes | None) -> str:
    """One request on a fresh connection: its grpc-status name, RST_STREAM, GOAWAY, or hung."""
    reader, writer = await asyncio.open_connection(host, port)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    try:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(
            stream, request_headers(host, port, method), end_stream=body is None
        )
        if body is not None:
            connection.send_data(stream, body, end_stream=True)
        writer.write(connection.data_to_send())
        await writer.drain()
        return await asyncio.wait_for(_answer(reader, writer, connection), ANSWER_TIMEOUT)
    except TimeoutError:
        return HUNG
    finally:
        writer.close()


def request_headers(host: str, port: int, method: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", f"{host}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connection: h2.connection.H2Connection,
) -> str:
    status: str | None = None
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return UNANSWERED
        for event in connection.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                status = grpc_status(event.headers) or status
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                return status or NO_STATUS
            elif isinstance(event, h2.events.StreamReset):
                return f"RST_STREAM {_error_name(event.error_code)}"
            elif isinstance(event, h2.events.ConnectionTerminated):
                return f"GOAWAY {_error_name(event.error_code)}"
        writer.write(connection.data_to_send())
        await writer.drain()


def grpc_status(headers: object) -> str | None:
    for name, value in headers or []:  # type: ignore[attr-defined]
        if name == "grpc-status":
            return _CODES.get(int(value), f"grpc-status {value}")
    return None


def _error_name(code: object) -> str:
    return str(getattr(code, "name", code))
