"""Host starts with real `sdksign serve --workers 2` processes against the stand-in of Zoom's
API (harness.zoomapi) over HTTP on loopback: the ZAK Zoom issued comes back beside the host
token; the policy refuses before Zoom is asked; Zoom's 429, expired tokens, a hanging Zoom
and a dead one each get their code within the call's deadline; plain Signs never wait on
Zoom; no secret or token reaches the log.

Every run is bounded (a fixed number of calls, deadlines of seconds) and counts every call
by outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harness.connections import channel_per_worker, close
from harness.process import free_port
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.client import Client, Role
from sdksign.server.zoom.jwt import fingerprint
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import BIN, ENV, ROOT, ServerProcess, run, start_server_process

WORKERS = 2
SECRET = secrets.token_urlsafe(32)
TOKEN = secrets.token_urlsafe(24)
METADATA = (("authorization", f"Bearer {TOKEN}"),)
MEETING = "123456789"
# [zoom] timeout in these tests: a hanging Zoom is given up on after this many seconds.
ZOOM_TIMEOUT = 1.0


def host_start(user: str, ttl: int | None = None) -> pb.SignRequest:
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST), start_as=user
    )
    if ttl is not None:
        request.ttl.seconds = ttl
    return request


PLAIN = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST))


def config_text(api_url: str, oauth_url: str | None = None) -> str:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return (
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "HostKey0123"\n'
        'secret_env = "S"\n'
        '[apps.s2s]\naccount_id = "standin-account"\nclient_id = "standin-client"\n'
        'client_secret_env = "S2S_SECRET"\n'
        f'[[callers]]\nname = "backend"\ntoken_sha256 = "{digest}"\n'
        'start_as = ["*@example.com", "u-carol", "nobody@example.com"]\n'
        "[anonymous]\nroles = []\nverify = false\n"
        f'[zoom]\noauth_url = "{oauth_url or api_url}"\napi_url = "{api_url}"\n'
        f"timeout = {ZOOM_TIMEOUT}\n"
    )


def start(folder: Path, api_url: str, client_secret: str) -> ServerProcess:
    folder.mkdir(exist_ok=True)
    (folder / "sdksign.toml").write_text(config_text(api_url))
    env = {"S": SECRET, "S2S_SECRET": client_secret}
    args = ["--config", str(folder / "sdksign.toml"), "--workers", str(WORKERS)]
    return start_server_process(folder, env, args, listening=WORKERS)


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        yield api


@pytest.fixture
def server(tmp_path: Path, zoom: ZoomApi) -> Iterator[ServerProcess]:
    process = start(tmp_path / "server", zoom.url, zoom.client_secret)
    try:
        yield process
    finally:
        assert process.stop(timeout=15) is not None
        assert_no_secret_logged(process, zoom)


def assert_no_secret_logged(server: ServerProcess, zoom: ZoomApi) -> None:
    logs = server.logs() + (server.log_path.parent / "server.stdout").read_text(errors="replace")
    secrets_seen = [zoom.client_secret, SECRET, TOKEN, *zoom.access_tokens]
    secrets_seen += [zak for zaks in zoom.issued.values() for zak in zaks]
    leaked = [value[:6] for value in secrets_seen if value in logs]
    assert leaked == []


async def call(
    channel: grpc.aio.Channel,
    request: pb.SignRequest,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> pb.SignResponse | grpc.aio.AioRpcError:
    stub = pb_grpc.SignatureServiceStub(channel)
    try:
        response: pb.SignResponse = await stub.Sign(request, metadata=METADATA, timeout=timeout)
        return response
    except grpc.aio.AioRpcError as error:
        return error


def details(error: grpc.aio.AioRpcError) -> list[object]:
    status = rpc_status.from_call(error)
    assert status is not None
    found: list[object] = []
    for any_detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.BadRequest,
        ):
            if any_detail.Is(kind.DESCRIPTOR):
                message = kind()
                any_detail.Unpack(message)
                found.append(message)
    return found


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    return next(d for d in details(error) if isinstance(d, error_details_pb2.ErrorInfo))


def codes(results: list[pb.SignResponse | grpc.aio.AioRpcError]) -> Counter[str]:
    return Counter("OK" if isinstance(r, pb.SignResponse) else r.code().name for r in results)


async def test_a_host_start_returns_the_zak_zoom_issued_for_the_user_by_email_or_id(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        by_email = await call(channel, host_start("Alice@Example.com"))
        by_id = await call(channel, host_start("u-carol", ttl=3600))
    assert isinstance(by_email, pb.SignResponse) and isinstance(by_id, pb.SignResponse)
    assert by_email.zak in zoom.issued["u-alice"]
    assert by_id.zak in zoom.issued["u-carol"]
    assert by_email.token and by_email.token != by_email.zak
    # Asked of Zoom to live longer than the token (reused for ZAK_REUSE seconds at most).
    assert zoom.zak_ttls[by_id.zak] > by_id.expires_at.seconds - by_id.issued_at.seconds
    (listening, *_) = server.events("listening")
    assert listening["host_starts"] == f"meeting via {zoom.url} (timeout 1 s)"
    # Each worker writes its lines as its calls end: wait for both.
    wait_for(lambda: len([line for line in server.events("rpc") if line.get("start_as")]) == 2)
    lines = [line for line in server.events("rpc") if line.get("start_as")]
    assert sorted(line["start_as"] for line in lines) == ["Alice@Example.com", "u-carol"]
    assert all(line["code"] == "OK" and line["zak_fp"] for line in lines)


def host_lines_by_worker(server: ServerProcess, count: int) -> dict[int, list[dict[str, object]]]:
    """The `rpc` lines of host starts (`start_as`) by worker, once `count` are logged."""
    wait_for(lambda: len([line for line in server.events("rpc") if line.get("start_as")]) >= count)
    found: dict[int, list[dict[str, object]]] = {}
    for line in server.events("rpc"):
        if line.get("start_as"):
            found.setdefault(int(line.get("worker", 0)), []).append(line)
    return found


def access_tokens_by_worker(
    lines: dict[int, list[dict[str, object]]], zoom: ZoomApi
) -> dict[int, set[str]]:
    """The access tokens each worker asked for its ZAKs with: its lines' `zak_fp`, the ZAK the
    stand-in issued under that fingerprint, the token that ZAK's request carried."""
    by_fingerprint = {fingerprint(zak): zak for zaks in zoom.issued.values() for zak in zaks}
    return {
        worker: {zoom.zak_tokens[by_fingerprint[str(line["zak_fp"])]] for line in worker_lines}
        for worker, worker_lines in lines.items()
    }


