"""A replica killed behind the real Envoy (bench/fleet.py's Fleet): Zoom's sample JSON `POST /`
through the gateway, paced by h2load over HTTP/1.1, outcomes by HTTP status. On a fresh gateway
the kill comes right after the first requests; on a warm one, after seconds of traffic."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from _soak_common import MEETING, OK, Outcomes, Row, Settings, Soak
from _soak_h2load import H2load, run_h2load
from _soak_server import scenario_config

CONNECTIONS = 8
FRESH_LEAD = 0.5  # seconds of load before the kill, fresh gateway
WARM_LEAD = 3.0  # and warm
VICTIM = 0
REPLICA_WORKERS = 1


async def replica_kill_fresh(soak: Soak, row: Row) -> None:
    await _replica_kill(soak, row, FRESH_LEAD, "replica-kill-fresh")


async def replica_kill_warm(soak: Soak, row: Row) -> None:
    await _replica_kill(soak, row, WARM_LEAD, "replica-kill-warm")


async def _replica_kill(soak: Soak, row: Row, lead: float, name: str) -> None:
    try:
        import fleet
    except ImportError:
        row.miss("bench/fleet.py (Fleet) is not in this checkout: not run")
        return
    settings = soak.settings
    directory = soak.directory(name)
    config = scenario_config(soak, name)
    # Fleet's calls block; they bound their own waits (start, stop) in time.
    with fleet.Fleet(
        settings.replicas, REPLICA_WORKERS, config=config, env=soak.secrets, workdir=directory
    ) as gateway:
        soak.logs += [replica.log_path for replica in gateway.replicas]
        soak.logs.append(directory / "envoy.log")
        load = asyncio.create_task(_load(gateway.gateway_port, directory, settings, lead))
        await asyncio.sleep(lead)
        killed = time.time()
        gateway.kill_replica(VICTIM)
        result = await load
        stats = gateway.stats()
    _report(row, result, killed, settings.gateway_window, lead)
    row.note(
        f"Envoy: {stats.get('upstream_rq_retry', 0)} retries, "
        f"{stats.get('health_check.failure', 0)} failed health checks"
    )


async def _load(port: int, directory: Path, settings: Settings, lead: float) -> H2load:
    """JSON `POST /` at the gateway rate, `lead` seconds before the kill and the window after."""
    rate, seconds = settings.gateway_rate, lead + settings.gateway_window
    body = directory / "sample.json"
    body.write_text(json.dumps({"meetingNumber": MEETING, "role": 0}))
    options = ["--h1", "-c", str(CONNECTIONS), "-n", str(int(rate * seconds))]
    options += ["--rps", f"{max(rate / CONNECTIONS, 1):.0f}", "-N", f"{settings.deadline:.0f}"]
    options += ["-H", "content-type: application/json", "-d", str(body)]
    return await run_h2load(options, f"http://127.0.0.1:{port}/", directory / "h2load.log", seconds)


def _report(row: Row, result: H2load, killed: float, window: float, lead: float) -> None:
    row.outcomes = _outcomes(result)
    around = [
        ms
        for start, ms in zip(result.starts_us, result.latencies_ms, strict=True)
        if killed - 0.5 <= start / 1e6 <= killed + window
    ]
    row.note(f"replica {VICTIM} SIGKILLed after {lead:.1f} s of load")
    row.note(f"max latency around the kill {max(around, default=0):.0f} ms")
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} requests failed")


def _outcomes(result: H2load) -> Outcomes:
    """HTTP 200 is OK, any other status counts by its number; requests without an answer are
    hung or transport errors."""
    outcomes = Outcomes(latencies_ms=list(result.latencies_ms))
    for status in result.statuses:
        outcomes.counts[OK if status == 200 else f"HTTP {status}"] += 1
    result.add_unanswered(outcomes, len(result.statuses))
    return outcomes
