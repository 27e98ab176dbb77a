"""What every `make soak` scenario shares: outcomes of calls, its row of the table, its settings."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

OK = "OK"
# No answer by the generous deadline every call is given.
HUNG = "hung"
# The call failed below gRPC or HTTP: a refused or reset connection, an exception in the client.
TRANSPORT = "transport error"

MEETING = "123456789"
SIGN = "/sdksign.v1.SignatureService/Sign"
VERIFY = "/sdksign.v1.SignatureService/Verify"
HEALTH = "/grpc.health.v1.Health/Check"
ZOOM_SAMPLE = "/sdksign.v1.ZoomSampleService/Sign"


@dataclass
class Outcomes:
    """Every call of a scenario, counted by outcome (OK, a status code, hung, transport error)."""

    counts: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, outcome: str, ms: float | None = None) -> None:
        self.counts[outcome] += 1
        if ms is not None:
            self.latencies_ms.append(ms)

    @property
    def calls(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> int:
        return self.counts[OK]

    def failures(self) -> dict[str, int]:
        """Every outcome other than OK, the most frequent first."""
        return {code: n for code, n in self.counts.most_common() if code != OK and n}

    @property
    def failed(self) -> int:
        return self.calls - self.ok

    def percentile_ms(self, percent: int) -> float | None:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else None
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return cuts[percent - 1]

    def max_ms(self) -> float | None:
        return max(self.latencies_ms, default=None)


@dataclass
class Row:
    """One scenario's line of the table; `misses` are the targets it did not meet."""

    scenario: str
    outcomes: Outcomes = field(default_factory=Outcomes)
    notes: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    # False where calls are not what the row counts (the log scan): its cells show "-".
    counts_calls: bool = True

    def note(self, text: str) -> None:
        self.notes.append(text)

    def miss(self, text: str) -> None:
        self.misses.append(text)

    @property
    def met(self) -> bool:
        return not self.misses

    def cells(self) -> list[str]:
        verdict = "target met" if self.met else "**MISSED**: " + "; ".join(self.misses)
        notes = "; ".join([verdict, *self.notes])
        if not self.counts_calls:
            return [self.scenario, "-", "-", "-", "-", notes]
        outcomes = self.outcomes
        return [
            self.scenario,
            f"{outcomes.calls:,}",
            f"{outcomes.ok:,}",
            failed_cell(outcomes),
            latency_cell(outcomes),
            notes,
        ]


def failed_cell(outcomes: Outcomes) -> str:
    failures = outcomes.failures()
    if not failures:
        return "0"
    return f"{outcomes.failed:,} (" + ", ".join(f"{k} {n:,}" for k, n in failures.items()) + ")"


def latency_cell(outcomes: Outcomes) -> str:
    p50, p99 = outcomes.percentile_ms(50), outcomes.percentile_ms(99)
    if p50 is None or p99 is None:
        return "-"
    return f"{p50:.1f} / {p99:.1f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | calls | OK | failed (by code) | p50 / p99 ms | notes |",
        "| --- | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        cells = [" ".join(cell.split()).replace("|", "\\|") for cell in row.cells()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Settings:
    """How long and how hard each scenario runs (`--quick` shortens all of them)."""

    workers: int
    measure_seconds: int
    steady_seconds: int
    steady_fraction: float
    load_rate: float
    kill_window: float
    gateway_rate: float
    gateway_window: float
    replicas: int
    fuzz_count: int
    fuzz_concurrency: int
    deadline: float
    seed: int


@dataclass
class Soak:
    """One run: its settings, its scratch directory, and every log file a server wrote."""

    settings: Settings
    tmp: Path
    # The apps' secrets, by the environment variable that hands each to the servers.
    secrets: dict[str, str] = field(default_factory=dict)
    # What the stand-in of Zoom's API handed out (tokens, ZAKs, codes), by a name for the
    # log scan; never handed to a server, as the secrets are (tens of thousands of them
    # would not fit in an environment).
    handed_out: dict[str, str] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    def directory(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path
