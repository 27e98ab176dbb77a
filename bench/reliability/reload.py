"""The SIGHUP scenario: under load, a valid config change reloaded by every worker, then an
invalid one refused by every worker while the previous config goes on serving."""

from __future__ import annotations

import asyncio
import signal
import time

from harness.server import ServerProcess
from sdksign.client import AsyncClient, Role

from .common import MEETING, Outcomes, Row, Soak
from .load import Load, outcome_of
from .server import config_text, serving, write_config

WORKERS = 2
RELOAD_TIMEOUT = 10.0
# Fresh connections that sign with the app only the new config has (the kernel spreads them
# over the workers).
PROBES = 6
BETWEEN = 1.0  # seconds of load between the steps


async def sighup(soak: Soak, row: Row) -> None:
    settings = soak.settings
    config = soak.directory("sighup") / "sdksign.toml"
    write_config(config, config_text())
    probes = Outcomes()
    async with (
        serving(soak, "sighup", config, WORKERS) as server,
        Load(server.target, settings.load_rate, settings.deadline) as load,
    ):
        load.start()
        await asyncio.sleep(BETWEEN)
        write_config(config, config_text(meeting_b=True, clock_skew=20))
        await _reload(server, row, "configuration reloaded", "valid change")
        await _probe(server.target, settings.deadline, probes, row, "after the reload")
        await asyncio.sleep(BETWEEN)
        write_config(config, config_text(meeting_b=True, clock_skew=20) + _INVALID)
        await _reload(server, row, "reload refused", "invalid change")
        await _probe(server.target, settings.deadline, probes, row, "after the refusal")
        await asyncio.sleep(BETWEEN)
        await load.finish()
    row.outcomes = load.outcomes()
    row.outcomes.counts.update(probes.counts)
    row.outcomes.latencies_ms += probes.latencies_ms
    if row.outcomes.failed:
        row.miss(f"{row.outcomes.failed:,} calls failed")


# An app whose secret variable is not set: the whole file must be refused.
_INVALID = """
[[apps]]
name = "broken"
kind = "meeting"
sdk_key = "SoakBrokenKey01234567"
secret_env = "SOAK_UNSET_SECRET_VARIABLE"
"""


async def _reload(server: ServerProcess, row: Row, event: str, what: str) -> None:
    """SIGHUP the parent; wait until every worker logs a line starting with `event`."""
    before = _workers_logging(server, event)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while True:
        seen = {worker for worker, _ in _workers_logging(server, event) - before}
        if len(seen) >= WORKERS:
            row.note(f"{what}: `{event}` from {len(seen)}/{WORKERS} workers")
            return
        if time.monotonic() > deadline:
            row.miss(f"{what}: `{event}` from {len(seen)}/{WORKERS} workers")
            return
        await asyncio.sleep(0.05)


def _workers_logging(server: ServerProcess, event: str) -> set[tuple[int, str]]:
    """(worker, timestamp) of every line whose event starts with `event`."""
    return {
        (int(line.get("worker", 0)), str(line.get("timestamp")))
        for line in server.lines()
        if str(line.get("event", "")).startswith(event)
    }


async def _probe(address: str, deadline: float, probes: Outcomes, row: Row, when: str) -> None:
    """Sign with the app only the reloaded config has, over PROBES fresh connections."""
    ok = 0
    for _ in range(PROBES):
        async with AsyncClient(address, timeout=deadline) as client:
            started = time.monotonic()
            outcome = await outcome_of(
                client.sign_meeting(MEETING, Role.PARTICIPANT, app="meeting-b"), deadline
            )
            probes.add(outcome, (time.monotonic() - started) * 1000)
            ok += outcome == "OK"
    row.note(f"app of the new config signs {when}: {ok}/{PROBES}")
    if ok < PROBES:
        row.miss(f"the new config's app failed {PROBES - ok}/{PROBES} times {when}")
