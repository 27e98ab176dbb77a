"""h2load as the soak runs it: one thread, a per-request log, bounded in time, its report read."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from _soak_common import HUNG, TRANSPORT, Outcomes

H2LOAD_MARGIN = 60.0  # seconds past its planned length before h2load is killed
_REQUESTS = re.compile(r"requests: (\d+) total, .*?(?:, (\d+) timeout)?$", re.MULTILINE)
_RATE = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")


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
    counts, rate = _REQUESTS.search(stdout), _RATE.search(stdout)
    if counts is None or rate is None:
        raise RuntimeError(f"cannot read h2load's output: {stdout[-500:]} {stderr[-500:]}")
    records = [line.split("\t") for line in log.read_text().splitlines() if line]
    answers = [r for r in records if int(r[1]) > 0]
    return H2load(
        total=int(counts.group(1)),
        timed_out=int(counts.group(2) or 0),
        rps=float(rate.group(1)),
        statuses=[int(r[1]) for r in answers],
        starts_us=[int(r[0]) for r in answers],
        latencies_ms=[int(r[2]) / 1000 for r in answers],
    )
