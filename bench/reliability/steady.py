"""The steady scenario: Sign's maximum rate measured with h2load, then a paced soak at a
fraction of it; outcomes from the server's per-RPC log lines, memory of every worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.framing import grpc_frame
from bench.h2load import grpc_load, rss_kib, shown_mib
from harness.server import ServerProcess
from sdksign.v1 import signature_service_pb2 as pb

from .common import MEETING, Outcomes, Row, Soak
from .h2load import H2load, run_h2load
from .server import scenario_config, serving

CONNECTIONS = 4
STREAMS = 16
SETTLE = 0.5  # seconds for the last rpc lines of an h2load run to reach the log


def sign_body(directory: Path) -> Path:
    request = pb.SignRequest(
        app="meeting", meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
    )
    path = directory / "sign.grpc"
    path.write_bytes(grpc_frame(request.SerializeToString()))
    return path


async def steady(soak: Soak, row: Row) -> None:
    settings = soak.settings
    directory = soak.directory("steady")
    config = scenario_config(soak, "steady")
    async with serving(soak, "steady", config, settings.workers) as server:
        url = f"http://{server.target}/sdksign.v1.SignatureService/Sign"
        body = sign_body(directory)
        rss_before = {index: rss_kib(pid) for index, pid in server.workers().items()}
        seconds = settings.measure_seconds
        maximum = await run_h2load(
            ["-D", str(seconds), "--warm-up-time", "1", *grpc_load(body, CONNECTIONS, STREAMS)],
            url,
            directory / "measure.log",
            seconds + 1,
        )
        rate = maximum.rps * settings.steady_fraction
        row.note(
            f"max {maximum.rps:,.0f} Sign/s ({seconds} s), soak at {rate:,.0f}/s "
            f"({settings.steady_fraction:.0%}) for {settings.steady_seconds} s"
        )
        await _soak(server, body, url, rate, directory, row, settings.steady_seconds)
        rss_after = {index: rss_kib(pid) for index, pid in server.workers().items()}
        row.note("RSS " + _rss(rss_before, rss_after))
        restarted = len(server.events("worker exited"))
        row.note(f"{restarted} worker(s) restarted")
        if restarted:
            row.miss(f"{restarted} worker(s) died and were restarted")


async def _soak(
    server: ServerProcess,
    body: Path,
    url: str,
    rate: float,
    directory: Path,
    row: Row,
    seconds: int,
) -> None:
    await asyncio.sleep(SETTLE)  # calls cut short at the end of the measuring run are logged
    logged_before = sum(server.rpc_codes().values())
    requests = max(int(rate * seconds), CONNECTIONS)
    options = ["-n", str(requests), "--rps", f"{max(rate / CONNECTIONS, 1):.0f}"]
    options += grpc_load(body, CONNECTIONS, STREAMS)
    started = time.monotonic()
    result = await run_h2load(options, url, directory / "soak.log", seconds * 2)
    elapsed = time.monotonic() - started
    await asyncio.sleep(SETTLE)
    row.outcomes = _outcomes(server, logged_before, result)
    row.note(f"{result.total / elapsed:,.0f} calls/s reached")
    if row.outcomes.calls > result.total:
        row.note(f"server logged {row.outcomes.calls:,} calls, h2load sent {result.total:,}")
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")


def _outcomes(server: ServerProcess, logged_before: int, result: H2load) -> Outcomes:
    """Codes from the server's rpc lines (gRPC answers HTTP 200 whatever the code); the calls
    h2load sent beyond those, hung or transport errors."""
    outcomes = Outcomes(latencies_ms=result.latencies_ms)
    codes = server.rpc_codes(after=logged_before)
    outcomes.counts.update(codes)
    result.add_unanswered(outcomes, sum(codes.values()))
    return outcomes


def _rss(before: dict[int, int | None], after: dict[int, int | None]) -> str:
    return ", ".join(
        f"w{index} {shown_mib(before.get(index))}→{shown_mib(after.get(index))} MiB"
        for index in sorted(before | after)
    )
