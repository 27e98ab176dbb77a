"""Slow readers: 30,000 Sign calls from clients that never read their answers.

One worker; CONNECTIONS raw HTTP/2 connections, each with a receive window of 0
(SETTINGS_INITIAL_WINDOW_SIZE 0: the server may send headers, never a message), open
STREAMS_PER_CONNECTION whole Sign requests and hold them HOLD seconds without ever granting
a byte, then close. Each stream's outcome is what reached the client: a status in headers
alone (a refusal, which needs no window), a reset, or nothing (its answer held by the
server). The worker's resident memory is read before, at its highest while the streams are
held, and after the connections closed; its log says what it made of the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter

import h2.config
import h2.connection
import h2.events
import h2.settings

from bench.h2load import rss_kib, shown_mib
from sdksign.v1 import signature_service_pb2 as pb

from .common import MEETING, SIGN, Row, Soak
from .frames import grpc_status, request_headers
from .server import scenario_config, serving

CONNECTIONS = 30
STREAMS_PER_CONNECTION = 1000
# How long the streams are held open, unread, in seconds.
HOLD = 15.0
# After the connections closed: how long the worker has to give memory back, in seconds.
SETTLE = 5.0
# The target: a worker grows by at most this much, and keeps at most half of it after.
MAX_GROWTH_MIB = 200
HELD = "held (no answer: window 0)"
DROPPED = "connection closed by the server"
_REQUEST = pb.SignRequest(
    meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
)
_BODY = _REQUEST.SerializeToString()
FRAMED = struct.pack(">BI", 0, len(_BODY)) + _BODY


async def slow_readers(soak: Soak, row: Row) -> None:
    config = scenario_config(soak, "slow-readers")
    async with serving(soak, "slow-readers", config, 1) as server:
        pid = next(iter(server.workers().values()))
        before = rss_kib(pid) or 0
        host, port = server.target.rsplit(":", 1)
        rpc_lines = len(server.events("rpc"))
        release = asyncio.Event()
        tasks = [
            asyncio.create_task(
                window_zero_streams(host, int(port), STREAMS_PER_CONNECTION, release)
            )
            for _ in range(CONNECTIONS)
        ]
        peak = before
        for _ in range(int(HOLD / 0.5)):
            await asyncio.sleep(0.5)
            peak = max(peak, rss_kib(pid) or 0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(SETTLE)
        after = rss_kib(pid) or 0
        logged = Counter(str(line.get("code")) for line in server.events("rpc")[rpc_lines:])
        restarted = len(server.events("worker exited"))
    for result in results:
        if isinstance(result, BaseException):
            row.outcomes.counts[f"error: {type(result).__name__}"] += 1
            row.miss(f"a connection failed ({result!r}): its streams were not counted")
        else:
            row.outcomes.counts.update(result)
    _judge(row, before, peak, after, logged)
    if restarted:
        row.miss(f"{restarted} worker(s) died and were restarted")


def _judge(row: Row, before: int, peak: int, after: int, logged: Counter[str]) -> None:
    row.note(
        f"{CONNECTIONS} connections x {STREAMS_PER_CONNECTION} Sign streams, window 0, {HOLD:.0f} s"
    )
    row.note(
        f"worker RSS {shown_mib(before)} → {shown_mib(peak)} (held) → {shown_mib(after)} MiB "
        f"({SETTLE:.0f} s after closing)"
    )
    row.note("server logged " + ", ".join(f"{code} {n:,}" for code, n in logged.most_common()))
    if (peak - before) / 1024 > MAX_GROWTH_MIB:
        row.miss(f"the worker grew by {(peak - before) / 1024:.0f} MiB (at most {MAX_GROWTH_MIB})")
    if after - before > (peak - before) / 2:
        row.miss("the worker kept more than half the memory the streams took")
    held = row.outcomes.counts[HELD]
    if logged["OK"] > row.outcomes.counts["OK"]:
        row.miss(
            f"{logged['OK'] - row.outcomes.counts['OK']:,} calls logged OK whose answer never left ({held:,} held)"
        )


async def window_zero_streams(
    host: str, port: int, count: int, release: asyncio.Event
) -> Counter[str]:
    """`count` Sign requests on one connection of window 0, held until `release`; each
    stream's outcome (a status, a reset, or HELD)."""
    reader, writer = await asyncio.open_connection(host, port)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**16,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
        },
    )
    streams: dict[int, str | None] = {}
    try:
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        for _ in range(count):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, request_headers(host, port, SIGN))
            connection.send_data(stream, FRAMED, end_stream=True)
            streams[stream] = None
        writer.write(connection.data_to_send())
        await writer.drain()
        reading = asyncio.create_task(_read(reader, writer, connection, streams))
        await release.wait()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    except ConnectionError:  # the server dropped the connection: its open streams with it
        return Counter(outcome or DROPPED for outcome in streams.values())
    finally:
        writer.close()
    return Counter(outcome or HELD for outcome in streams.values())


async def _read(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connection: h2.connection.H2Connection,
    streams: dict[int, str | None],
) -> None:
    """Take in what the server sends (headers, trailers, resets; never a message, since no
    window is ever granted), answering its pings and settings as any client."""
    while chunk := await reader.read(65536):  # a reset connection raises ConnectionError
        for event in connection.receive_data(chunk):
            stream = getattr(event, "stream_id", None)
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                status = grpc_status(event.headers)
                if status is not None and stream in streams:
                    streams[stream] = status
            elif isinstance(event, h2.events.StreamReset) and stream in streams:
                streams[stream] = streams[stream] or f"RST_STREAM {event.error_code}"
        writer.write(connection.data_to_send())
        await writer.drain()
