"""[rate_limits] store with real `sdksign serve` processes and a real redis-server: a caller's
rate holds across workers and replicas, a Redis killed under load and restarted costs no
unanswered call, a reload to another store takes a new client, and a rediss:// store (TLS
only) holds one bucket for the fleet, or is said to be lost when its certificate is not
signed by the CA of tls_ca_file.

Every run is bounded (a fixed number of calls at a fixed pace, a few seconds) and counts
every call by outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from sdksign.client import AsyncClient, Role, SdkSignError
from sdksign.server.access.ratestore import STORE_UNAVAILABLE
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.certs import Authority
from tests.conftest import (
    RedisServer,
    ServerProcess,
    log_lines,
    redis_password,
    running_redis,
    start_server_process,
    wait_until,
)

RATE = 50
BURST = 10
SECRET = secrets.token_urlsafe(32)
TOKEN = secrets.token_urlsafe(24)
SIGN = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_HOST))
METADATA = (("authorization", f"Bearer {TOKEN}"),)
# Connections per server: the kernel spreads them over its workers.
CONNECTIONS = 16


def config_text(
    store: str,
    password: str,
    on_store_error: str = "local",
    *,
    rate: int = RATE,
    burst: int = BURST,
    access: str = 'password_env = "REDIS_PASSWORD"',
) -> str:
    """One app, the caller `limited` at `rate`/s, nobody anonymous, the store in [rate_limits]
    (`access`: how to reach it besides its URL)."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return (
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "RateKey0123"\nsecret_env = "S"\n'
        f'[[callers]]\nname = "limited"\ntoken_sha256 = "{digest}"\n'
        f"rate = {rate}\nburst = {burst}\n"
        "[anonymous]\nroles = []\nverify = false\n"
        f'[rate_limits]\nstore = "{store}"\n{access}\n'
        # Generous for a shared test machine; what it bounds is tested without processes.
        f'timeout = 0.5\non_store_error = "{on_store_error}"\n'
    )


def start(folder: Path, text: str, password: str, workers: int) -> ServerProcess:
    folder.mkdir()
    (folder / "sdksign.toml").write_text(text)
    env = {"S": SECRET, "REDIS_PASSWORD": password}
    args = ["--config", str(folder / "sdksign.toml"), "--workers", str(workers)]
    server = start_server_process(folder, env, args)
    server.wait_for_events("listening", workers)
    return server


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """The servers a test starts (appended to this list), stopped at its end."""
    started: list[ServerProcess] = []
    yield started
    stopped = [server.stop(timeout=30) for server in started]
    assert None not in stopped, f"not all stopped within 30 s: {stopped}"


@dataclass
class Outcomes:
    """Every call of a run by its status code, the texts of those not OK, how long the
    calls took to send, and how much longer until the last was answered."""

    codes: Counter[str] = field(default_factory=Counter)
    texts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    lag: float = 0.0


