"""SignatureService on a real grpc.aio server on loopback, called through sdksign.client."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sdksign.client import AsyncClient, Client, Role, SdkSignError
from sdksign.server import App, Config, load_config
from sdksign.server.runtime import service as _service
from sdksign.server.runtime.refresh import read_again
from sdksign.server.runtime.serve import SERVICE_NAME, add_port, build_server, reload, serve
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.helpers import HS256, meeting_claims, raw_token


@pytest.fixture
async def client(target: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(target) as client:
        yield client


async def test_sign_then_verify(client: AsyncClient, meeting_app: App) -> None:
    signed = await client.sign_meeting("94843468909", Role.HOST, ttl=timedelta(hours=3))
    assert signed.app == "meeting" and signed.sdk_key == meeting_app.sdk_key
    assert signed.expires_at - signed.issued_at == timedelta(hours=3)
    assert signed.token not in repr(signed)
    result = await client.verify(signed.token, expected_meeting_number="94843468909")
    assert result.valid, result.explain()
    assert (result.app, result.kind, result.problems) == ("meeting", "MEETING_WEB", [])
    assert (
        result.claims is not None
        and result.claims["role"] == 1
        and result.claims["mn"] == "94843468909"
    )
    assert result.header == {"alg": "HS256", "typ": "JWT"}
    # Struct carries numbers as doubles; the client gives whole ones back as int.
    assert all(type(result.claims[name]) is int for name in ("role", "iat", "exp", "tokenExp"))
    iat = int(signed.issued_at.timestamp())
    assert f'"iat": {iat}' in result.explain() and f'"iat": {iat}.0' not in result.explain()


async def test_native_and_video_tokens_verify(client: AsyncClient) -> None:
    native = await client.sign_meeting()
    assert (await client.verify(native.token)).kind == "MEETING_NATIVE"
    video = await client.sign_video(
        "math-101", Role.PARTICIPANT, geo_regions=["US"], audio_webrtc_mode=True
    )
    result = await client.verify(video.token, app="video")
    assert result.valid and result.kind == "VIDEO" and result.claims is not None
    assert result.claims["geo_regions"] == "US" and result.claims["audio_webrtc_mode"] == 1


async def test_invalid_token_is_an_ok_answer_listing_problems(client: AsyncClient) -> None:
    signed = await client.sign_meeting("94843468909", Role.PARTICIPANT)
    result = await client.verify(signed.token, expected_meeting_number="111111111")
    assert not result.valid
    assert result.codes == ["MEETING_MISMATCH"]
    assert "111111111" in result.problems[0].message
    alone = await client.verify(signed.token.rsplit(".", 1)[1])
    assert alone.codes == ["NOT_A_JWT"] and alone.claims is None
    assert "INVALID" in alone.explain() and "NOT_A_JWT" in alone.explain()


async def test_sign_refusal_names_fields_with_bad_request_details(client: AsyncClient) -> None:
    with pytest.raises(SdkSignError) as caught:
        await client.sign_meeting("9484-3468", Role.HOST, ttl=60)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {"meeting.meeting_number", "ttl"}
    assert "meeting.meeting_number" in error.message and "ttl" in error.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"token": ""}, "token"),
        ({"token": "x" * 8193}, "token"),
        ({"token": "a.b.c", "app": "nope"}, "app"),
        ({"token": "a.b.c", "expected_meeting_number": "12-34"}, "expected_meeting_number"),
    ],
)
async def test_verify_refuses_bad_requests(
    client: AsyncClient, kwargs: dict[str, str], field: str
) -> None:
    with pytest.raises(SdkSignError) as caught:
        await client.verify(**kwargs)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in caught.value.violations] == [field]


async def test_missing_app_kind_is_failed_precondition(meeting_app: App) -> None:
    server, _ = build_server(Config(apps=(meeting_app,), source="tests"))
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        async with AsyncClient(f"127.0.0.1:{port}") as client:
            with pytest.raises(SdkSignError) as caught:
                await client.sign_video("s", Role.HOST)
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "no video app is configured" in caught.value.message
    finally:
        await server.stop(None)


async def test_unexpected_error_is_internal_without_details(
    target: str, monkeypatch: pytest.MonkeyPatch, meeting_secret: str
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError(f"boom {meeting_secret}")

    monkeypatch.setattr(_service, "mint", broken)
    async with AsyncClient(target) as client:
        with pytest.raises(SdkSignError) as caught:
            await client.sign_meeting()
        assert caught.value.code == grpc.StatusCode.INTERNAL
        assert "boom" not in caught.value.message and meeting_secret not in caught.value.message
        # The worker survived: the next call is answered.
        assert (await client.verify("a.b.c")).valid is False


async def test_oversized_message_is_refused_by_grpc(client: AsyncClient) -> None:
    # (a token this long the client itself refuses, before sending: test_client_limits.py)
    with pytest.raises(SdkSignError) as caught:
        await client.sign_video("x" * 100_000, Role.HOST)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_concurrent_calls_are_all_answered(client: AsyncClient) -> None:
    numbers = [str(100000000 + i) for i in range(200)]
    signed = await asyncio.gather(*(client.sign_meeting(n, Role.PARTICIPANT) for n in numbers))
    results = await asyncio.gather(
        *(
            client.verify(s.token, expected_meeting_number=n)
            for s, n in zip(signed, numbers, strict=True)
        )
    )
    assert all(r.valid for r in results)
    assert len({s.token for s in signed}) == 200


async def test_health_per_service(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        overall = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert SERVICE_NAME == "sdksign.v1.SignatureService"


async def test_sync_client(target: str, meeting_app: App) -> None:
    # The server runs on this test's event loop, so the blocking client calls from a thread.
    def calls() -> tuple[str, bool]:
        with Client(target) as client:
            signed = client.sign_meeting(123456789, Role.PARTICIPANT)
            return signed.sdk_key, client.verify(signed.token).valid

    assert await asyncio.to_thread(calls) == (meeting_app.sdk_key, True)


class Flaky(pb_grpc.SignatureServiceServicer):
    """A stand-in servicer (a unit seam) that fails the first `failures` calls with `code`."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.calls = 0
        self.failures = failures
        self.code = code

    async def Verify(
        self, request: pb.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyResponse:
        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(self.code, "try again")
        return pb.VerifyResponse(valid=True)

    async def Sign(
        self, request: pb.SignRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignResponse:
        await asyncio.sleep(5)
        return pb.SignResponse()


async def serve_flaky(servicer: Flaky) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pb_grpc.add_SignatureServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("code", "failures", "retries", "calls", "ok"),
    [
        (grpc.StatusCode.UNAVAILABLE, 2, 3, 3, True),
        (grpc.StatusCode.UNAVAILABLE, 9, 3, 4, False),
        (grpc.StatusCode.UNAVAILABLE, 9, 0, 1, False),
        (grpc.StatusCode.INVALID_ARGUMENT, 1, 3, 1, False),
        (grpc.StatusCode.INTERNAL, 1, 3, 1, False),
    ],
)
async def test_client_retries_unavailable_only(
    code: grpc.StatusCode, failures: int, retries: int, calls: int, ok: bool
) -> None:
    servicer = Flaky(failures, code)
    server, address = await serve_flaky(servicer)
    try:
        async with AsyncClient(address, retries=retries) as client:
            if ok:
                assert (await client.verify("t")).valid
            else:
                with pytest.raises(SdkSignError) as caught:
                    await client.verify("t")
                assert caught.value.code == code
        assert servicer.calls == calls
    finally:
        await server.stop(None)


async def test_client_deadline() -> None:
    server, address = await serve_flaky(Flaky(0, grpc.StatusCode.OK))
    try:
        async with AsyncClient(address, timeout=0.2) as client:
            with pytest.raises(SdkSignError) as caught:
                await client.sign_meeting()
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await server.stop(None)


def slow_sign(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Make every Sign take 0.5 s; the event is set when one has started."""
    in_flight = asyncio.Event()
    original = _service.SignatureService.Sign

    async def slow(self: Any, request: pb.SignRequest, context: Any) -> pb.SignResponse:
        in_flight.set()
        await asyncio.sleep(0.5)
        return await original(self, request, context)

    monkeypatch.setattr(_service.SignatureService, "Sign", slow)
    return in_flight


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_serve_lets_calls_in_flight_finish_on_sigterm(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = slow_sign(monkeypatch)
    address = free_address()
    # No drain: the test is about calls in flight, which shutdown_grace lets finish.
    serving = asyncio.create_task(serve(dataclasses.replace(config, drain=0), address))
    async with AsyncClient(address, retries=4) as client:
        await client.verify("a.b.c")  # up and answering (retried while it starts)
        slow = asyncio.create_task(client.sign_meeting())
        await in_flight.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        signed = await slow
        assert signed.app == "meeting"
        await asyncio.wait_for(serving, timeout=15)
    async with AsyncClient(address, retries=0) as late:
        with pytest.raises(SdkSignError) as caught:
            await late.verify("a.b.c")
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_sighup_reload_leaves_calls_in_flight_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = '[[apps]]\nname = "{0}"\nkind = "meeting"\nsdk_key = "Key{0}"\nsecret_env = "S"\n'
    anonymous = '[anonymous]\nroles = ["participant", "host"]\n[server]\ndrain = 0\n'
    path = tmp_path / "sdksign.toml"
    path.write_text(app.format("one") + anonymous)
    monkeypatch.setenv("S", "reload-test-secret-0123456789abcdef")
    in_flight = slow_sign(monkeypatch)
    address = free_address()
    serving = asyncio.create_task(serve(load_config(path), address))
    try:
        async with AsyncClient(address, retries=4) as client:
            await client.verify("a.b.c")  # up and answering
            slow = asyncio.create_task(client.sign_meeting("123456789", Role.HOST, app="one"))
            await in_flight.wait()
            path.write_text(app.format("one") + app.format("two") + anonymous)
            os.kill(os.getpid(), signal.SIGHUP)
            assert (await slow).app == "one"
            # The reload reads the file in a thread: "two" exists once it has been taken.
            deadline = time.monotonic() + 10
            while True:
                try:
                    signed = await client.sign_meeting("123456789", Role.HOST, app="two")
                    break
                except SdkSignError as exc:
                    assert exc.code == grpc.StatusCode.INVALID_ARGUMENT, exc
                    assert time.monotonic() < deadline, "the reload was never taken"
            assert signed.app == "two"
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, timeout=15)


@pytest.mark.parametrize("retries", [-1, 5])
def test_retries_out_of_range_are_refused(retries: int) -> None:
    with pytest.raises(ValueError, match="retries must be from 0 to 4"):
        Client("127.0.0.1:1", retries=retries)


@pytest.mark.parametrize("role", [[1], {"r": 1}, True, "1", None])
async def test_odd_claim_values_get_an_answer_not_an_error(
    client: AsyncClient, meeting_app: App, role: object
) -> None:
    token = raw_token(
        HS256, meeting_claims(meeting_app.sdk_key, int(time.time()), role=role), meeting_app.secret
    )
    result = await client.verify(token)
    assert result.valid is False
    assert result.codes in (["WRONG_CLAIM_TYPE"], ["MISSING_CLAIM"])


@pytest.mark.parametrize("depth", [31, 60, 500])
async def test_deeply_nested_claims_are_shown_cut_short(
    client: AsyncClient, meeting_app: App, depth: int
) -> None:
    nested: object = 1
    for _ in range(depth):
        nested = [nested]
    claims = meeting_claims(meeting_app.sdk_key, int(time.time()), extra=nested)
    result = await client.verify(raw_token(HS256, claims, meeting_app.secret))
    assert result.valid and result.claims is not None
    shown = result.claims["extra"]
    for _ in range(min(depth, 31)):
        shown = shown[0]
    assert shown == (1 if depth <= 31 else "(nested too deeply to show)")


def test_reload_keeps_what_was_fixed_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_stream: io.BytesIO
) -> None:
    app = '[[apps]]\nname = "{0}"\nkind = "meeting"\nsdk_key = "Key{0}"\nsecret_env = "S"\n'
    path = tmp_path / "sdksign.toml"
    path.write_text(app.format("one") + "[server]\ndrain = 7\n")
    monkeypatch.setenv("S", "reload-test-secret-0123456789abcdef")
    service = _service.SignatureService(
        dataclasses.replace(load_config(path), drain=0, flags=frozenset({"drain"}))
    )  # --drain 0
    path.write_text(
        app.format("one") + app.format("two") + "[server]\ndrain = 9\nshutdown_grace = 3\n"
    )
    reload(service, "127.0.0.1:1", read_again(service.config))
    assert [a.name for a in service.config.apps] == ["one", "two"]
    assert (service.config.drain, service.config.shutdown_grace) == (0, 10)
    # The warning names what the file changed in vain: not drain, which --drain gave.
    warned = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [line["keep"] for line in warned if "fixed at start" in line["event"]] == [
        ["shutdown_grace"]
    ]
    path.write_text(app.format("one") + "[server]\ndrain = 9\n")  # drain alone: no warning
    reload(service, "127.0.0.1:1", read_again(service.config))
    warned = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert len([line for line in warned if "fixed at start" in line["event"]]) == 1
    assert service.config.flags == frozenset({"drain"}) and service.config.drain == 0
