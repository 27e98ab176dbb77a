"""The steady scenario: Sign's maximum rate measured with h2load, then a paced soak at a
fraction of it; outcomes from the server's per-RPC log lines, memory of every worker."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

from _soak_common import HUNG, MEETING, TRANSPORT, Outcomes, Row, Soak
from _soak_server import Server, rss_mib, scenario_config, serving

from bench import GRPC_HEADERS, grpc_frame
from sdksign.v1 import signature_service_pb2 as pb

CONNECTIONS = 4
STREAMS = 16
H2LOAD_MARGIN = 60.0  # seconds past its planned length before h2load is killed
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored"
)
_RATE = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")


@dataclass
class H2load:
    """What one h2load run reports: its counts, its rate and each request's latency."""

    total: int
    done: int
    failed: int  # answered with an HTTP status other than 2xx
    errored: int  # reset, refused or timed out
    rps: float
    latencies_ms: list[float]
    statuses: list[int]
    starts_us: list[int]


async def run_h2load(options: list[str], url: str, log: Path, planned: float) -> H2load:
    """h2load, one thread, with `options`; killed if it runs far longer than `planned` seconds."""
    command = ["h2load", "-t", "1", "--log-file", str(log), *options, url]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), planned + H2LOAD_MARGIN)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return parse_h2load(stdout.decode(), stderr.decode(), log)


def parse_h2load(stdout: str, stderr: str, log: Path) -> H2load:
    counts, rate = _REQUESTS.search(stdout), _RATE.search(stdout)
    if counts is None or rate is None:
        raise RuntimeError(f"cannot read h2load's output: {stdout[-500:]} {stderr[-500:]}")
    total, _, done, _, failed, errored = (int(n) for n in counts.groups())
    records = [line.split("\t") for line in log.read_text().splitlines() if line]
    return H2load(
        total=total,
        done=done,
        failed=failed,
        errored=errored,
        rps=float(rate.group(1)),
        latencies_ms=[int(r[2]) / 1000 for r in records],
        statuses=[int(r[1]) for r in records],
        starts_us=[int(r[0]) for r in records],
    )


def sign_body(directory: Path) -> Path:
    request = pb.SignRequest(
        app="meeting", meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
    )
    path = directory / "sign.grpc"
    path.write_bytes(grpc_frame(request.SerializeToString()))
    return path


def grpc_options(body: Path) -> list[str]:
    return ["-c", str(CONNECTIONS), "-m", str(STREAMS), *GRPC_HEADERS, "-d", str(body)]


async def steady(soak: Soak, row: Row) -> None:
    settings = soak.settings
    directory = soak.directory("steady")
    config = scenario_config(soak, "steady")
    async with serving(soak, "steady", config, settings.workers) as server:
        url = f"http://{server.address}/sdksign.v1.SignatureService/Sign"
        body = sign_body(directory)
        rss_before = {index: rss_mib(pid) for index, pid in server.workers().items()}
        seconds = settings.measure_seconds
        maximum = await run_h2load(
            ["-D", str(seconds), "--warm-up-time", "1", *grpc_options(body)],
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
        rss_after = {index: rss_mib(pid) for index, pid in server.workers().items()}
        row.note("RSS " + _rss(rss_before, rss_after))


async def _soak(
    server: Server, body: Path, url: str, rate: float, directory: Path, row: Row, seconds: int
) -> None:
    logged_before = sum(server.rpc_codes().values())
    requests = max(int(rate * seconds), CONNECTIONS)
    options = ["-n", str(requests), "--rps", f"{max(rate / CONNECTIONS, 1):.0f}"]
    started = time.monotonic()
    result = await run_h2load(
        [*options, *grpc_options(body)], url, directory / "soak.log", seconds * 2
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.5)  # the last lines reach the log
    row.outcomes = _outcomes(server, logged_before, result)
    row.note(f"{result.total / elapsed:,.0f} calls/s reached")
    if row.outcomes.calls != result.total:
        row.note(f"server logged {row.outcomes.calls:,} of h2load's {result.total:,}")
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")


def _outcomes(server: Server, logged_before: int, result: H2load) -> Outcomes:
    """Codes from the server's rpc lines; h2load's own errors and unanswered requests."""
    outcomes = Outcomes(latencies_ms=result.latencies_ms)
    outcomes.counts.update(server.rpc_codes(after=logged_before))
    outcomes.counts[TRANSPORT] += result.errored + result.failed
    outcomes.counts[HUNG] += result.total - result.done
    return outcomes


def _rss(before: dict[int, float | None], after: dict[int, float | None]) -> str:
    def mib(value: float | None) -> str:
        return "gone" if value is None else f"{value:.1f}"

    return ", ".join(
        f"w{index} {mib(before.get(index))}→{mib(after.get(index))} MiB"
        for index in sorted(before | after)
    )