async def drive(
    targets: list[str],
    calls: int,
    per_second: float,
    meanwhile: Callable[[], Coroutine[object, object, None]] | None = None,
) -> Outcomes:
    """`calls` Sign calls of `limited`, one every 1/per_second s, over CONNECTIONS connections
    to each target, while `meanwhile` runs; each call has a 10 s deadline."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(target, options=options)
        for target in targets
        for _ in range(CONNECTIONS)
    ]
    stubs = [pb_grpc.SignatureServiceStub(channel) for channel in channels]
    outcomes = Outcomes()

    async def call(index: int) -> None:
        try:
            await stubs[index % len(stubs)].Sign(SIGN, metadata=METADATA, timeout=10)
            outcomes.codes["OK"] += 1
        except grpc.aio.AioRpcError as error:
            outcomes.codes[error.code().name] += 1
            outcomes.texts[f"{error.code().name}: {error.details()}"] += 1

    loop = asyncio.get_running_loop()
    side = loop.create_task(meanwhile()) if meanwhile else None
    started, tasks = loop.time(), []
    for index in range(calls):
        await asyncio.sleep(max(0.0, started + index / per_second - loop.time()))
        tasks.append(loop.create_task(call(index)))
    outcomes.seconds = loop.time() - started
    await asyncio.gather(*tasks)
    outcomes.lag = loop.time() - started - outcomes.seconds
    if side:
        await side
    for channel in channels:
        await channel.close()
    return outcomes


def assert_near_the_rate(outcomes: Outcomes, calls: int) -> None:
    """All calls answered OK or RESOURCE_EXHAUSTED, and the OK ones the burst and RATE/s.

    The bucket refills over the time the calls reach the server, which on a busy machine
    can be longer or shorter than the time they took to send, by at most the lag of the
    last answer: the bounds widen by that lag (on an idle machine, a few ms)."""
    assert sum(outcomes.codes.values()) == calls
    assert set(outcomes.codes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes.texts
    fewest = BURST + RATE * max(0.0, outcomes.seconds - outcomes.lag)
    most = BURST + RATE * (outcomes.seconds + outcomes.lag)
    assert 0.9 * fewest <= outcomes.codes["OK"] <= 1.1 * most, (outcomes, fewest, most)


def served_by(server: ServerProcess) -> set[object]:
    return {line.get("worker") for line in server.events("rpc")}


async def test_two_workers_share_one_rate(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    text = config_text(redis_server.url, redis_password(redis_server))
    servers.append(start(tmp_path / "server", text, redis_password(redis_server), workers=2))
    calls = 750  # 3 s at 250/s: five times the rate
    outcomes = await drive([servers[0].target], calls, per_second=250)
    assert_near_the_rate(outcomes, calls)
    servers[0].wait_for_events("rpc", calls)  # each line comes once its answer has left
    assert served_by(servers[0]) == {0, 1}  # both workers took calls
    assert redis_password(redis_server) not in servers[0].logs()


async def test_two_servers_share_one_rate(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    text = config_text(redis_server.url, redis_password(redis_server))
    for name in ("one", "two"):
        servers.append(start(tmp_path / name, text, redis_password(redis_server), workers=1))
    calls = 750
    outcomes = await drive([server.target for server in servers], calls, per_second=250)
    assert_near_the_rate(outcomes, calls)
    wait_until(  # each line comes once its answer has left
        lambda: sum(len(server.events("rpc")) for server in servers) >= calls,
        lambda: "\n".join(server.logs() for server in servers),
    )
    for server in servers:
        assert Counter(line["code"] for line in server.events("rpc"))["OK"] > 0
        assert redis_password(redis_server) not in server.logs()


async def kill_and_restart(redis: RedisServer) -> None:
    """Redis killed one second into the run, started again (empty) 1.5 s later."""
    await asyncio.sleep(1.0)
    redis.kill()
    await asyncio.sleep(1.5)
    await asyncio.to_thread(redis.start)


def assert_lost_then_back(server: ServerProcess, redis: RedisServer) -> None:
    """Each worker said once that the store was lost, then once that it was back; nothing
    crashed, no call failed unexpectedly, and no line holds the password."""
    for worker in (0, 1):
        said = [
            line["event"]
            for line in log_lines(server.logs())
            if line.get("worker") == worker and str(line["event"]).startswith("rate limit store")
        ]
        assert said == ["rate limit store lost", "rate limit store back"], server.logs()
    logs = server.logs()
    assert server.process.poll() is None
    assert "worker exited" not in logs and "Traceback" not in logs
    assert not {"INTERNAL", "UNKNOWN"} & {line["code"] for line in server.events("rpc")}
    assert redis_password(redis) not in logs
    assert f"redis://127.0.0.1:{redis.port}/0" in logs  # the store is named, without credentials


@pytest.mark.parametrize("on_store_error", ["local", "refuse"])
async def test_redis_killed_and_restarted_under_load(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess], on_store_error: str
) -> None:
    text = config_text(redis_server.url, redis_password(redis_server), on_store_error)
    servers.append(start(tmp_path / "server", text, redis_password(redis_server), workers=2))
    calls = 400  # 4 s at 100/s: twice the rate
    outcomes = await drive(
        [servers[0].target], calls, per_second=100, meanwhile=lambda: kill_and_restart(redis_server)
    )
    assert sum(outcomes.codes.values()) == calls  # every call answered
    assert outcomes.codes["OK"] > 0 and outcomes.codes["RESOURCE_EXHAUSTED"] > 0
    assert set(outcomes.codes) == {"OK", "RESOURCE_EXHAUSTED"}, outcomes.texts
    # "refuse": RESOURCE_EXHAUSTED too (UNAVAILABLE would be retried by Envoy and clients).
    refused = outcomes.texts[f"RESOURCE_EXHAUSTED: {STORE_UNAVAILABLE}"]
    assert refused > 0 if on_store_error == "refuse" else refused == 0, outcomes.texts
    servers[0].wait_for_events("rpc", calls)  # each line comes once its answer has left
    assert_lost_then_back(servers[0], redis_server)


async def test_refused_without_the_store_the_client_does_not_retry(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    text = config_text(redis_server.url, redis_password(redis_server), "refuse")
    server = start(tmp_path / "server", text, redis_password(redis_server), workers=1)
    servers.append(server)
    redis_server.kill()
    async with AsyncClient(server.target, bearer_token=TOKEN) as client:  # retries=3
        for _ in range(3):
            with pytest.raises(SdkSignError) as raised:
                await client.sign_meeting("123456789", Role.HOST)
            assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert raised.value.message == STORE_UNAVAILABLE
        async with AsyncClient(server.target) as anonymous:  # then a call of nobody's
            with pytest.raises(SdkSignError):
                await anonymous.sign_meeting("123456789", Role.HOST)
    deadline = time.monotonic() + 10  # its line comes after those of every attempt before
    while "UNAUTHENTICATED" not in {line["code"] for line in server.events("rpc")}:
        assert time.monotonic() < deadline, server.logs()
        await asyncio.sleep(0.05)
    codes = Counter(line["code"] for line in server.events("rpc"))
    assert codes == {"RESOURCE_EXHAUSTED": 3, "UNAUTHENTICATED": 1}  # three calls, three tries


def auth_failures(redis: RedisServer) -> int:
    """The logins (HELLO or AUTH) `redis` refused as a wrong password since it started."""
    errors = redis.client().info("errorstats")
    return int(errors.get("errorstat_WRONGPASS", {}).get("count", 0))


async def test_a_wrong_store_password_is_said_and_tried_again_once_a_second(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    wrong = secrets.token_urlsafe(24)
    started = time.monotonic()
    server = start(tmp_path / "server", config_text(redis_server.url, wrong), wrong, workers=2)
    servers.append(server)
    server.wait_for_events("rate limit store lost", 2)  # each worker, at its start
    for line in server.events("rate limit store lost"):
        assert str(line["error"]).startswith("AuthenticationError: "), line
        assert "username, password_env or password_file" in str(line["hint"]), line
    # 2 s at 200/s, each worker on its own buckets meanwhile: together they allow about
    # 2 * (BURST + 2 * RATE) = 220 of the 400 (at 100/s both could allow all of them).
    calls = 400
    outcomes = await drive([server.target], calls, per_second=200)
    assert sum(outcomes.codes.values()) == calls
    assert set(outcomes.codes) == {"OK", "RESOURCE_EXHAUSTED"}, outcomes.texts
    # Tried again (more than once per worker), but not by every call: once a second at most.
    tries = auth_failures(redis_server)
    assert 2 < tries <= 2 * (time.monotonic() - started + 2), tries
    # The store takes that password now: the next try of each worker finds it back.
    redis_server.client().config_set("requirepass", wrong)
    redis_server.password = wrong
    await drive([server.target], calls, per_second=200)
    server.wait_for_events("rate limit store back", 2)
    assert len(server.events("rate limit store lost")) == 2  # said once per worker
    assert wrong not in server.logs()


def bucket_keys(redis: RedisServer) -> list[bytes | str]:
    return list(redis.client().keys("sdksign:rate:*"))


def store_clients(redis: RedisServer) -> int:
    """Connections to `redis` other than the one asking."""
    return int(redis.client().info("clients")["connected_clients"]) - 1


async def test_a_reload_to_another_store_takes_a_new_client(
    tmp_path: Path, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    # One password for both stores: REDIS_PASSWORD is the server's, set at its start.
    with running_redis(tmp_path / "redis-b", redis_server.password) as other:
        text = config_text(redis_server.url, redis_password(redis_server))
        server = start(tmp_path / "server", text, redis_password(redis_server), workers=2)
        servers.append(server)
        outcomes = await drive([server.target], 20, per_second=100)
        assert outcomes.codes["OK"] > 0 and bucket_keys(redis_server) and not bucket_keys(other)

        (tmp_path / "server" / "sdksign.toml").write_text(
            config_text(other.url, redis_password(other))
        )
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_events("configuration reloaded", 2)
        reloaded = server.events("configuration reloaded")
        assert all(other.url in str(line["rate_limits"]) for line in reloaded)
        redis_server.client().flushall()
        outcomes = await drive([server.target], 20, per_second=100)
        assert outcomes.codes["OK"] > 0 and set(outcomes.codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        assert bucket_keys(other) and not bucket_keys(redis_server)
        # The old store's connections are closed once calls are done with them (5 s on).
        deadline = time.monotonic() + 20
        while store_clients(redis_server):
            assert time.monotonic() < deadline, "the old store's client was never closed"
            await asyncio.sleep(0.2)
        assert not server.events("rate limit store lost")


# --- rediss:// : Redis on its TLS port only, the password in password_file ------------------

# The caller's rate and burst with the TLS store, and the calls of a run: sent at once, they
# spend the burst and what refills while they are answered (well under a second's worth).
TLS_RATE = 5
TLS_CALLS = 40


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis", tls=Authority("sdksign test Redis CA")) as server:
        yield server


def start_with_tls_store(
    folder: Path, redis: RedisServer, ca_file: Path, on_store_error: str = "local"
) -> ServerProcess:
    """Two workers whose store is `redis` over TLS, trusting `ca_file`, with its password in a
    file (and none in the environment)."""
    password_file = folder.parent / "redis.password"
    password_file.write_text(f"{redis.password}\n")
    access = f'password_file = "{password_file}"\ntls_ca_file = "{ca_file}"'
    text = config_text(
        redis.url,
        redis_password(redis),
        on_store_error,
        rate=TLS_RATE,
        burst=TLS_RATE,
        access=access,
    )
    return start(folder, text, "not-the-password", workers=2)


async def drive_at_once(server: ServerProcess) -> tuple[Outcomes, float]:
    """TLS_CALLS calls sent at once; their outcomes and the seconds until the last answer."""
    started = time.monotonic()
    outcomes = await drive([server.target], TLS_CALLS, per_second=10_000)
    return outcomes, time.monotonic() - started


def assert_nothing_leaked_or_crashed(server: ServerProcess, redis: RedisServer) -> None:
    logs = server.logs()
    assert server.process.poll() is None
    assert "Traceback" not in logs and "worker exited" not in logs
    assert redis_password(redis) not in logs


async def test_a_tls_store_holds_one_bucket_for_the_fleet(
    tmp_path: Path, tls_redis: RedisServer, servers: list[ServerProcess]
) -> None:
    assert tls_redis.url.startswith("rediss://") and tls_redis.ca_file is not None
    server = start_with_tls_store(tmp_path / "server", tls_redis, tls_redis.ca_file)
    servers.append(server)
    outcomes, seconds = await drive_at_once(server)
    assert sum(outcomes.codes.values()) == TLS_CALLS
    assert set(outcomes.codes) == {"OK", "RESOURCE_EXHAUSTED"}, outcomes.texts
    # One bucket for both workers: its burst and its refill meanwhile (each worker's own
    # buckets would let through a burst each).
    assert TLS_RATE <= outcomes.codes["OK"] <= TLS_RATE + TLS_RATE * seconds, (outcomes, seconds)
    server.wait_for_events("rpc", TLS_CALLS)  # each line comes once its answer has left
    assert served_by(server) == {0, 1}
    assert bucket_keys(tls_redis)  # the bucket is in the TLS store
    assert not server.events("rate limit store lost")
    assert_nothing_leaked_or_crashed(server, tls_redis)


@pytest.mark.parametrize("on_store_error", ["local", "refuse"])
async def test_a_tls_store_signed_by_another_ca_is_said_lost_and_calls_are_answered(
    tmp_path: Path, tls_redis: RedisServer, servers: list[ServerProcess], on_store_error: str
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(Authority("a CA that signed nothing of Redis").pem)
    server = start_with_tls_store(tmp_path / "server", tls_redis, other_ca, on_store_error)
    servers.append(server)
    server.wait_for_events("rate limit store lost", 2)  # each worker, at its start
    for line in server.events("rate limit store lost"):
        assert line["store"] == tls_redis.url, line
        assert "CERTIFICATE_VERIFY_FAILED" in str(line["error"]), line
        assert line["on_store_error"] == on_store_error, line
    outcomes, seconds = await drive_at_once(server)
    assert sum(outcomes.codes.values()) == TLS_CALLS
    if on_store_error == "refuse":
        assert outcomes.texts == {f"RESOURCE_EXHAUSTED: {STORE_UNAVAILABLE}": TLS_CALLS}
    else:  # each worker on its own buckets: at least one burst, at most one each and refills
        assert set(outcomes.codes) == {"OK", "RESOURCE_EXHAUSTED"}, outcomes.texts
        assert f"RESOURCE_EXHAUSTED: {STORE_UNAVAILABLE}" not in outcomes.texts
        assert TLS_RATE <= outcomes.codes["OK"] <= 2 * TLS_RATE * (1 + seconds), outcomes
    server.wait_for_events("rpc", TLS_CALLS)  # every call's line, then what is not there
    assert len(server.events("rate limit store lost")) == 2  # said once per worker
    assert not server.events("rate limit store back")
    assert not bucket_keys(tls_redis)
    assert_nothing_leaked_or_crashed(server, tls_redis)
