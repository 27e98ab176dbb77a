"""h2load (Debian's nghttp2-client), the load generator of `make bench`, bench/compare.py and
`make soak`: its gRPC options, a run of it read back (its summary and its per-request log),
the server's failures from its own log lines, and the CPU time and memory of its processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# What a gRPC client sends with every call (the body is a framed message).
GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
_H2LOAD_RATE = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored(?:, (\d+) timeout)?"
)
_RPC_CODE = re.compile(r'"code":"(\w+)"')


@dataclass
class Sample:
    """One h2load run: its throughput, latencies and counts, and the server's CPU time."""

    rps: float
    latencies_ms: list[float]
    requests: int
    failed: int
    cpu_seconds: float


@dataclass
class Row:
    """A row of the table: the median round's throughput, latency over every round."""

    name: str
    samples: list[Sample]

    @property
    def rps(self) -> float:
        return statistics.median(sample.rps for sample in self.samples)

    @property
    def requests(self) -> int:
        return sum(sample.requests for sample in self.samples)

    @property
    def failed(self) -> int:
        return sum(sample.failed for sample in self.samples)

    def latency_ms(self, percent: int) -> float:
        latencies = sorted(ms for sample in self.samples for ms in sample.latencies_ms)
        return statistics.quantiles(latencies, n=100, method="inclusive")[percent - 1]

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request, in microseconds."""
        return 1e6 * sum(s.cpu_seconds for s in self.samples) / max(self.requests, 1)


def h2load_grpc(
    address: str,
    path: str,
    body: Path,
    tmp: Path,
    args: argparse.Namespace,
    server_log: Path,
    pids: list[int],
    rps: float | None = None,
) -> Sample:
    """One round of a row: h2load over HTTP/2 with gRPC framing; failures from the server's log."""
    codes_before = logged_codes(server_log)
    command = grpc_load(body, args.clients, args.streams)
    if rps is not None:
        command += ["--rps", f"{max(rps / args.clients, 1):.0f}"]
    sample = run_h2load(command, f"http://{address}{path}", tmp, args, pids)
    time.sleep(0.5)  # the last log lines reach the file
    codes = logged_codes(server_log) - codes_before
    sample.failed += count_failures(codes, args.clients * args.streams)
    return sample


def grpc_load(body: Path, clients: int, streams: int) -> list[str]:
    """h2load's options for gRPC calls: connections, streams, headers and the framed body."""
    return ["-c", str(clients), "-m", str(streams), *GRPC_HEADERS, "-d", str(body)]


def logged_codes(server_log: Path) -> Counter[str]:
    """The RPCs the server has logged so far, by code."""
    lines = server_log.read_text().splitlines()
    return Counter(
        m[1] for line in lines if '"event":"rpc"' in line and (m := _RPC_CODE.search(line))
    )


def count_failures(codes: Counter[str], in_flight: int) -> int:
    """RPCs logged with a code other than OK or CANCELLED, and CANCELLED past `in_flight`.

    When its time is up, h2load closes its connections with requests still in flight
    (`-c` times `-m` of them at most); the server logs each of those as CANCELLED, and
    h2load counts them as started but not done, not as failed. More CANCELLED than
    that are failures.
    """
    others = sum(n for code, n in codes.items() if code not in ("OK", "CANCELLED"))
    return others + max(codes["CANCELLED"] - in_flight, 0)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of the processes `pids` so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def run_h2load(
    options: list[str], url: str, tmp: Path, args: argparse.Namespace, pids: list[int]
) -> Sample:
    """Run h2load for --duration after --warmup; requests/s from its summary, latency from its
    log, and the CPU time `pids` spent over the measured seconds."""
    log = tmp / "h2load.log"
    command = [
        "h2load",
        "-t",
        "1",
        "-D",
        str(args.duration),
        "--warm-up-time",
        str(args.warmup),
        "--log-file",
        str(log),
        *options,
        url,
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        time.sleep(args.warmup)
        cpu_before = cpu_seconds(pids)
        stdout, stderr = process.communicate(timeout=args.duration + 60)
        cpu = cpu_seconds(pids) - cpu_before
    if process.returncode != 0:
        sys.exit(f"bench: h2load failed for {url}:\n{stdout}\n{stderr}")
    try:
        output = read_h2load(stdout, stderr, log)
    except ValueError as exc:
        sys.exit(f"bench: {exc}")
    log.unlink()
    return Sample(
        rps=output.rps,
        latencies_ms=[ms for _, _, ms in output.log],
        requests=output.succeeded,
        failed=output.failed,
        cpu_seconds=cpu,
    )


@dataclass
class H2loadOutput:
    """What h2load reported: its summary's figures and its --log-file, one entry a request."""

    rps: float
    total: int
    succeeded: int
    failed: int  # failed or errored
    timed_out: int
    # (start in µs since the epoch, HTTP status (0 or less: no answer), latency in ms)
    log: list[tuple[int, int, float]]


def read_h2load(stdout: str, stderr: str, log: Path) -> H2loadOutput:
    """h2load's summary from its output, and its per-request log; ValueError without one."""
    rate, requests = _H2LOAD_RATE.search(stdout), _H2LOAD_REQUESTS.search(stdout)
    if rate is None or requests is None:
        raise ValueError(f"cannot read h2load's output:\n{stdout[-2000:]}\n{stderr[-500:]}")
    total, succeeded, failed, errored, timed_out = (int(n or 0) for n in requests.groups())
    fields = [line.split("\t") for line in log.read_text().splitlines() if line]
    return H2loadOutput(
        rps=float(rate[1]),
        total=total,
        succeeded=succeeded,
        failed=failed + errored,
        timed_out=timed_out,
        log=[(int(f[0]), int(f[1]), int(f[2]) / 1000) for f in fields],
    )


def rss_kib(pid: int) -> int | None:
    """Resident memory of `pid` in KiB (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def shown_mib(kib: int | None) -> str:
    """A figure of rss_kib() for a table: MiB with one decimal, or "gone"."""
    return "gone" if kib is None else f"{kib / 1024:.1f}"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def h2load_version() -> str:
    result = subprocess.run(["h2load", "--version"], capture_output=True, text=True)
    return result.stdout.strip().replace("h2load ", "h2load ")
