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
"""

from __future__ import annotations

import argparse
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
from collections.abc import Iterator
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


@dataclass
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--duration", type=int, default=10, help="seconds per row")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each row")
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
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sdksign-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        with sdksign_server(tmp, secret, args.workers) as (address, log_path, pids):
            bodies = request_bodies(address, tmp)
            memory_before = {pid: rss_kib(pid) for pid in pids}
            for name, path, body in (
                ("Health/Check (floor)", "/grpc.health.v1.Health/Check", bodies["health"]),
                ("Sign", "/sdksign.v1.SignatureService/Sign", bodies["sign"]),
                ("Verify", "/sdksign.v1.SignatureService/Verify", bodies["verify"]),
            ):
                rows.append(h2load_grpc(name, address, path, body, tmp, args, log_path))
            sign = rows[1]
            rows.append(
                h2load_grpc(
                    "Sign at half load",
                    address,
                    "/sdksign.v1.SignatureService/Sign",
                    bodies["sign"],
                    tmp,
                    args,
                    log_path,
                    rps=sign.rps / 2,
                )
            )
            memory = ""
            if args.memory_requests:
                memory = memory_run(address, bodies["sign"], tmp, args, pids, memory_before)
        sample = os.environ.get("ZOOM_SAMPLE_DIR")
        if sample:
            rows.append(zoom_sample_row(Path(sample), secret, tmp, args))

    print(report(rows, args, memory))
    return 0


@contextmanager
def sdksign_server(tmp: Path, secret: str, workers: int) -> Iterator[tuple[str, Path, list[int]]]:
    """`sdksign serve` on a free loopback port, its log in a file; stopped with SIGTERM."""
    log_path = tmp / "server.log"
    env = {
        **os.environ,
        "ZOOM_MEETING_SDK_KEY": SDK_KEY,
        "ZOOM_MEETING_SDK_SECRET": secret,
        "SDKSIGN_CONFIG": "",
    }
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


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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
    name: str,
    address: str,
    path: str,
    body: Path,
    tmp: Path,
    args: argparse.Namespace,
    server_log: Path,
    rps: float | None = None,
) -> Row:
    """One row: h2load over HTTP/2 with gRPC framing; failures read from the server's log."""
    errors_before = count_failures(server_log)
    command = [
        "-c",
        str(args.clients),
        "-m",
        str(args.streams),
        *GRPC_HEADERS,
        "-d",
        str(body),
    ]
    if rps is not None:
        command += ["--rps", f"{max(rps / args.clients, 1):.0f}"]
    row = run_h2load(name, command, f"http://{address}{path}", tmp, args)
    time.sleep(0.5)  # the last log lines reach the file
    row.failed += count_failures(server_log) - errors_before
    return row


def count_failures(server_log: Path) -> int:
    """RPCs the server logged with a code other than OK."""
    return sum(
        1
        for line in server_log.read_text().splitlines()
        if '"event":"rpc"' in line and '"code":"OK"' not in line
    )


def run_h2load(name: str, options: list[str], url: str, tmp: Path, args: argparse.Namespace) -> Row:
    """Run h2load for --duration after --warmup; requests/s from its summary, latency from its log."""
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
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60)
    if result.returncode != 0:
        sys.exit(f"bench: h2load failed for {name}:\n{result.stdout}\n{result.stderr}")
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", result.stdout)
    requests = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored",
        result.stdout,
    )
    if not match or not requests:
        sys.exit(f"bench: cannot read h2load's output:\n{result.stdout}")
    latencies = sorted(
        int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line
    )
    log.unlink()
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return Row(
        name=name,
        rps=float(match.group(1)),
        p50_ms=quantiles[49],
        p99_ms=quantiles[98],
        requests=int(requests.group(1)),
        failed=int(requests.group(2)) + int(requests.group(3)),
    )


def memory_run(
    address: str,
    body: Path,
    tmp: Path,
    args: argparse.Namespace,
    pids: list[int],
    before: dict[int, int],
) -> str:
    """Send --memory-requests Sign calls; report each worker's resident memory before and after."""
    sizes_after_warmup = {pid: rss_kib(pid) for pid in pids}
    command = [
        "h2load",
        "-t",
        "1",
        "-n",
        str(args.memory_requests),
        "-c",
        str(args.clients),
        "-m",
        str(args.streams),
        *GRPC_HEADERS,
        "-d",
        str(body),
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
            f"| {pid} | {before[pid] / 1024:.1f} MiB | {sizes_after_warmup[pid] / 1024:.1f} MiB "
            f"| {rss_kib(pid) / 1024:.1f} MiB |"
        )
    return "\n".join(lines)


def zoom_sample_row(sample: Path, secret: str, tmp: Path, args: argparse.Namespace) -> Row:
    """Zoom's sample endpoint (Node.js, Express), POST / over HTTP/1.1."""
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
        return run_h2load(
            "Zoom sample POST / (peer)", options, f"http://127.0.0.1:{port}/", tmp, args
        )
    finally:
        process.terminate()
        process.wait(10)


def report(rows: list[Row], args: argparse.Namespace, memory: str) -> str:
    """The Markdown the run prints (and BENCHMARKS.md keeps)."""
    floor = rows[0].rps
    peer = next((row.rps for row in rows if "Zoom" in row.name), None)
    lines = [
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}, {h2load_version()}",
        f"Server: sdksign serve --workers {args.workers}; load: h2load -t 1 -c {args.clients} "
        f"-m {args.streams} (HTTP/1.1 peer: -c {args.clients * args.streams}), "
        f"{args.warmup} s warm-up + {args.duration} s per row, on the same cores",
        "",
        "| row | requests/s | p50 ms | p99 ms | requests | failed | vs floor | vs Zoom sample |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        versus_peer = f"{row.rps / peer:.2f}x" if peer else "-"
        lines.append(
            f"| {row.name} | {row.rps:,.0f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | "
            f"{row.requests:,} | {row.failed} | {row.rps / floor:.2f} | {versus_peer} |"
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
