"""A real Prometheus (Debian's) scrapes a real `sdksign serve --workers 2` through its admin
listener: the calls made are the counts PromQL reads back, every query of the dashboard
runs and finds its series, and every alerting rule evaluates without an error."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess, log_lines, start_server_process
from tests.deploy.prometheus import Prometheus, running_prometheus
from tests.deploy.promql import dashboard_exprs, rules

SIGNS = 30  # participant tokens: allowed
REFUSED = 4  # host tokens: the caller's rule refuses them (rule "role")
TOKEN = secrets.token_urlsafe(24)
METADATA = (("authorization", f"Bearer {TOKEN}"),)
SERVICE = 'grpc_service="sdksign.v1.SignatureService"'
# The dashboard's Grafana variables, as Grafana would put them in its queries.
GRAFANA = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$job": "sdksign",
    "$instance": ".+",
}


def config_text() -> str:
    """One app whose secret is a file (so it has an age), one caller allowed participant
    tokens only, nobody anonymous."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return (
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "MetricsKey0123"\n'
        'secret_file = "meeting.secret"\n'
        f'[[callers]]\nname = "scheduler"\ntoken_sha256 = "{digest}"\n'
        'roles = ["participant"]\n'
        "[anonymous]\nroles = []\nverify = false\n"
    )


@dataclass
class Scraped:
    server: ServerProcess
    prometheus: Prometheus


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A server with two workers and its admin listener on a free port, a Prometheus
    scraping it, and the calls of make_calls made once (the tests only read)."""
    folder = tmp_path_factory.mktemp("scraped")
    (folder / "meeting.secret").write_text(secrets.token_urlsafe(32))
    (folder / "sdksign.toml").write_text(config_text())
    args = ["--config", str(folder / "sdksign.toml"), "--workers", "2"]
    server = start_server_process(folder, {}, [*args, "--admin-listen", "127.0.0.1:0"])
    try:
        listening = [line for line in log_lines(server.logs()) if line["event"] == "listening"]
        admin = str(listening[0]["admin_address"])
        assert re.fullmatch(r"127\.0\.0\.1:[1-9]\d*", admin), admin
        with running_prometheus(folder / "prometheus", [admin]) as prometheus:
            make_calls(server.target)
            yield Scraped(server, prometheus)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def make_calls(target: str) -> None:
    """SIGNS participant tokens, REFUSED host tokens refused, and two Verify calls: one
    token as minted, one with its signature changed. Each call on a connection of its own,
    which the kernel gives to either worker."""
    tokens = [call(target, "Sign", sign_request(pb.ROLE_PARTICIPANT)).token for _ in range(SIGNS)]
    for _ in range(REFUSED):
        with pytest.raises(grpc.RpcError) as refused:
            call(target, "Sign", sign_request(pb.ROLE_HOST))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    signed, signature = tokens[0].rsplit(".", 1)
    other = "B" if signature[0] == "A" else "A"  # the first character: 6 bits of the MAC
    for token, valid in ((tokens[0], True), (f"{signed}.{other}{signature[1:]}", False)):
        assert call(target, "Verify", pb.VerifyRequest(token=token)).valid is valid


def call(target: str, method: str, request: Any) -> Any:
    """`method` of SignatureService as the caller `scheduler`, on a new connection."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        return getattr(stub, method)(request, metadata=METADATA, timeout=10)


def sign_request(role: pb.Role) -> pb.SignRequest:
    return pb.SignRequest(meeting=pb.MeetingClaims(meeting_number="123456789", role=role))


def by(prometheus: Prometheus, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    """`expr`'s series as {their `labels`' values: value}."""
    found = prometheus.query(expr)
    return {tuple(s["metric"].get(label, "") for label in labels): s["value"] for s in found}


def test_prometheus_reads_the_calls_made(scraped: Scraped) -> None:
    prometheus = scraped.prometheus
    prometheus.wait_for(
        lambda: by(prometheus, "sum(sdksign_tokens_issued_total)") == {(): float(SIGNS)}
    )
    assert by(prometheus, 'up{job="sdksign"}') == {(): 1.0}
    issued = "sum by (app, kind, role, caller) (sdksign_tokens_issued_total)"
    assert by(prometheus, issued, "app", "kind", "role", "caller") == {
        ("meeting", "meeting", "participant", "scheduler"): float(SIGNS)
    }
    # Counted as each call ends: the last refusals may come a scrape after the tokens.
    refusals = "sum by (caller, rule) (sdksign_refusals_total)"
    prometheus.wait_for(
        lambda: by(prometheus, refusals, "caller", "rule") == {("scheduler", "role"): REFUSED}
    )
    # Handled is counted once the answer has left, after the refusal: maybe a scrape later.
    handled = f'sum by (grpc_code) (grpc_server_handled_total{{{SERVICE},grpc_method="Sign"}})'
    prometheus.wait_for(
        lambda: (
            by(prometheus, handled, "grpc_code")
            == {("OK",): float(SIGNS), ("PERMISSION_DENIED",): float(REFUSED)}
        )
    )
    prometheus.wait_for(
        lambda: (
            by(prometheus, "sum by (valid) (sdksign_verify_results_total)", "valid")
            == {("true",): 1.0, ("false",): 1.0}
        )
    )
    assert by(prometheus, "sum(sdksign_ready)") == {(): 1.0}
    # Both workers served some of the calls: the counts are the sum of their files. Each
    # call's line comes once its answer has left: all of them first.
    scraped.server.wait_for_events("rpc", SIGNS + REFUSED + 2)
    served = {
        line.get("worker") for line in log_lines(scraped.server.logs()) if line["event"] == "rpc"
    }
    assert served == {0, 1}


def test_every_dashboard_query_finds_its_series(scraped: Scraped) -> None:
    """Each of the dashboard's queries runs on the real Prometheus and, after calls of every
    kind, returns series: a renamed label or a wrong selector would leave a panel empty.
    rate() needs two scrapes of a series: each query is asked until it answers (bounded)."""
    prometheus = scraped.prometheus
    missing = [_grafana(expr) for expr in dashboard_exprs()]
    assert len(missing) > 15
    deadline = time.monotonic() + 30
    while missing and time.monotonic() < deadline:
        missing = [expr for expr in missing if not prometheus.query(expr)]
        time.sleep(0.5)
    assert missing == []


def _grafana(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def test_every_alerting_rule_evaluates_on_the_real_series(scraped: Scraped) -> None:
    prometheus = scraped.prometheus

    def evaluated() -> list[dict[str, Any]]:
        groups = prometheus.api("rules", type="alert")["groups"]
        found = [rule for group in groups for rule in group["rules"]]
        # Not yet evaluated: Go's zero time, year 1.
        done = all(not rule["lastEvaluation"].startswith("0001-") for rule in found)
        return found if done else []

    prometheus.wait_for(lambda: bool(evaluated()))
    loaded = evaluated()
    assert sorted(rule["name"] for rule in loaded) == sorted(r["alert"] for r in rules())
    assert [
        (rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"
    ] == []
    # The server is ready: nothing says otherwise, even pending.
    active = {alert["labels"]["alertname"] for alert in prometheus.api("alerts")["alerts"]}
    assert {
        "SdksignNoReadyReplicas",
        "SdksignReplicaNotReady",
        "SdksignHighErrorRatio",
    } & active == set()
