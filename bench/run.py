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

import sys
from pathlib import Path

if not __package__:  # run as `python bench/run.py`: the checkout is where imports start
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import functools
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.framing import grpc_frame
from bench.h2load import (
    Row,
    Sample,
    cpu_model,
    grpc_load,
    h2load_grpc,
    h2load_version,
    rss_kib,
    run_h2load,
    shown_mib,
)
from harness import ROOT
from harness.process import free_port
from harness.server import ServerError, ServerProcess, start_server
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

SDK_KEY = "BenchMeetingKey012345"
MEETING = "123456789"


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
        server = stack.enter_context(sdksign_server(tmp, secret, args.workers))
        address, log_path, pids = server.target, server.log_path, worker_pids(server)
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


@contextmanager
def sdksign_server(
    tmp: Path, secret: str, workers: int, checkout: Path = ROOT, config: Path | None = None
) -> Iterator[ServerProcess]:
    """`sdksign serve --workers N` on a free loopback port, its log in tmp/server.log, its
    code from `checkout` (another checkout of this repository, for compare.py); stopped
    with SIGTERM. With `config`, it serves that file (whose app takes SDK_KEY and
    $ZOOM_MEETING_SDK_SECRET)."""
    env = {"ZOOM_MEETING_SDK_KEY": SDK_KEY, "ZOOM_MEETING_SDK_SECRET": secret}
    args = ["--workers", str(workers), *(["--config", str(config)] if config else [])]
    log_path = tmp / "server.log"
    try:
        server = start_server(tmp, args, env, workers=workers, checkout=checkout, log_path=log_path)
    except ServerError as exc:
        sys.exit(f"bench: the server did not start: {exc}\n{log_path.read_text()}")
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM, 30)


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes that serve (with --workers 1, the server itself): CPU time and memory."""
    return list(server.workers().values())


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
    port = free_port()
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


if __name__ == "__main__":
    sys.exit(main())