async def test_sixty_concurrent_host_starts_take_one_access_token_per_worker(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    users = ["alice@example.com", "bob@example.com", "u-carol"]
    # One channel is one connection, which one worker serves: a channel to each worker (the
    # worker read from the log line of a plain Sign on it), the starts spread over them.
    channels = list((await channel_per_worker(server, WORKERS, lambda c: call(c, PLAIN))).values())
    try:
        results = await asyncio.gather(
            *(call(channels[i % WORKERS], host_start(users[i % 3])) for i in range(60))
        )
    finally:
        await close(channels)
    assert codes(results) == {"OK": 60}
    for result, user in zip(results, [users[i % 3] for i in range(60)], strict=True):
        assert isinstance(result, pb.SignResponse)
        assert result.zak in zoom.issued[zoom.user_id(user) or ""]
    # Every worker served its half, and asked Zoom with one access token, its own: one
    # token request per worker, none shared.
    lines = host_lines_by_worker(server, 60)
    assert {worker: len(served) for worker, served in lines.items()} == dict.fromkeys(
        range(WORKERS), 60 // WORKERS
    )
    tokens = access_tokens_by_worker(lines, zoom)
    assert all(len(used) == 1 for used in tokens.values()), tokens
    assert len(set.union(*tokens.values())) == zoom.token_requests == WORKERS
    assert zoom.token_forms == {"body": WORKERS}  # grant_type and account_id in the body
    # Concurrent starts for one user share one Zoom call (per worker), or reuse its ZAK.
    assert zoom.zak_requests <= WORKERS * len(users)


async def test_the_policy_refuses_other_users_before_zoom_is_asked(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        refused = await call(channel, host_start("mallory@example.net"))
        participant = await call(
            channel,
            pb.SignRequest(
                meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT),
                start_as="alice@example.com",
            ),
        )
        bad_name = await call(channel, host_start("alice/../admin"))
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "mallory@example.net" in (refused.details() or "")
    info = error_info(refused)
    assert (info.reason, info.metadata["rule"]) == ("START_AS_NOT_ALLOWED", "start_as")
    for error in (participant, bad_name):
        assert isinstance(error, grpc.aio.AioRpcError)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = [d for d in details(error) if isinstance(d, error_details_pb2.BadRequest)]
        assert [v.field for v in violations[0].field_violations] == ["start_as"]
    assert (zoom.token_requests, zoom.zak_requests) == (0, 0)


async def test_a_user_zoom_does_not_know_is_not_found_naming_the_user(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        error = await call(channel, host_start("nobody@example.com"))
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "nobody@example.com" in (error.details() or "")
    info = error_info(error)
    assert (info.reason, info.metadata["subject"]) == ("ZOOM_USER_NOT_FOUND", "nobody@example.com")
    assert zoom.answers[404] == 1


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo:
    return next(d for d in details(error) if isinstance(d, error_details_pb2.RetryInfo))


async def test_zooms_429_of_the_access_token_is_resource_exhausted_with_its_retry_after(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    zoom.fail_429, zoom.fault_on, zoom.retry_after = 1.0, "oauth_token", 7
    async with grpc.aio.insecure_channel(server.target) as channel:
        error = await call(channel, host_start("alice@example.com"))
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (retry_info(error).retry_delay.seconds, retry_info(error).retry_delay.nanos) == (7, 0)
    assert error_info(error).reason == "ZOOM_RATE_LIMITED"
    assert "the access token of app 'meeting'" in (error.details() or "")
    assert (zoom.faulted, zoom.zak_requests) == ({"oauth_token": 1}, 0)


@pytest.mark.parametrize("form", ["iso", "http-date"])
async def test_zooms_daily_limit_429_of_the_zak_says_retry_at_its_date(
    server: ServerProcess, zoom: ZoomApi, form: str
) -> None:
    """The ZAK endpoint's 429 with Retry-After as a date (Zoom's daily-limit example is ISO
    8601, HTTP's own an HTTP-date): RetryInfo is the time until then, not the 1 s default."""
    zoom.fail_429, zoom.fault_on, zoom.retry_after_form = 1.0, "user_token", form
    zoom.retry_after = 5 * 3600  # a daily limit's reset, hours away
    async with grpc.aio.insecure_channel(server.target) as channel:
        error = await call(channel, host_start("alice@example.com"))
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = retry_info(error).retry_delay
    # The date is to the second and read up to a whole second: a few seconds less at most.
    assert 5 * 3600 - 5 <= delay.seconds <= 5 * 3600 and delay.nanos == 0
    assert error_info(error).reason == "ZOOM_RATE_LIMITED"
    assert "the ZAK of 'alice@example.com'" in (error.details() or "")
    # The access token came; the ZAK's request was the one refused.
    assert (zoom.token_requests, zoom.faulted, zoom.zak_requests) == (1, {"user_token": 1}, 0)


async def test_an_expired_access_token_is_replaced_and_the_call_retried_unseen(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        first = [
            await call(channel, host_start("alice@example.com", ttl=1800 + i)) for i in range(6)
        ]
        before = zoom.token_requests
        zoom.expire_tokens()
        after = [await call(channel, host_start("bob@example.com", ttl=1800 + i)) for i in range(6)]
    assert codes(first + after) == {"OK": 12}
    # Each worker that met the expired token took one new one, and answered all the same.
    assert zoom.answers[401] >= 1
    assert before < zoom.token_requests <= before + WORKERS


async def test_a_hanging_zoom_is_unavailable_within_the_deadline_and_plain_signs_go_on(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    zoom.hang = True
    async with grpc.aio.insecure_channel(server.target) as channel:
        # [zoom] timeout (1 s) comes first: UNAVAILABLE, said as a timeout.
        slow = await call(channel, host_start("alice@example.com"), timeout=10)
        # The call's own deadline comes first: UNAVAILABLE just before it.
        short = await call(channel, host_start("bob@example.com"), timeout=0.5)
        plain = await asyncio.gather(*(call(channel, PLAIN, timeout=5) for _ in range(20)))
    zoom.hang = False
    for error in (slow, short):
        assert isinstance(error, grpc.aio.AioRpcError)
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
        assert error_info(error).reason == "ZOOM_TIMEOUT"
    assert codes(plain) == {"OK": 20}
    assert all(not isinstance(r, grpc.aio.AioRpcError) and r.zak == "" for r in plain)


async def test_a_dead_zoom_is_unavailable(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = start(tmp_path / "server", dead, "whatever-secret")
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            results = await asyncio.gather(
                *(call(channel, host_start("alice@example.com", ttl=1800 + i)) for i in range(10)),
                *(call(channel, PLAIN) for _ in range(10)),
            )
    finally:
        assert server.stop(timeout=15) is not None
    assert codes(results[:10]) == {"UNAVAILABLE": 10}
    assert all(error_info(r).reason == "ZOOM_UNREACHABLE" for r in results[:10])
    assert codes(results[10:]) == {"OK": 10}
    assert "whatever-secret" not in server.logs()


@pytest.mark.parametrize("url", ["http://zoom.example.com", "http://10.0.0.7:8080"])
def test_an_http_api_url_beyond_loopback_is_refused_in_one_line(tmp_path: Path, url: str) -> None:
    (tmp_path / "sdksign.toml").write_text(config_text(url, oauth_url="https://zoom.us"))
    done = run(
        [BIN / "sdksign", "serve", "--config", "sdksign.toml", "--listen", "127.0.0.1:0"],
        env={**ENV, "S": SECRET, "S2S_SECRET": "not-shown-anywhere"},
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sdksign: configuration error: ")
    assert "[zoom] api_url: http:// only to loopback" in lines[0]
    assert "not-shown-anywhere" not in done.stderr


def test_the_cli_the_python_client_and_grpcurl_start_as(
    server: ServerProcess, zoom: ZoomApi
) -> None:
    env = {**ENV, "SDKSIGN_BEARER_TOKEN": TOKEN}
    sign: list[str | Path] = [
        BIN / "sdksign",
        "sign",
        "--target",
        server.target,
        "--meeting-number",
        MEETING,
    ]
    plain = run([*sign, "--role", "host", "--start-as", "alice@example.com"], env=env)
    assert plain.returncode == 0, plain.stderr
    token, zak = plain.stdout.splitlines()
    assert token.count(".") == 2 and zak in zoom.issued["u-alice"]
    as_json = run([*sign, "--role", "host", "--start-as", "bob@example.com", "--json"], env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["zak"] in zoom.issued["u-bob"]
    refused = run([*sign, "--role", "participant", "--start-as", "u-bob"], env=env)
    assert refused.returncode == 3 and "--start-as: is allowed only with" in refused.stderr
    with Client(server.target, bearer_token=TOKEN) as client:
        signed = client.sign_meeting(MEETING, Role.HOST, start_as="u-carol")
    assert signed.zak in zoom.issued["u-carol"]
    assert signed.zak not in repr(signed) and signed.token not in repr(signed)
    request = {"meeting": {"meetingNumber": MEETING, "role": "ROLE_HOST"}, "startAs": "u-carol"}
    by_reflection = run(
        [
            BIN / "grpcurl",
            "-plaintext",
            "-H",
            f"authorization: Bearer {TOKEN}",
            "-d",
            json.dumps(request),
            server.target,
            "sdksign.v1.SignatureService/Sign",
        ],
        env=ENV,
    )
    assert by_reflection.returncode == 0, by_reflection.stderr
    assert json.loads(by_reflection.stdout)["zak"] in zoom.issued["u-carol"]


def test_make_try_host_start_prints_a_token_and_a_zak() -> None:
    """What docs/join.md's five-minute try runs (make try-host-start)."""
    done = run(
        [sys.executable, "-m", "harness.try_host_start"], env={**ENV, "PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    token, zak = lines[1], lines[2]
    assert token.count(".") == 2 and zak.startswith("standin-zak-")
    assert "not by Zoom" in done.stdout


async def test_a_client_secret_rotated_on_sighup_takes_a_new_access_token(
    tmp_path: Path, zoom: ZoomApi
) -> None:
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "s2s.secret").write_text(zoom.client_secret)
    text = config_text(zoom.url).replace(
        'client_secret_env = "S2S_SECRET"', 'client_secret_file = "s2s.secret"'
    )
    (folder / "sdksign.toml").write_text(text)
    args = ["--config", str(folder / "sdksign.toml"), "--workers", str(WORKERS)]
    server = start_server_process(folder, {"S": SECRET}, args, listening=WORKERS)
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            before = await call(channel, host_start("alice@example.com"))
            zoom.client_secret = "rotated-" + secrets.token_urlsafe(24)  # Zoom's side first
            (folder / "s2s.secret").write_text(zoom.client_secret)
            server.process.send_signal(signal.SIGHUP)
            await asyncio.to_thread(
                wait_for, lambda: len(server.events("configuration reloaded")) >= WORKERS
            )
            tokens = zoom.token_requests
            after = await asyncio.gather(
                *(call(channel, host_start("bob@example.com")) for _ in range(8))
            )
    finally:
        assert server.stop(timeout=15) is not None
        assert_no_secret_logged(server, zoom)
    assert isinstance(before, pb.SignResponse)
    assert codes(after) == {"OK": 8}
    assert tokens < zoom.token_requests <= tokens + WORKERS


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within 15 s"
        time.sleep(0.05)
