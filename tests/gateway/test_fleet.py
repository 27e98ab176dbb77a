"""Losing a replica behind the real Envoy: two `sdksign serve` replicas (harness/fleet.py) behind
gateway/envoy.yaml, paced load through the gateway, and one replica killed with SIGKILL (its
parent and workers at once) or drained with SIGTERM while the load runs. Every request must
be answered."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench import gateway_load
from harness.envoy import GATEWAY_CONFIG, render_config
from harness.fleet import Fleet

# JSON `POST /` (Zoom's sample) and gRPC-web Sign, in turn.
CALLS = [gateway_load.json_sign_call(), gateway_load.grpc_web_sign_call()]
RATE = 150  # requests per second
TOTAL = 300  # two seconds of load


pytestmark = pytest.mark.usefixtures("gateway_files")


def report(name: str, result: gateway_load.LoadResult, stats: dict[str, int]) -> None:
    shown = ", ".join(f"{key} {stats.get(key, 0)}" for key in gateway_load.LOSS_STATS)
    print(f"{name}: {result.summary()}\n  envoy: {shown}")


def assert_all_answered(result: gateway_load.LoadResult) -> None:
    assert result.total > 0
    assert result.counts == {"ok": result.total}, result.summary()


def in_background(
    run: Callable[[], gateway_load.LoadResult],
) -> Callable[[], gateway_load.LoadResult]:
    """Start `run` in a thread; return a function that waits for its result (bounded)."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return lambda: future.result(timeout=60)


def test_the_gateway_config_gets_one_endpoint_per_replica() -> None:
    text = render_config(GATEWAY_CONFIG.read_text(), 18080, [5001, 5002, 5003], 19901)
    assert text.count("- endpoint:") == 3
    for port in (5001, 5002, 5003):
        assert f"port_value: {port} }}" in text
    assert "port_value: 50051" not in text
    assert ":8080" not in text
    assert "port_value: 18080" in text
    # The page's own origin, on any port, is among the development origins.
    assert 'regex: "http://(localhost|127\\\\.0\\\\.0\\\\.1)(:[0-9]{1,5})?"' in text
    assert text.endswith("socket_address: { address: 127.0.0.1, port_value: 19901 }\n")


def test_a_fresh_gateway_loses_a_replica_without_failing_a_request() -> None:
    with Fleet(replicas=2) as gateway:
        killed, kept = (r.port for r in gateway.replicas)
        # Envoy restarted, the replica killed at the 5th request: no health history at all.
        result = gateway_load.replica_loss(gateway, "fresh", TOTAL, RATE, CALLS)
        stats, health = gateway.stats(), gateway.host_health()
    report("fresh gateway, replica killed", result, stats)
    assert_all_answered(result)
    assert health[killed]  # Envoy no longer sends to it
    assert health[kept] == []
    assert stats.get("upstream_rq_retry_overflow", 0) == 0


def test_a_warm_gateway_loses_a_replica_without_failing_a_request() -> None:
    with Fleet(replicas=2) as gateway:
        # Native gRPC through Envoy all along: the warm-up, the kill and after.
        grpc_result = in_background(
            lambda: gateway_load.run_grpc_load(gateway.gateway_port, 300, 100)
        )
        # A second of load, then the replica killed a third of the way into the next two.
        result = gateway_load.replica_loss(gateway, "warm", TOTAL, RATE, CALLS, replica=1)
        grpc = grpc_result()
        stats = gateway.stats()
        assert gateway.host_health()[gateway.replicas[1].port]
    report("warm gateway, replica killed", result, stats)
    report("  gRPC alongside", grpc, stats)
    assert_all_answered(result)
    assert_all_answered(grpc)
    assert stats.get("upstream_rq_retry_overflow", 0) == 0


def test_a_draining_replica_leaves_the_rotation_within_two_seconds() -> None:
    with Fleet(replicas=2) as gateway:
        sent = in_background(
            lambda: gateway_load.run_load(gateway.gateway_port, CALLS, TOTAL, RATE)
        )
        time.sleep(0.5)
        gateway.drain_replica(0)  # SIGTERM: health turns NOT_SERVING, then the server stops
        noticed = gateway.wait_unhealthy(0, timeout=5)
        result = sent()
        stats = gateway.stats()
    report(f"replica drained, out of rotation after {noticed:.2f} s", result, stats)
    assert noticed < 2.5
    assert_all_answered(result)
