"""Bad input of every kind gets a named status, never UNKNOWN, INTERNAL or no answer.

Raw request bodies go through a gRPC channel that sends bytes as they are; malformed
gRPC frames go over raw HTTP/2 (the h2 library), because no gRPC client sends them.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import Callable

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.reliability.slowreaders import HELD, window_zero_streams
from sdksign.client import AsyncClient, Role, SdkSignError
from sdksign.server import Config
from sdksign.server.errors import MAX_VIOLATIONS
from sdksign.server.runtime import deadlines as request_deadlines
from sdksign.server.runtime.serve import MAX_METADATA_BYTES, add_port, build_server
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import MEETING_KEY, rpc_lines
from tests.helpers import HS256, meeting_claims, raw_token
from tests.unit.test_metrics import counted

UNARY = [
    "/sdksign.v1.SignatureService/Sign",
    "/sdksign.v1.SignatureService/Verify",
    "/sdksign.v1.ZoomSampleService/Sign",
    "/grpc.health.v1.Health/Check",
]
# Not a protobuf message: field 0 does not exist, and the varint never ends.
GARBAGE = b"\x00\xff\xff\xff"


def bad_request(error: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest:
    """The BadRequest detail of a refused call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                found = error_details_pb2.BadRequest()
                if detail.Unpack(found):
                    return found
    raise AssertionError(f"no BadRequest in {error!r}")


@pytest.mark.parametrize("method", UNARY)
async def test_a_body_that_is_not_the_message_is_invalid_argument(target: str, method: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(GARBAGE, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a" in (refused.value.details() or "")
    assert "protobuf" in bad_request(refused.value).field_violations[0].description


async def test_health_watch_with_a_bad_body_is_invalid_argument(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_stream("/grpc.health.v1.Health/Watch")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call(GARBAGE, timeout=5):
                pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_reflection_with_a_bad_body_is_invalid_argument(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call(iter([GARBAGE]), timeout=5):
                pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def h2_call(
    target: str,
    body: bytes | None,
    end_stream: bool = True,
    headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] = lambda h: h,
) -> dict[str, str]:
    """One Sign over raw HTTP/2 with `body` as its DATA (none at all if None), its headers
    changed by `headers`; the answer's headers and trailers together, or {"reset": code}.
    Fails when nothing comes back within 10 s."""
    host, port = target.rsplit(":", 1)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(
            stream,
            headers(
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/sdksign.v1.SignatureService/Sign"),
                    (":authority", target),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ]
            ),
            end_stream=body is None and end_stream,
        )
        if body is not None:
            connection.send_data(stream, body, end_stream=end_stream)
        sock.sendall(connection.data_to_send())
        answer: dict[str, str] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {answer}"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    answer.update(dict(event.headers))  # type: ignore[arg-type]
                if isinstance(event, h2.events.StreamReset):
                    return {"reset": str(event.error_code)}
                if isinstance(event, h2.events.StreamEnded):
                    return answer
            sock.sendall(connection.data_to_send())
    raise AssertionError("no answer within 10 s")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x00\x00\x00\x00\x10abc", id="length-prefix-longer-than-body"),
        pytest.param(b"", id="empty-body"),
        pytest.param(b"\x00\x00\x00", id="three-byte-body"),
        pytest.param(None, id="no-data-frame"),
    ],
)
async def test_a_cut_short_frame_then_end_of_stream_is_answered(
    target: str, body: bytes | None
) -> None:
    answer = await asyncio.to_thread(h2_call, target, body)
    assert answer.get("grpc-status") == str(grpc.StatusCode.INVALID_ARGUMENT.value[0]), answer
    assert "whole request message" in answer.get("grpc-message", "")


async def test_a_stream_that_never_sends_its_request_is_ended(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_deadlines, "REQUEST_READ_TIMEOUT", 0.5)
    monkeypatch.setattr(request_deadlines, "SWEEP_INTERVAL", 0.1)
    answer = await asyncio.to_thread(h2_call, target, b"\x00\x00\x00\x00\x10abc", False)
    assert answer.get("grpc-status") == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0]), answer
    assert "no complete request message" in answer.get("grpc-message", "")


async def test_many_violations_still_reach_a_default_client(target: str) -> None:
    regions = [f"bad-region-{i}-" + "x" * 300 for i in range(60)]
    async with AsyncClient(target) as client:
        with pytest.raises(SdkSignError) as refused:
            await client.sign_video("math-101", Role.HOST, geo_regions=regions)
    error = refused.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED
    assert len(error.violations) == MAX_VIOLATIONS + 1
    assert error.violations[-1].description == f"{60 - MAX_VIOLATIONS} more violations not listed"
    assert all(len(v.description) <= 200 for v in error.violations)
    assert "57 more" in error.message and len(error.message) < 1200


