"""h2load as the soak runs it: one thread, a per-request log, bounded in time, its report read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bench.h2load import read_h2load

from .common import HUNG, TRANSPORT, Outcomes

H2LOAD_MARGIN = 60.0  # seconds past its planned length before h2load is killed


@dataclass
class H2load:
    """One h2load run: requests sent, those it timed out, its rate, and each answer's HTTP
    status, start (µs since the epoch) and latency, from its log."""

    total: int
    timed_out: int
    rps: float
    statuses: list[int]
    starts_us: list[int]
    latencies_ms: list[float]

    def add_unanswered(self, outcomes: Outcomes, answered: int) -> None:
        """The requests beyond `answered`: hung where h2load timed them out, else transport
        errors (refused or reset connections, streams reset)."""
        missing = max(self.total - answered, 0)
        hung = min(self.timed_out, missing)
        outcomes.counts[HUNG] += hung
        outcomes.counts[TRANSPORT] += missing - hung


async def run_h2load(options: list[str], url: str, log: Path, planned: float) -> H2load:
    """h2load with `options`; killed if it runs far longer than `planned` seconds."""
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
    output = read_h2load(stdout, stderr, log)
    answers = [entry for entry in output.log if entry[1] > 0]  # status 0 or -1: none
    return H2load(
        total=output.total,
        timed_out=output.timed_out,
        rps=output.rps,
        statuses=[status for _, status, _ in answers],
        starts_us=[start for start, _, _ in answers],
        latencies_ms=[ms for _, _, ms in answers],
    )
