"""Joins outside the account with real `sdksign serve --workers 2` processes against the
stand-in of Zoom's API (harness.zoomapi, harness.zoomusers) over HTTP on loopback: the four
grant RPCs, a Sign with on_behalf_of answering the OBF token Zoom issued, the grant kept
across a restart, RemoveGrant revoking at Zoom, the policy's refusals, bad input named, and
two replicas of two workers each sharing SQLite, then Redis, with 2-second access tokens,
every call OK and no stale refresh token sent. No token, code or state reaches the logs.

Every run is bounded (a fixed number of calls or seconds) and counts every call by outcome.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harness.connections import channel_per_worker, close
from harness.redis import RedisServer
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.client import AsyncClient, Client, Role, SdkSignError
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import BIN, ENV, ServerProcess, redis_password, run, start_server_process

WORKERS = 2
SDK_KEY = "ObfAppKey012"
SECRET = secrets.token_urlsafe(32)
GRANT_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
TOKEN = secrets.token_urlsafe(24)
OTHER = secrets.token_urlsafe(24)
METADATA = (("authorization", f"Bearer {TOKEN}"),)
OTHER_METADATA = (("authorization", f"Bearer {OTHER}"),)
CALLBACK = "https://backend.example.com/zoom/callback"
MEETING = "123456789"
SIGN = "/sdksign.v1.SignatureService/Sign"


def on_behalf(user: str, meeting: str = MEETING) -> pb.SignRequest:
    return pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=meeting, role=pb.ROLE_PARTICIPANT),
        on_behalf_of=user,
    )


def config_text(zoom_url: str, store: str, redis_password_env: bool = False) -> str:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    other = hashlib.sha256(OTHER.encode()).hexdigest()
    password = 'password_env = "REDIS_PASSWORD"\n' if redis_password_env else ""
    return (
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{SDK_KEY}"\n'
        'secret_env = "S"\n'
        f'[[callers]]\nname = "backend"\ntoken_sha256 = "{digest}"\n'
        'on_behalf_of = ["*@example.com", "u-alice"]\ngrants = true\n'
        f'[[callers]]\nname = "plain"\ntoken_sha256 = "{other}"\n'
        "[anonymous]\nroles = []\nverify = false\n"
        f'[zoom]\noauth_url = "{zoom_url}"\napi_url = "{zoom_url}"\ntimeout = 2\n'
        f'[grants]\nstore = "{store}"\nkey_env = "GRANT_KEY"\n{password}'
    )


def start(folder: Path, zoom: ZoomApi, store: str, redis: str = "") -> ServerProcess:
    folder.mkdir(exist_ok=True)
    (folder / "sdksign.toml").write_text(config_text(zoom.url, store, bool(redis)))
    env = {"S": SECRET, "GRANT_KEY": GRANT_KEY, "REDIS_PASSWORD": redis}
    args = ["--config", str(folder / "sdksign.toml"), "--workers", str(WORKERS)]
    return start_server_process(folder, env, args, listening=WORKERS)


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        api.user_oauth.apps[SDK_KEY] = SECRET
        yield api


def assert_nothing_secret_logged(server: ServerProcess, zoom: ZoomApi, more: list[str]) -> None:
    logs = server.logs() + (server.log_path.parent / "server.stdout").read_text(errors="replace")
    values = [SECRET, GRANT_KEY, TOKEN, *zoom.user_oauth.handed_out, *more]
    assert [value[:8] for value in values if value and value in logs] == []


async def follow(url: str) -> str:
    """Zoom's authorize page, as the user's browser: the code sent to the callback."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


async def grant_alice(stub: pb_grpc.SignatureServiceStub) -> tuple[pb.Grant, str]:
    begun = await stub.BeginGrant(
        pb.BeginGrantRequest(redirect_uri=CALLBACK), metadata=METADATA, timeout=10
    )
    code = await follow(begun.authorize_url)
    grant = await stub.CompleteGrant(
        pb.CompleteGrantRequest(state=begun.state, code=code), metadata=METADATA, timeout=10
    )
    return grant, begun.state