async def test_metadata_is_taken_or_refused_the_same_way_every_time(target: str) -> None:
    """Up to MAX_METADATA_BYTES (names, values and 32 bytes an entry, as gRPC counts them),
    metadata is taken; over it, refused with RESOURCE_EXHAUSTED. gRPC's default refused
    between 8 and 16 KiB at random."""
    check = health_pb2.HealthCheckRequest(service="")
    got: dict[int, set[grpc.StatusCode]] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(8):
            for pad in (9_000, 15_000, 20_000, MAX_METADATA_BYTES - 1_000, MAX_METADATA_BYTES):
                try:
                    await stub.Check(check, metadata=(("x-pad", "a" * pad),), timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    code = error.code()
                got.setdefault(pad, set()).add(code)
    ok, refused = {grpc.StatusCode.OK}, {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert got == {
        9_000: ok,
        15_000: ok,
        20_000: ok,
        MAX_METADATA_BYTES - 1_000: ok,
        MAX_METADATA_BYTES: refused,
    }


@pytest.mark.parametrize("mn", ["\ud800", "12\udfff34", "\udfff\ud800"])
async def test_a_lone_surrogate_in_a_signed_claim_is_answered(
    target: str, meeting_secret: str, mn: str
) -> None:
    payload = json.dumps(meeting_claims(MEETING_KEY, int(time.time()), mn=mn))  # \\udXXX escapes
    token = raw_token(HS256, payload, meeting_secret.encode())
    async with AsyncClient(target) as client:
        result = await client.verify(token, expected_meeting_number="94843468909")
    assert not result.valid
    assert {p.code for p in result.problems} >= {"MEETING_MISMATCH"}
    assert any("\\ud" in p.message for p in result.problems)


async def test_the_server_still_answers_after_all_that(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        for body in (GARBAGE, b"\x00\x00"):
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary("/sdksign.v1.SignatureService/Sign")(body, timeout=5)
    async with AsyncClient(target) as client:
        assert (await client.sign_meeting("123456789", Role.PARTICIPANT)).token


async def test_health_watch_still_streams(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(anext(aiter(watch)), 5)
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


# --- what gRPC's core answers before our code runs, and what the log and metrics say -------

SIGN_MESSAGE = pb.SignRequest(
    meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
).SerializeToString()
SIGN_FRAME = b"\x00" + len(SIGN_MESSAGE).to_bytes(4, "big") + SIGN_MESSAGE
OVERSIZED = b"\x00" + (70_000).to_bytes(4, "big") + b"\x0a" * 10_000  # says 70,000 bytes


def replaced(
    name: str, value: str | None
) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    """Headers with `name` set to `value` (added if missing), or left out when None."""

    def change(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if value is None:
            return [(k, v) for k, v in headers if k != name]
        if name not in dict(headers):
            return [*headers, (name, value)]
        return [(k, value if k == name else v) for k, v in headers]

    return change


SIGN_LABELS = {"grpc_service": "sdksign.v1.SignatureService", "grpc_method": "Sign"}
UNKNOWN_LABELS = {"grpc_service": "unknown", "grpc_method": "unknown"}


@pytest.mark.parametrize(
    ("body", "headers", "client_got", "logged", "labels"),
    [
        # What the client gets is the core's; the log and the metrics say CANCELLED and why
        # (docs/operations.md): never the INVALID_ARGUMENT the server did not send.
        (b"\x01" + SIGN_FRAME[1:], replaced("x", "y"), "13", ("CANCELLED", True), SIGN_LABELS),
        (OVERSIZED, replaced("x", "y"), "8", ("CANCELLED", True), SIGN_LABELS),
        # The core cancels these as they start: to the server, a client that cancelled.
        (SIGN_FRAME, replaced("grpc-timeout", "abc"), "13", ("CANCELLED", False), SIGN_LABELS),
        (SIGN_FRAME, replaced("x-trace-bin", "!!"), "13", ("CANCELLED", False), SIGN_LABELS),
        # An unknown method: UNIMPLEMENTED, logged and counted as such.
        (
            SIGN_FRAME,
            replaced(":path", "/sdksign.v1.SignatureService/Nope"),
            "12",
            ("UNIMPLEMENTED", False),
            UNKNOWN_LABELS,
        ),
        (SIGN_FRAME, replaced(":path", "/x.Y/Z"), "12", ("UNIMPLEMENTED", False), UNKNOWN_LABELS),
    ],
    ids=[
        "compressed-flag",
        "over-64-kib",
        "bad-timeout",
        "bad-bin",
        "unknown-method",
        "unknown-service",
    ],
)
async def test_what_the_core_answers_is_logged_and_counted_as_it_is(
    log_stream: io.BytesIO,
    target: str,
    body: bytes,
    headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]],
    client_got: str,
    logged: tuple[str, bool],
    labels: dict[str, str],
) -> None:
    code, explained = logged
    handled = counted("grpc_server_handled_total", grpc_code=code, grpc_type="unary", **labels)
    answer = await asyncio.to_thread(h2_call, target, body, True, headers)
    assert answer.get("grpc-status") == client_got, answer
    (line,) = await rpc_lines(log_stream)
    assert line["code"] == code
    assert ("answered the call before its request was read" in line.get("reason", "")) == explained
    assert handled() == 1


@pytest.mark.parametrize(
    "headers",
    [replaced(":method", "GET"), replaced("te", None)],
    ids=["bad-method", "no-te"],
)
async def test_what_never_reaches_our_code_is_reset_and_not_logged(
    log_stream: io.BytesIO,
    target: str,
    headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]],
) -> None:
    # The core resets these streams (PROTOCOL_ERROR) before any handler: docs/operations.md
    # says so, and Envoy never sends them (it writes :method and te itself).
    assert await asyncio.to_thread(h2_call, target, SIGN_FRAME, True, headers) == {"reset": "2"}
    await asyncio.to_thread(h2_call, target, SIGN_FRAME)  # a good call after it, logged
    lines = await rpc_lines(log_stream)
    assert [line["code"] for line in lines] == ["OK"]


async def test_a_stream_the_core_ended_is_counted_cancelled(target: str) -> None:
    labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch"}
    cancelled = counted(
        "grpc_server_handled_total", grpc_code="CANCELLED", grpc_type="server_stream", **labels
    )
    unknown = counted(
        "grpc_server_handled_total", grpc_code="UNKNOWN", grpc_type="server_stream", **labels
    )
    message = health_pb2.HealthCheckRequest(service="").SerializeToString()
    body = b"\x01" + len(message).to_bytes(4, "big") + message  # flagged compressed
    path = replaced(":path", "/grpc.health.v1.Health/Watch")
    answer = await asyncio.to_thread(h2_call, target, body, True, path)
    assert answer.get("grpc-status") == "13"
    deadline = time.monotonic() + 5
    while cancelled() < 1:
        assert time.monotonic() < deadline and unknown() == 0
        await asyncio.sleep(0.02)
    assert (cancelled(), unknown()) == (1, 0)


async def test_an_answer_the_client_never_takes_is_logged_deadline_exceeded_once(
    log_stream: io.BytesIO, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client with a receive window of 0 never takes its answer: ANSWER_WRITE_TIMEOUT after
    # the handler returned, the call is logged and counted DEADLINE_EXCEEDED; its done
    # callback, when its connection closes, logs and counts nothing more (never OK).
    monkeypatch.setattr(request_deadlines, "ANSWER_WRITE_TIMEOUT", 0.5)
    monkeypatch.setattr(request_deadlines, "SWEEP_INTERVAL", 0.1)
    given_up = counted(
        "grpc_server_handled_total", grpc_code="DEADLINE_EXCEEDED", grpc_type="unary", **SIGN_LABELS
    )
    ok = counted("grpc_server_handled_total", grpc_code="OK", grpc_type="unary", **SIGN_LABELS)
    host, port = target.rsplit(":", 1)
    release = asyncio.Event()
    held = asyncio.create_task(window_zero_streams(host, int(port), 1, release))
    (line,) = await rpc_lines(log_stream)
    assert line["code"] == "DEADLINE_EXCEEDED", line
    assert line["reason"] == "the answer was not taken by the client within 0.5 s"
    assert line["duration_ms"] >= 500 and line["peer"].startswith("ipv4:127.0.0.1:")
    assert (given_up(), ok()) == (1, 0)
    release.set()  # the connection closes: the core ends the call, and runs its callback
    assert await held == {HELD: 1}
    await asyncio.sleep(0.5)
    assert len(await rpc_lines(log_stream)) == 1
    assert (given_up(), ok()) == (1, 0)


async def test_an_answer_still_waiting_when_the_server_stops_is_logged_cancelled(
    log_stream: io.BytesIO, config: Config
) -> None:
    # Stopped with its grace over, the server's core cancels the call: logged CANCELLED, once,
    # whether gRPC runs the call's done callback before `stopped` or not.
    deadlines = request_deadlines.RequestDeadlines()
    server, _ = build_server(config, deadlines=deadlines)
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    release = asyncio.Event()
    held = asyncio.create_task(window_zero_streams("127.0.0.1", port, 2, release))
    try:
        deadline = time.monotonic() + 5
        while len(deadlines._answering) < 2:  # both handlers have returned
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        deadlines.stopping(0.2)
        await server.stop(0.2)
        await deadlines.stopped()
    finally:
        release.set()
        # The client's h2 may take the server's closing (GOAWAY, then a ping) amiss.
        await asyncio.gather(held, return_exceptions=True)
    await asyncio.sleep(0.2)
    lines = await rpc_lines(log_stream, count=2)
    assert [line["code"] for line in lines] == ["CANCELLED", "CANCELLED"], lines
    assert {line["reason"] for line in lines} == {
        "the server stopped before the client took the answer"
    }
