"""Load through the gateway, as `bench/fleet.py --scenario`, tests/gateway/test_fleet.py and the
soak send it: Zoom's sample JSON `POST /` and gRPC-web Sign over keep-alive HTTP/1.1, native
gRPC Sign over HTTP/2, each request's outcome counted; and the same load while a replica of a
Fleet is lost (replica_loss).

    with Fleet(replicas=2) as fleet:
        result = run_load(fleet.gateway_port, [json_sign_call()], total=300, rate=150,
                          at={100: lambda: fleet.kill_replica(0)})
        assert result.failed == 0, result.summary()
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from bench.framing import grpc_frame, grpc_web_trailer
from harness.fleet import Fleet
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc


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
        grpc_frame(message),
        {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        outcome,
    )


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


# --- losing a replica ----------------------------------------------------------------------

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
