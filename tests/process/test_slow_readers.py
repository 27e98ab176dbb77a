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
        assert outcomes[HELD] <= MAX_CONCURRENT_CALLS
        before = len(server.events("rpc"))
        deadline_calls = [sign(server.target) for _ in range(3)]  # the slots are free again
        assert deadline_calls == ["OK"] * 3
        # Logged once sent, maybe just after the client has its answer.
        wait_for(lambda: len(server.events("rpc")) >= before + 3, server)
        assert_every_taken_call_logged_once(server.events("rpc"), outcomes, during)
    finally:
        assert server.stop(timeout=30) == 0


def assert_every_taken_call_logged_once(
    lines: list[dict[str, object]], outcomes: Counter[str], during: list[str]
) -> None:
    """What the log says of the calls the server took, checked against what their clients
    saw, whether or not gRPC's core closed some connections itself.

    The core sometimes closes such a connection, its calls with it (freeing their places):
    their streams are DROPPED, and a call of theirs whose answer had waited less than
    ANSWER_WRITE_TIMEOUT is logged OK (docs/operations.md). Every other call is accounted
    for exactly: with no connection dropped, exactly the limit is held, each held call is
    logged DEADLINE_EXCEEDED and only the calls whose clients read their answers are OK."""
    dropped, held = outcomes[DROPPED], outcomes[HELD]
    logged = Counter(str(line["code"]) for line in lines)
    # The three calls after the release, and the one made while the streams were held if a
    # dropped connection had freed a place for it: the only ones whose answers were read.
    assert during == ["RESOURCE_EXHAUSTED"] or (during == ["OK"] and dropped), (during, outcomes)
    answered = 3 + during.count("OK")
    taken = sum(logged.values()) - answered
    assert set(logged) <= {"OK", "DEADLINE_EXCEEDED", "CANCELLED"}, logged
    # A call was refused (RESOURCE_EXHAUSTED), so the server held the limit then: it took at
    # least that many, and each is logged once, held by its client or on a dropped connection.
    assert taken >= MAX_CONCURRENT_CALLS, (logged, outcomes)
    assert held <= taken <= held + dropped, (logged, outcomes)
    # No call whose client never read its answer is logged OK, but on a dropped connection;
    # every call still held at the end is logged DEADLINE_EXCEEDED, with why.
    assert logged["OK"] - answered <= dropped, (logged, outcomes)
    assert held <= logged["DEADLINE_EXCEEDED"] <= held + dropped, (logged, outcomes)
    assert {line["reason"] for line in lines if line["code"] == "DEADLINE_EXCEEDED"} == {
        f"the answer was not taken by the client within {ANSWER_WRITE_TIMEOUT:g} s"
    }
    if not dropped:  # what the bounds above come to: said outright
        assert held == MAX_CONCURRENT_CALLS and taken == held, (logged, outcomes)
        assert logged == {"OK": answered, "DEADLINE_EXCEEDED": held}, logged
