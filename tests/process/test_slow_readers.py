"""Clients that never read their answers (an HTTP/2 receive window of 0) hold at most
MAX_CONCURRENT_CALLS calls of a worker: the calls past it are refused at once, the held ones
are logged DEADLINE_EXCEEDED once their answers waited ANSWER_WRITE_TIMEOUT (never OK), and
once such clients go, the worker serves again. (Their memory is measured by `make soak`.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc

from bench.reliability.slowreaders import DROPPED, HELD, window_zero_streams
from sdksign.server.runtime.deadlines import ANSWER_WRITE_TIMEOUT
from sdksign.server.runtime.serve import MAX_CONCURRENT_CALLS
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import start_server_process
from tests.process.test_workers import SIGN, wait_for

CONNECTIONS = 3
STREAMS = 1000  # the server's max_concurrent_streams: one connection takes no more


def sign(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        try:
            pb_grpc.SignatureServiceStub(channel).Sign(SIGN, timeout=10)
        except grpc.RpcError as error:
            return str(error.code().name)
    return "OK"


def test_slow_readers_hold_no_more_than_the_limit_and_the_worker_recovers(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    server = start_server_process(tmp_path, server_env, ["--workers", "1"])
    try:
        host, port = server.target.rsplit(":", 1)
        outcomes: Counter[str] = Counter()
        during: list[str] = []

        async def run() -> None:
            release = asyncio.Event()
            streams = [
                asyncio.create_task(window_zero_streams(host, int(port), STREAMS, release))
                for _ in range(CONNECTIONS)
            ]
            # Held calls are logged once their answers have waited ANSWER_WRITE_TIMEOUT (10 s).
            held = lambda: len(server.events("rpc")) >= MAX_CONCURRENT_CALLS  # noqa: E731 (logged)
            await asyncio.to_thread(wait_for, held, server, ANSWER_WRITE_TIMEOUT + 30)
            await asyncio.sleep(1.0)
            during.append(await asyncio.to_thread(sign, server.target))
            release.set()
            for counted in await asyncio.gather(*streams):
                outcomes.update(counted)

        asyncio.run(asyncio.wait_for(run(), 90))
        assert sum(outcomes.values()) == CONNECTIONS * STREAMS
        assert set(outcomes) <= {HELD, "RESOURCE_EXHAUSTED", "CANCELLED", DROPPED}, outcomes
        assert outcomes["RESOURCE_EXHAUSTED"] >= 1, outcomes
        # gRPC's core sometimes closes such a connection itself, its calls with it (freeing
        # their places); else exactly the limit is held, and a new call is refused.
        if not outcomes[DROPPED]:
            assert outcomes[HELD] == MAX_CONCURRENT_CALLS, outcomes
            assert during == ["RESOURCE_EXHAUSTED"]
        assert outcomes[HELD] <= MAX_CONCURRENT_CALLS
        deadline_calls = [sign(server.target) for _ in range(3)]  # the slots are free again
        assert deadline_calls == ["OK"] * 3
        # Every held call, kept past ANSWER_WRITE_TIMEOUT, is logged DEADLINE_EXCEEDED (with
        # why), once: when its connection closes later, its done callback logs nothing. Only
        # the three calls above are OK (a connection the core closed itself, its calls waiting
        # under ANSWER_WRITE_TIMEOUT, would have them logged OK: docs/operations.md).
        ok = lambda: sum(line["code"] == "OK" for line in server.events("rpc")) >= 3  # noqa: E731
        wait_for(ok, server)  # logged once sent, maybe just after the client has its answer
        lines = server.events("rpc")
        logged = Counter(str(line["code"]) for line in lines)
        if not outcomes[DROPPED]:
            assert logged == {"OK": 3, "DEADLINE_EXCEEDED": outcomes[HELD]}, logged
        assert logged["DEADLINE_EXCEEDED"] >= outcomes[HELD], (logged, outcomes)
        assert {line["reason"] for line in lines if line["code"] == "DEADLINE_EXCEEDED"} == {
            f"the answer was not taken by the client within {ANSWER_WRITE_TIMEOUT:g} s"
        }
    finally:
        assert server.stop(timeout=30) == 0
