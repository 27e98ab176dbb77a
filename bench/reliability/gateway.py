"""A replica killed or drained behind the real Envoy (harness/fleet.py's Fleet): Zoom's sample
JSON `POST /` through the gateway, paced by h2load over HTTP/1.1, outcomes by HTTP status. On
a fresh gateway the kill comes right after the first requests; on a warm one, after seconds of
traffic. The drain (SIGTERM) comes on a warm gateway, and the load goes on past the drain's
end, when the replica closes its listener: nothing may fail then either."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from harness.fleet import Fleet
from sdksign.server.config.model import DEFAULT_DRAIN

from .common import MEETING, OK, Outcomes, Row, Settings, Soak
from .h2load import H2load, run_h2load
from .server import scenario_config

CONNECTIONS = 8
FRESH_LEAD = 0.5  # seconds of load before the kill, fresh gateway
WARM_LEAD = 3.0  # and warm
VICTIM = 0
REPLICA_WORKERS = 1


async def replica_kill_fresh(soak: Soak, row: Row) -> None:
    await _replica_loss(soak, row, FRESH_LEAD, "replica-kill-fresh")


async def replica_kill_warm(soak: Soak, row: Row) -> None:
    await _replica_loss(soak, row, WARM_LEAD, "replica-kill-warm")


async def replica_drain(soak: Soak, row: Row) -> None:
    await _replica_loss(soak, row, WARM_LEAD, "replica-drain", drain=True)


async def _replica_loss(soak: Soak, row: Row, lead: float, name: str, drain: bool = False) -> None:
    settings = soak.settings
    directory = soak.directory(name)
    config = scenario_config(soak, name)
    # Fleet's calls block; they bound their own waits (start, stop) in time.
    with Fleet(
        settings.replicas, REPLICA_WORKERS, config=config, env=soak.secrets, workdir=directory
    ) as gateway:
        soak.logs += [replica.log_path for replica in gateway.replicas]
        soak.logs.append(directory / "envoy.log")
        # A drained replica serves DEFAULT_DRAIN seconds more: the load outlasts that.
        window = DEFAULT_DRAIN + 2.0 if drain else settings.gateway_window
        load = asyncio.create_task(_load(gateway.gateway_port, directory, lead, window, settings))
        await asyncio.sleep(lead)
        killed = time.time()
        (gateway.drain_replica if drain else gateway.kill_replica)(VICTIM)
        result = await load
        stats = gateway.stats()
    _report(
        row, result, killed, window, f"replica {VICTIM} {'SIGTERMed' if drain else 'SIGKILLed'}"
    )
    row.note(
        f"Envoy: {stats.get('upstream_rq_retry', 0)} retries, "
        f"{stats.get('health_check.failure', 0)} failed health checks"
    )


async def _load(
    port: int, directory: Path, lead: float, window: float, settings: Settings
) -> H2load:
    """JSON `POST /` at the gateway rate, `lead` seconds before the loss and `window` after."""
    rate, seconds = settings.gateway_rate, lead + window
    body = directory / "sample.json"
    body.write_text(json.dumps({"meetingNumber": MEETING, "role": 0}))
    options = ["--h1", "-c", str(CONNECTIONS), "-n", str(int(rate * seconds))]
    options += ["--rps", f"{max(rate / CONNECTIONS, 1):.0f}", "-N", f"{settings.deadline:.0f}"]
    options += ["-H", "content-type: application/json", "-d", str(body)]
    return await run_h2load(options, f"http://127.0.0.1:{port}/", directory / "h2load.log", seconds)


def _report(row: Row, result: H2load, killed: float, window: float, what: str) -> None:
    row.outcomes = _outcomes(result)
    around = [
        ms
        for start, ms in zip(result.starts_us, result.latencies_ms, strict=True)
        if killed - 0.5 <= start / 1e6 <= killed + window
    ]
    row.note(f"{what}, then {window:.0f} s more of load")
    row.note(f"max latency after it {max(around, default=0):.0f} ms")
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
