"""`make bench`: load a real sdksign server with h2load and print one table.

Rows, all from one run against one server:
- Health/Check: grpc.health.v1.Health/Check on the same server, the framework floor;
- Sign: a Meeting SDK web token (participant);
- Verify: a valid token;
- Sign at half load: Sign paced at half its measured maximum, for p99 under normal load;
- Zoom sample: with ZOOM_SAMPLE_DIR set to a checkout of zoom/meetingsdk-auth-endpoint-sample
  (npm-installed), its `POST /` loaded over HTTP/1.1 with the same number of requests in flight.

The load generator is h2load (Debian's nghttp2-client) in its own process, speaking HTTP/2
with gRPC framing; latencies come from its per-request log. Errors are counted from the
server's own log lines (gRPC answers HTTP 200 even when the call fails).

The saturated rows run in interleaved rounds (floor, Sign, Verify, peer; again), and each
row reports the median round: this machine's speed drifts by more than the differences
measured, and interleaving exposes every row to the same drift. Each row also reports
the server's CPU time per request (its processes' user + system time over the
measured seconds), which drifts less than throughput does.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
SDK_KEY = "BenchMeetingKey012345"
MEETING = "123456789"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the rows")
    parser.add_argument("--duration", type=int, default=5, help="seconds per row and round")
    parser.add_argument("--warmup", type=int, default=1, help="seconds before each measurement")
    parser.add_argument("--clients", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--streams", type=int, default=16, help="requests in flight per connection")
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=0,
        help="afterwards, send this many Sign requests and report each worker's resident memory",
    )
    args = parser.parse_args()
    for tool in ("h2load",):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make bench installs Debian's nghttp2-client)")

    secret = secrets.token_urlsafe(32)
    sample_dir = os.environ.get("ZOOM_SAMPLE_DIR")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sdksign-bench-")))
        address, log_path, pids = stack.enter_context(sdksign_server(tmp, secret, args.workers))
        bodies = request_bodies(address, tmp)
        memory_before = {pid: rss_kib(pid) for pid in pids}
        loads: list[tuple[str, Callable[[], Sample]]] = [
            (
                name,
                functools.partial(
                    h2load_grpc, address, path, bodies[body], tmp, args, log_path, pids
                ),
            )
            for name, path, body in (
                ("Health/Check (floor)", "/grpc.health.v1.Health/Check", "health"),
                ("Sign", "/sdksign.v1.SignatureService/Sign", "sign"),
                ("Verify", "/sdksign.v1.SignatureService/Verify", "verify"),
            )
        ]
        if sample_dir:
            port, node = stack.enter_context(zoom_sample(Path(sample_dir), secret))
            loads.append(
                (
                    "Zoom sample POST / (peer)",
                    functools.partial(zoom_sample_load, port, node, tmp, args),
                )
            )
        rows = [Row(name, []) for name, _ in loads]
        for _ in range(args.rounds):
            for row, (_, load) in zip(rows, loads, strict=True):
                row.samples.append(load())
        sign = rows[1]
        half = Row("Sign at half load", [])
        for _ in range(args.rounds):
            half.samples.append(
                h2load_grpc(
                    address,
                    "/sdksign.v1.SignatureService/Sign",
                    bodies["sign"],
                    tmp,
                    args,
                    log_path,
                    pids,
                    rps=sign.rps / 2,
                )
            )
        rows.insert(3, half)
        memory = ""
        if args.memory_requests:
            memory = memory_run(address, bodies["sign"], tmp, args, pids, memory_before)

    print(report(rows, args, memory))
    return 0


def admin_flag(checkout: Path | None) -> list[str]:
    """The admin listener on a free port (9464 may be taken: by the other side of
    compare.py, by a server of the machine's), for a checkout whose server has one."""
    server = (checkout or ROOT) / "server" / "sdksign" / "server"
    return ["--admin-listen", "127.0.0.1:0"] if (server / "_admin.py").exists() else []


@contextmanager
def sdksign_server(
    tmp: Path, secret: str, workers: int, checkout: Path | None = None, config: Path | None = None
) -> Iterator[tuple[str, Path, list[int]]]:
    """`sdksign serve` on a free loopback port, its log in a file; stopped with SIGTERM.

    With `checkout`, the server's code comes from that checkout of this repository
    (its server/ and client/ first on the path) instead of the installed package. With
    `config`, it serves that file (whose app takes SDK_KEY and $ZOOM_MEETING_SDK_SECRET).
    """
    log_path = tmp / "server.log"
    env = {
        **os.environ,
        "ZOOM_MEETING_SDK_KEY": SDK_KEY,
        "ZOOM_MEETING_SDK_SECRET": secret,
        "SDKSIGN_CONFIG": "",
    }
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(checkout / part) for part in ("server", "client"))
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sdksign.server",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                str(workers),
                *(["--config", str(config)] if config else []),
                *admin_flag(checkout),
            ],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log_path.read_text()
            if text.count('"event":"listening"') >= workers:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"bench: the server did not start:\n{text}")
            time.sleep(0.1)
        address = re.findall(r'"address":"([^"]+)"', text)[-1]
        pids = [int(pid) for pid in re.findall(r'"pid":(\d+)', text)]
        yield address, log_path, pids
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


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


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, big-endian length, bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def request_bodies(address: str, tmp: Path) -> dict[str, Path]:
    """The three request bodies, each checked once with a real client call."""
    sign = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
    )
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        token = stub.Sign(sign, timeout=10).token
        verify = pb.VerifyRequest(token=token)
        if not stub.Verify(verify, timeout=10).valid:
            sys.exit("bench: the server does not accept its own token")
        health = health_pb2.HealthCheckRequest()
        status = health_pb2_grpc.HealthStub(channel).Check(health, timeout=10).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            sys.exit("bench: the server is not serving")
    bodies = {}
    for name, message in (("sign", sign), ("verify", verify), ("health", health)):
        path = tmp / f"{name}.grpc"
        path.write_bytes(grpc_frame(message.SerializeToString()))
        bodies[name] = path
    return bodies


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