def metric_samples(server: ServerProcess) -> dict[str, float]:
    """The admin listener's /metrics (every worker's), once the gauge is counted."""
    address = str(server.events("listening")[0]["admin_address"])
    samples: dict[str, float] = {}
    for _ in range(50):
        text = httpx.get(f"http://{address}/metrics", timeout=5).text
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(("sdksign_obf", "sdksign_grant"))
        }
        if samples.get('sdksign_grants{state="ok"}'):
            break
        time.sleep(0.1)
    return samples


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [v.field for v in bad.field_violations]
    return found


async def test_a_grant_then_on_behalf_signs_across_a_restart_until_removed(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    store = f"sqlite:{tmp_path / 'grants.db'}"
    server = start(tmp_path / "one", zoom, store)
    states: list[str] = []
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            grant, state = await grant_alice(stub)
            states.append(state)
            assert (grant.app, grant.user_id, grant.email) == (
                "meeting",
                "u-alice",
                "alice@example.com",
            )
            assert grant.created_at.seconds > 0 and not grant.broken
            listed = await stub.ListGrants(pb.ListGrantsRequest(), metadata=METADATA, timeout=10)
            assert [g.user_id for g in listed.grants] == ["u-alice"]
            signed = await stub.Sign(on_behalf("Alice@Example.com"), metadata=METADATA, timeout=10)
            assert signed.obf_token in zoom.user_oauth.obf_issued[("u-alice", MEETING)]
            assert signed.token and signed.obf_token != signed.token
        samples = metric_samples(server)
        assert samples['sdksign_obf_requests_total{outcome="ok"}'] == 1
        assert samples['sdksign_grants{state="ok"}'] == 1
        assert samples["sdksign_grants_sealed_with_old_key"] == 0
    finally:
        assert server.stop(timeout=15) is not None
    assert_nothing_secret_logged(server, zoom, states)
    lines = [line for line in server.events("rpc") if line.get("obf_fp")]
    # The user by the grant's Zoom user ID, though the Sign named them by email.
    assert [(line["code"], line.get("obf_user_id")) for line in lines] == [("OK", "u-alice")]
    assert "alice@example.com" not in server.logs().lower()

    restarted = start(tmp_path / "two", zoom, store)
    try:
        async with grpc.aio.insecure_channel(restarted.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            signed = await stub.Sign(on_behalf("u-alice"), metadata=METADATA, timeout=10)
            assert signed.obf_token == zoom.user_oauth.obf_issued[("u-alice", MEETING)][-1]
            removed = await stub.RemoveGrant(
                pb.RemoveGrantRequest(user="alice@example.com"), metadata=METADATA, timeout=10
            )
            assert removed.grant.user_id == "u-alice" and zoom.user_oauth.revoked == 1
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Sign(on_behalf("alice@example.com"), metadata=METADATA, timeout=10)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "'alice@example.com'" in (refused.value.details() or "")
            assert "must authorize again" in (refused.value.details() or "")
    finally:
        assert restarted.stop(timeout=15) is not None
    assert_nothing_secret_logged(restarted, zoom, states)


async def test_the_policy_and_bad_input_are_refused_before_zoom_is_asked(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    server = start(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    outcomes: Counter[str] = Counter()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            cases = [
                (
                    stub.BeginGrant,
                    pb.BeginGrantRequest(redirect_uri=CALLBACK),
                    OTHER_METADATA,
                    "PERMISSION_DENIED",
                ),
                (stub.ListGrants, pb.ListGrantsRequest(), (), "UNAUTHENTICATED"),
                (stub.Sign, on_behalf("alice@example.com"), OTHER_METADATA, "PERMISSION_DENIED"),
                (stub.Sign, on_behalf("carol@example.org"), METADATA, "PERMISSION_DENIED"),
                (stub.Sign, on_behalf("bob@example.com"), METADATA, "FAILED_PRECONDITION"),
            ]
            for method, request, metadata, expected in cases:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await method(request, metadata=metadata, timeout=10)
                outcomes[error.value.code().name] += 1
                assert error.value.code().name == expected, (request, error.value.details())
            bad = [
                (
                    stub.BeginGrant,
                    pb.BeginGrantRequest(redirect_uri="http://example.com/cb"),
                    "redirect_uri",
                ),
                (
                    stub.BeginGrant,
                    pb.BeginGrantRequest(redirect_uri="https://[::1/cb"),  # urlsplit: ValueError
                    "redirect_uri",
                ),
                (stub.CompleteGrant, pb.CompleteGrantRequest(), "state"),
                (stub.ListGrants, pb.ListGrantsRequest(page_size=5000), "page_size"),
                (stub.ListGrants, pb.ListGrantsRequest(page_token="abc"), "page_token"),
                (
                    stub.Sign,
                    pb.SignRequest(
                        video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST),
                        on_behalf_of="a@example.com",
                    ),
                    "on_behalf_of",
                ),
            ]
            for method, request, field in bad:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await method(request, metadata=METADATA, timeout=10)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field in violations(error.value)
            # Completing with a state another caller began, or a used one, is refused.
            begun = await stub.BeginGrant(
                pb.BeginGrantRequest(redirect_uri=CALLBACK), metadata=METADATA, timeout=10
            )
            code = await follow(begun.authorize_url)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.CompleteGrant(
                    pb.CompleteGrantRequest(state=begun.state, code=code),
                    metadata=METADATA,
                    timeout=10,
                )
                await stub.CompleteGrant(
                    pb.CompleteGrantRequest(state=begun.state, code=code),
                    metadata=METADATA,
                    timeout=10,
                )
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        assert server.stop(timeout=15) is not None
    assert zoom.user_oauth.obf_issued == {}
    assert outcomes == Counter(
        {"PERMISSION_DENIED": 3, "UNAUTHENTICATED": 1, "FAILED_PRECONDITION": 1}
    )
    assert "UNKNOWN" not in server.rpc_codes() and "INTERNAL" not in server.rpc_codes()


async def signs_for(replicas: list[ServerProcess], seconds: float) -> Counter[str]:
    """On-behalf Signs for `seconds` from 2 tasks on a connection to each worker of each
    replica (one channel reaches one worker): every call's code, counted."""
    counts: Counter[str] = Counter()
    end = time.monotonic() + seconds

    async def probe(channel: grpc.aio.Channel) -> object:
        stub = pb_grpc.SignatureServiceStub(channel)
        return await stub.Sign(on_behalf("u-alice"), metadata=METADATA, timeout=10)

    async def loop(stub: pb_grpc.SignatureServiceStub) -> None:
        while time.monotonic() < end:
            try:
                await stub.Sign(on_behalf("alice@example.com"), metadata=METADATA, timeout=10)
                counts["OK"] += 1
            except grpc.aio.AioRpcError as error:
                counts[error.code().name] += 1

    channels: list[grpc.aio.Channel] = []
    try:
        for replica in replicas:
            found = await channel_per_worker(replica, WORKERS, probe, method=SIGN)
            channels += found.values()
        await asyncio.gather(
            *(loop(pb_grpc.SignatureServiceStub(c)) for c in channels for _ in range(2))
        )
    finally:
        await close(channels)
    return counts


def on_behalf_signs_by_worker(server: ServerProcess) -> Counter[int]:
    return Counter(
        int(line.get("worker", 0))
        for line in server.events("rpc")
        if line.get("method") == SIGN and line.get("code") == "OK" and "obf_user_id" in line
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_two_replicas_of_two_workers_share_grants_without_a_stale_refresh(
    backend: str, tmp_path: Path, zoom: ZoomApi, request: pytest.FixtureRequest
) -> None:
    """20 s of on-behalf Signs with 2-second access tokens (each used for 1 s): every call
    OK, several refreshes, none with a rotated-out refresh token."""
    password = ""
    if backend == "sqlite":
        store = f"sqlite:{tmp_path / 'grants.db'}"
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        store, password = redis.url, redis_password(redis)
    zoom.user_oauth.access_lifetime = 2
    replicas = [start(tmp_path / f"replica{i}", zoom, store, password) for i in range(2)]
    try:
        async with grpc.aio.insecure_channel(replicas[0].target) as channel:
            await grant_alice(pb_grpc.SignatureServiceStub(channel))
        calls = await signs_for(replicas, 20.0)
    finally:
        for replica in replicas:
            assert replica.stop(timeout=15) is not None
    assert set(calls) == {"OK"} and calls["OK"] > 0, calls
    # Every one of the four workers served its share of on-behalf Signs.
    by_worker = [on_behalf_signs_by_worker(replica) for replica in replicas]
    assert all(len(served) == WORKERS for served in by_worker), by_worker
    assert min(n for served in by_worker for n in served.values()) > calls["OK"] / 16, by_worker
    assert zoom.user_oauth.stale_refreshes == 0
    assert zoom.user_oauth.refreshes >= 10
    for replica in replicas:
        assert_nothing_secret_logged(replica, zoom, [password])


async def test_the_python_clients_and_the_cli_grant_sign_on_behalf_list_and_remove(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    server = start(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    try:
        async with AsyncClient(server.target, bearer_token=TOKEN) as client:
            began = await client.begin_grant(CALLBACK)
            assert began.authorize_url.startswith(f"{zoom.url}/oauth/authorize?")
            grant = await client.complete_grant(began.state, await follow(began.authorize_url))
            assert (grant.user_id, grant.email, grant.broken) == (
                "u-alice",
                "alice@example.com",
                False,
            )
            signed = await client.sign_meeting(MEETING, Role.PARTICIPANT, on_behalf_of="u-alice")
            assert signed.obf_token in zoom.user_oauth.obf_issued[("u-alice", MEETING)]
            assert signed.obf_token not in repr(signed)
        env = {**ENV, "SDKSIGN_BEARER_TOKEN": TOKEN}
        base: list[str | Path] = [BIN / "sdksign"]
        target = ["--target", server.target]
        sign = [*base, "sign", *target, "--meeting-number", MEETING, "--role", "participant"]
        plain = await asyncio.to_thread(run, [*sign, "--on-behalf-of", "alice@example.com"], env)
        assert plain.returncode == 0, plain.stderr
        token, obf = plain.stdout.splitlines()
        assert token.count(".") == 2 and obf == zoom.user_oauth.obf_issued[("u-alice", MEETING)][-1]
        listed = await asyncio.to_thread(run, [*base, "grants", "list", *target, "--json"], env)
        assert listed.returncode == 0, listed.stderr
        shown = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(g["user_id"], g["email"], g["broken"]) for g in shown] == [
            ("u-alice", "alice@example.com", False)
        ]
        assert not [v for v in zoom.user_oauth.handed_out if v in listed.stdout]
        with Client(server.target, bearer_token=TOKEN) as blocking:
            page = blocking.list_grants(page_size=1)
            assert [g.user_id for g in page.grants] == ["u-alice"] and page.next_page_token == ""
        removed = await asyncio.to_thread(run, [*base, "grants", "remove", "u-alice", *target], env)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.startswith("removed u-alice\t") and zoom.user_oauth.revoked == 1
        missing = await asyncio.to_thread(run, [*base, "grants", "remove", *target], env)
        assert missing.returncode != 0 and "needs the user" in missing.stderr
        refused = await asyncio.to_thread(run, [*sign, "--on-behalf-of", "u-alice"], env)
        assert refused.returncode != 0 and "must authorize again" in refused.stderr
    finally:
        assert server.stop(timeout=15) is not None
    assert_nothing_secret_logged(server, zoom, [])


async def test_a_refresh_zoom_answers_late_keeps_the_grant_for_the_next_sign(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    """Zoom rotates the refresh token and answers after [zoom] timeout (2 s): that Sign is
    UNAVAILABLE, the answer is stored when it comes, and the next Sign is OK without a
    stale refresh token."""
    zoom.user_oauth.access_lifetime = 2
    server = start(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            await grant_alice(stub)
            await asyncio.sleep(1.2)
            zoom.user_oauth.access_lifetime = 3599
            zoom.user_oauth.refresh_delay = 3.0
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await stub.Sign(on_behalf("u-alice"), metadata=METADATA, timeout=10)
            assert late.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "did not answer the refresh" in (late.value.details() or "")
            zoom.user_oauth.refresh_delay = 0
            await asyncio.sleep(1.5)  # the answer comes 3 s after the request
            signed = await stub.Sign(on_behalf("u-alice"), metadata=METADATA, timeout=10)
            assert signed.obf_token in zoom.user_oauth.obf_issued[("u-alice", MEETING)]
    finally:
        assert server.stop(timeout=15) is not None
    assert zoom.user_oauth.refreshes == 1 and zoom.user_oauth.stale_refreshes == 0
    assert not [line for line in server.events("grant_broken")]


async def test_complete_grant_is_retried_after_zoom_left_the_exchange_unanswered(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    """Zoom never answers the first exchange of the code (lost on its way; the server's
    [zoom] timeout is 2 s): the state is put back, the Python client's own retry on
    UNAVAILABLE exchanges again, and the grant is stored."""
    server = start(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    try:
        async with AsyncClient(server.target, bearer_token=TOKEN, timeout=20) as client:
            began = await client.begin_grant(CALLBACK)
            code = await follow(began.authorize_url)
            zoom.drop = 1
            grant = await client.complete_grant(began.state, code)
            assert (grant.user_id, zoom.dropped) == ("u-alice", 1)
            # Still single use: the state is gone once the grant is stored.
            with pytest.raises(SdkSignError) as again:
                await client.complete_grant(began.state, code)
            assert again.value.code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        assert server.stop(timeout=15) is not None
    assert server.rpc_codes("/sdksign.v1.SignatureService/CompleteGrant") == Counter(
        {"UNAVAILABLE": 1, "OK": 1, "FAILED_PRECONDITION": 1}
    )
    assert_nothing_secret_logged(server, zoom, [began.state])


def all_samples(server: ServerProcess, prefix: str = "sdksign_") -> dict[str, float]:
    """Every sample of the admin listener's /metrics (all workers) whose name has `prefix`."""
    address = str(server.events("listening")[0]["admin_address"])
    text = httpx.get(f"http://{address}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_grant_and_obf_metrics_count_real_calls_and_a_broken_grant_is_logged_once(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    """After real calls, the admin port's counters: OBF requests by outcome (a refusal of
    the OBF token by Zoom is `failed`, not `broken`), refreshes by outcome, Zoom's API
    requests by endpoint and outcome; and one `grant_broken` line for one broken grant."""
    zoom.user_oauth.access_lifetime = 2
    server = start(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    codes: list[str] = []
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)

            async def sign(user: str) -> None:
                try:
                    await stub.Sign(on_behalf(user), metadata=METADATA, timeout=10)
                    codes.append("OK")
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code().name)

            await grant_alice(stub)
            await sign("u-alice")  # ok
            await sign("bob@example.com")  # no grant
            zoom.user_oauth.obf_refusals = 1
            await sign("u-alice")  # Zoom refuses the OBF token: failed
            with zoom.user_oauth._lock:  # the user revokes the app at Zoom
                for grant in zoom.user_oauth._grants.values():
                    grant.revoked = True
            await asyncio.sleep(1.2)  # the access token is due: a refresh, refused
            await sign("u-alice")  # broken
            await sign("u-alice")  # broken, not refreshed again
        samples = all_samples(server)
    finally:
        assert server.stop(timeout=15) is not None
    assert codes == ["OK", *["FAILED_PRECONDITION"] * 4]
    obf = {o: samples[f'sdksign_obf_requests_total{{outcome="{o}"}}'] for o in OUTCOMES}
    assert obf == {"ok": 1, "no_grant": 1, "broken": 2, "failed": 1}
    refreshes = {
        o: samples[f'sdksign_grant_refreshes_total{{outcome="{o}"}}']
        for o in ("ok", "refused", "failed")
    }
    assert refreshes == {"ok": 0, "refused": 1, "failed": 0}
    zoom_calls = {
        key.removeprefix("sdksign_zoom_api_requests_total"): value
        for key, value in samples.items()
        if key.startswith("sdksign_zoom_api_requests_total{") and value
    }
    assert zoom_calls == {
        '{endpoint="user_oauth_code",outcome="ok"}': 1,
        '{endpoint="user_me",outcome="ok"}': 1,
        '{endpoint="user_obf",outcome="ok"}': 1,
        '{endpoint="user_obf",outcome="refused"}': 1,
        '{endpoint="user_oauth_refresh",outcome="refused"}': 1,
    }
    assert samples['sdksign_zoom_api_request_seconds_count{endpoint="user_obf"}'] == 2
    broken = server.events("grant_broken")
    assert [(line["user_id"], line["app"]) for line in broken] == [("u-alice", "meeting")]
    assert zoom.user_oauth.refreshes == 1


OUTCOMES = ("ok", "no_grant", "broken", "failed")
