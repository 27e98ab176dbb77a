"""Half-open streams: 10,000 calls that start a request and never finish it.

One worker; CONNECTIONS raw HTTP/2 connections each open STREAMS_PER_CONNECTION Sign
streams with a message cut short and no END_STREAM, then wait. The server must answer
every one (DEADLINE_EXCEEDED once runtime.deadlines.REQUEST_READ_TIMEOUT has passed) and
give back the memory they held: the worker's resident memory is read before, with all of
them open, and after they were answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import Counter

import h2.config
import h2.connection
import h2.events
import h2.settings

from bench.h2load import rss_kib, shown_mib

from .common import HUNG, SIGN, Row, Soak
from .frames import grpc_status, request_headers
from .server import scenario_config, serving

CONNECTIONS = 10
# Calls opened on each connection: fewer when the server's SETTINGS allow fewer at once.
STREAMS_PER_CONNECTION = 1000
# A length prefix of 100 bytes, and 10 of them: a message that never ends.
CUT_SHORT = struct.pack(">BI", 0, 100) + b"\x0a" * 10
# What we wait at most: well past the server's runtime.deadlines.REQUEST_READ_TIMEOUT and
# its sweep.
ANSWER_WITHIN = 30.0


async def half_open(soak: Soak, row: Row) -> None:
    config = scenario_config(soak, "half-open")
    async with serving(soak, "half-open", config, 1) as server:
        pid = next(iter(server.workers().values()))
        before = rss_kib(pid)
        opened = _Opened()
        answered_ms: list[float] = []
        host, port = server.target.rsplit(":", 1)
        tasks = [
            asyncio.create_task(_connection(host, int(port), opened, answered_ms))
            for _ in range(CONNECTIONS)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened.all.wait(), ANSWER_WITHIN)
        await asyncio.sleep(1.0)
        peak = rss_kib(pid)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2.0)
        after = rss_kib(pid)
        restarted = len(server.events("worker exited"))
    for result in results:
        if isinstance(result, BaseException):
            row.outcomes.counts[f"error: {type(result).__name__}"] += 1
            row.miss(f"a connection failed ({result!r}): its streams were not counted")
            continue
        row.outcomes.counts.update(result)
    # Latency here is how long after they were sent the answers came: the server's request
    # read timeout, by design.
    row.outcomes.latencies_ms.extend(answered_ms)
    row.note(f"{CONNECTIONS} connections x {STREAMS_PER_CONNECTION} streams, never finished")
    row.note(
        f"worker RSS {shown_mib(before)} → {shown_mib(peak)} (all open) → {shown_mib(after)} MiB (answered)"
    )
    unanswered = sum(n for outcome, n in row.outcomes.counts.items() if outcome == HUNG)
    if unanswered:
        row.miss(f"{unanswered:,} streams never answered")
    if None not in (before, peak, after) and after - before > (peak - before) / 2:  # type: ignore[operator]
        row.miss("the worker kept more than half the memory the streams took")
    if restarted:
        row.miss(f"{restarted} worker(s) died and were restarted")


class _Opened:
    """How many connections have all their streams open; `all` is set once every one has."""

    def __init__(self) -> None:
        self.count = 0
        self.all = asyncio.Event()

    def one_more(self) -> None:
        self.count += 1
        if self.count == CONNECTIONS:
            self.all.set()


async def _connection(
    host: str, port: int, opened: _Opened, answered_ms: list[float]
) -> Counter[str]:
    """Open STREAMS_PER_CONNECTION cut-short Sign streams on one connection; their outcomes."""
    reader, writer = await asyncio.open_connection(host, port)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**16}
    )
    outcomes: Counter[str] = Counter()
    try:
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        await _settle(reader, writer, connection)  # the server's SETTINGS: its stream limit
        streams = min(STREAMS_PER_CONNECTION, connection.remote_settings.max_concurrent_streams)
        open_streams: dict[int, str | None] = {}
        for _ in range(streams):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, request_headers(host, port, SIGN))
            connection.send_data(stream, CUT_SHORT)
            open_streams[stream] = None
        writer.write(connection.data_to_send())
        await writer.drain()
        opened.one_more()
        await asyncio.wait_for(
            _answers(reader, writer, connection, open_streams, answered_ms), ANSWER_WITHIN
        )
    except TimeoutError:
        pass
    finally:
        writer.close()
    for status in open_streams.values():
        outcomes[status or HUNG] += 1
    return outcomes


async def _settle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connection: h2.connection.H2Connection,
) -> None:
    """Read until the server's first SETTINGS frame has been taken in and acknowledged."""
    while True:
        events = connection.receive_data(await reader.read(65536))
        writer.write(connection.data_to_send())
        await writer.drain()
        if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
            return


async def _answers(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connection: h2.connection.H2Connection,
    streams: dict[int, str | None],
    answered_ms: list[float],
) -> None:
    """Read answers until every stream has its grpc-status (or was reset); the time each
    answer came, from when all the streams were sent, in `answered_ms`."""
    sent = time.monotonic()
    waiting = set(streams)
    while waiting:
        chunk = await reader.read(65536)
        if not chunk:
            return
        for event in connection.receive_data(chunk):
            stream = getattr(event, "stream_id", None)
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                streams[event.stream_id] = grpc_status(event.headers) or streams[event.stream_id]
            elif isinstance(event, h2.events.StreamReset) and not streams[event.stream_id]:
                # (after the trailers, RST_STREAM NO_ERROR only says "stop sending")
                streams[event.stream_id] = f"RST_STREAM {event.error_code}"
            if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                if stream in waiting:
                    answered_ms.append((time.monotonic() - sent) * 1000)
                waiting.discard(stream)
        writer.write(connection.data_to_send())
        await writer.drain()