def memory_run(
    address: str,
    body: Path,
    tmp: Path,
    args: argparse.Namespace,
    pids: list[int],
    before: dict[int, int | None],
) -> str:
    """Send --memory-requests Sign calls; report each worker's resident memory before and after."""
    sizes_after_warmup = {pid: rss_kib(pid) for pid in pids}
    command = [
        "h2load",
        "-t",
        "1",
        "-n",
        str(args.memory_requests),
        *grpc_load(body, args.clients, args.streams),
        f"http://{address}/sdksign.v1.SignatureService/Sign",
    ]
    started = time.monotonic()
    subprocess.run(command, capture_output=True, check=True, timeout=3600)
    seconds = time.monotonic() - started
    lines = [
        f"Resident memory per worker, {args.memory_requests:,} more Sign requests "
        f"({seconds:.0f} s) after the rows above:",
        "",
        "| worker pid | at start | after the rows | after the extra requests |",
        "| --- | ---: | ---: | ---: |",
    ]
    for pid in pids:
        lines.append(
            f"| {pid} | {shown_mib(before[pid])} MiB | {shown_mib(sizes_after_warmup[pid])} MiB "
            f"| {shown_mib(rss_kib(pid))} MiB |"
        )
    return "\n".join(lines)


@contextmanager
def zoom_sample(sample: Path, secret: str) -> Iterator[tuple[int, int]]:
    """Zoom's sample endpoint (Node.js, Express) on a free loopback port: (port, pid)."""
    if not (sample / "src" / "index.js").exists() or not (sample / "node_modules").exists():
        sys.exit(f"bench: {sample} is not an npm-installed meetingsdk-auth-endpoint-sample")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PORT": str(port),
        "ZOOM_MEETING_SDK_KEY": SDK_KEY,
        "ZOOM_MEETING_SDK_SECRET": secret,
    }
    process = subprocess.Popen(
        ["node", "src/index.js"],
        cwd=sample,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("bench: Zoom's sample did not start")
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def zoom_sample_load(port: int, pid: int, tmp: Path, args: argparse.Namespace) -> Sample:
    """One round of the peer row: POST / over HTTP/1.1, as many requests in flight as ours."""
    body = tmp / "zoom.json"
    body.write_text(json.dumps({"meetingNumber": MEETING, "role": 0}))
    options = [
        "--h1",
        "-c",
        str(args.clients * args.streams),
        "-H",
        "content-type: application/json",
        "-d",
        str(body),
    ]
    return run_h2load(options, f"http://127.0.0.1:{port}/", tmp, args, [pid])


def report(rows: list[Row], args: argparse.Namespace, memory: str) -> str:
    """The Markdown the run prints (and BENCHMARKS.md keeps)."""
    floor = rows[0].rps
    peer = next((row.rps for row in rows if "Zoom" in row.name), None)
    lines = [
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}, {h2load_version()}",
        f"Server: sdksign serve --workers {args.workers}; load: h2load -t 1 -c {args.clients} "
        f"-m {args.streams} (HTTP/1.1 peer: -c {args.clients * args.streams}), "
        f"{args.rounds} interleaved rounds of {args.warmup} s warm-up + {args.duration} s per "
        "row, on the same cores; requests/s is the median round's",
        "",
        "| row | requests/s | rounds | p50 ms | p99 ms | requests | failed | server CPU µs/request "
        "| vs floor | vs Zoom sample |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        versus_peer = f"{row.rps / peer:.2f}x" if peer else "-"
        rounds = ", ".join(f"{sample.rps:,.0f}" for sample in row.samples)
        lines.append(
            f"| {row.name} | {row.rps:,.0f} | {rounds} | {row.latency_ms(50):.2f} | "
            f"{row.latency_ms(99):.2f} | {row.requests:,} | {row.failed} | {row.cpu_us:.0f} | "
            f"{row.rps / floor:.2f} | {versus_peer} |"
        )
    if memory:
        lines += ["", memory]
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def h2load_version() -> str:
    result = subprocess.run(["h2load", "--version"], capture_output=True, text=True)
    return result.stdout.strip().replace("h2load ", "h2load ")


if __name__ == "__main__":
    sys.exit(main())
