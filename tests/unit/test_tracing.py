"""Traces: a span per RPC from a real in-process server, read back from the SDK's in-memory
exporter (and from real OTLP receivers on loopback); nothing secret on any span."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bench.reliability.logscan import token_pieces, whole_tokens
from sdksign.server import Config, ConfigError, load_config
from sdksign.server.access.policy import Caller, Policy, Rule
from sdksign.server.observe import tracing as _tracing
from sdksign.server.observe.spans import exporters
from sdksign.server.runtime import service as _service
from sdksign.server.runtime.serve import add_port, build_server, reloaded
from sdksign.server.zoom.jwt import fingerprint
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import rpc_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
MEETING = "94843468909"
SESSION = "math-101-secret-session"
BEARER = "caller-bearer-token-0123456789"
SIGN = "sdksign.v1.SignatureService/Sign"
APP = '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\n'


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Traces on, every span to an in-memory exporter (through the same batching as in
    production); off again after the test."""
    memory = InMemorySpanExporter()
    _tracing.start([memory])
    try:
        yield memory
    finally:
        _tracing.shutdown()


async def spans(exporter: InMemorySpanExporter, count: int = 1) -> list[ReadableSpan]:
    """The finished spans, once there are `count` of them or 5 s have passed: the server
    ends a call's span once its answer has left, after the client may have it (the event
    loop runs meanwhile: the server is in this process)."""
    deadline = time.monotonic() + 5
    while True:
        _tracing.flush()
        found = list(exporter.get_finished_spans())
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)


@pytest.fixture
def guarded(config: Config) -> Config:
    """The test apps, a caller with a bearer token allowed participant tokens only, and
    anonymous callers (who may do anything)."""
    backend = Caller(
        name="backend",
        rule=Rule(roles=frozenset({"participant"})),
        token_sha256=hashlib.sha256(BEARER.encode()).digest(),
    )
    return dataclasses.replace(config, policy=Policy(callers=(backend,)), policy_configured=True)


@pytest.fixture
async def channel(guarded: Config) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to an in-process server serving `guarded`, built as `serve` builds it."""
    server, _ = build_server(guarded)
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.SignatureServiceStub:
    return pb_grpc.SignatureServiceStub(channel)


def sign_request(role: pb.Role = pb.ROLE_HOST, meeting: str = MEETING, app: str = "") -> Any:
    return pb.SignRequest(app=app, meeting=pb.MeetingClaims(meeting_number=meeting, role=role))


async def refused(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    code: grpc.StatusCode = caught.value.code()
    return code


# --- one span per call, continuing the caller's trace -----------------------------------------


async def test_a_given_traceparent_is_continued(
    exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    metadata = (("traceparent", TRACEPARENT), ("tracestate", "vendor=opaque"))
    await stub.Sign(sign_request(), metadata=metadata)
    [span] = await spans(exporter)
    assert span.name == SIGN and span.kind is SpanKind.SERVER
    assert span.context is not None and span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID and span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "opaque"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "sdksign.v1.SignatureService",
        "rpc.method": "Sign",
        "rpc.grpc.status_code": 0,
        "sdksign.app": "meeting",
        "sdksign.kind": "meeting",
        "sdksign.role": "host",
        "sdksign.caller": "anonymous",
    }


async def test_without_a_traceparent_each_call_starts_a_trace(
    exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    await stub.Sign(sign_request())
    await stub.Sign(sign_request(), metadata=(("traceparent", "00-not-a-trace-01"),))
    first, second = await spans(exporter, count=2)
    assert first.parent is None and second.parent is None  # a malformed one is no parent
    assert first.context is not None and second.context is not None
    assert first.context.trace_id != second.context.trace_id
    assert 0 not in (first.context.trace_id, second.context.trace_id)


async def test_health_checks_make_no_span(
    exporter: InMemorySpanExporter, channel: grpc.aio.Channel, stub: pb_grpc.SignatureServiceStub
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(3):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    await stub.Sign(sign_request())
    assert [span.name for span in await spans(exporter)] == [SIGN]


async def test_verify_spans_say_whether_the_token_was_valid(
    exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    token = (await stub.Sign(sign_request(role=pb.ROLE_PARTICIPANT))).token
    await stub.Verify(pb.VerifyRequest(token=token, expected_meeting_number="111"))
    attributes = dict((await spans(exporter, count=2))[1].attributes or {})
    assert attributes["rpc.method"] == "Verify" and attributes["rpc.grpc.status_code"] == 0
    assert attributes["sdksign.valid"] is False
    assert list(cast(Sequence[str], attributes["sdksign.problems"])) == ["MEETING_MISMATCH"]
    assert attributes["sdksign.role"] == "participant" and attributes["sdksign.app"] == "meeting"


# --- the status: ERROR only when the server failed (OpenTelemetry's gRPC conventions) -------


async def test_refused_and_invalid_calls_leave_the_status_unset_with_their_code(
    exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    bearer = (("authorization", f"Bearer {BEARER}"),)
    codes = [  # one after the other: a call starts when it is made
        await refused(stub.Sign(sign_request(meeting="12-34-not-a-number"))),
        await refused(stub.Sign(sign_request(), metadata=bearer)),  # host: not this caller's
        await refused(stub.Sign(sign_request(), metadata=(("authorization", "Bearer x"),))),
    ]
    assert codes == [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    ]
    found = await spans(exporter, count=3)
    # The caller's to fix, not the server's failure: no ERROR, the code in its attribute.
    assert [s.status.status_code for s in found] == [StatusCode.UNSET] * 3
    assert [s.status.description for s in found] == [None] * 3
    assert [(s.attributes or {})["rpc.grpc.status_code"] for s in found] == [3, 7, 16]
    assert (found[1].attributes or {})["sdksign.caller"] == "backend"
    assert (found[1].attributes or {})["sdksign.rule"] == "role"
    assert "12-34" not in json.dumps([s.to_json() for s in found])  # the message echoes it


async def test_a_body_that_is_no_request_is_an_invalid_argument_span(
    exporter: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    raw = channel.unary_unary(f"/{SIGN}", request_serializer=None, response_deserializer=None)
    assert await refused(raw(b"\xff\xff\xff")) == grpc.StatusCode.INVALID_ARGUMENT
    [span] = await spans(exporter)
    assert span.name == SIGN and span.status.status_code is StatusCode.UNSET
    assert (span.attributes or {})["rpc.grpc.status_code"] == 3


async def test_a_server_failure_is_an_error_named_by_its_code(
    exporter: InMemorySpanExporter,
    stub: pb_grpc.SignatureServiceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError(f"a bug that quotes the meeting {MEETING}")

    monkeypatch.setattr(_service, "mint", broken)
    assert await refused(stub.Sign(sign_request())) == grpc.StatusCode.INTERNAL
    [span] = await spans(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "INTERNAL"  # never the error's message
    assert (span.attributes or {})["rpc.grpc.status_code"] == 13
    assert MEETING not in span.to_json()


# OpenTelemetry's list (semantic conventions, gRPC, SERVER spans), written out here.
SERVER_FAILURES = (
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
)


class _NoMetadata:
    """A call's context that brought no metadata (no trace to continue)."""

    def invocation_metadata(self) -> None:
        return None


@pytest.mark.parametrize(
    ("code", "error"),
    [
        *((code.name, False) for code in grpc.StatusCode if code.name not in SERVER_FAILURES),
        *((name, True) for name in SERVER_FAILURES),
    ],
)
def test_only_the_codes_of_a_server_failure_are_errors(
    exporter: InMemorySpanExporter, code: str, error: bool
) -> None:
    active = _tracing._active
    assert active is not None
    span = active.begin(f"/{SIGN}", _NoMetadata())
    active.end(span, code)
    _tracing.flush()
    [ended] = exporter.get_finished_spans()
    expected = (StatusCode.ERROR, code) if error else (StatusCode.UNSET, None)
    assert (ended.status.status_code, ended.status.description) == expected
    assert (ended.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode[code].value[0]


# --- nothing secret on a span ---------------------------------------------------------------


def everything_said(found: list[ReadableSpan]) -> str:
    """Every attribute, event, link and status of `found`, and their resource, as text."""
    return "\n".join(span.to_json(indent=None) for span in found)


async def test_no_token_secret_bearer_meeting_or_session_on_any_span(
    exporter: InMemorySpanExporter,
    stub: pb_grpc.SignatureServiceStub,
    meeting_secret: str,
    video_secret: str,
) -> None:
    token = (await stub.Sign(sign_request())).token
    video = pb.VideoClaims(session_name=SESSION, role=pb.ROLE_HOST, user_identity="ada@example")
    video_token = (await stub.Sign(pb.SignRequest(video=video))).token
    await stub.Verify(pb.VerifyRequest(token=token, expected_meeting_number=MEETING))
    await stub.Verify(pb.VerifyRequest(token=video_token))
    bearer = (("authorization", f"Bearer {BEARER}"),)
    await refused(stub.Sign(sign_request(app=token), metadata=bearer))  # a token as the app
    await refused(stub.Verify(pb.VerifyRequest(token=token, app=token)))  # no such app
    found = await spans(exporter, count=6)
    assert len(found) == 6
    text = everything_said(found)
    for secret in (meeting_secret, video_secret, BEARER, MEETING, SESSION, "ada@example"):
        assert secret not in text
    for part in (*token.split("."), *video_token.split(".")):
        assert part not in text
    # The token sent as the app's name: its length and fingerprint (zoom.rules.shown).
    assert f"<{len(token)} chars, fp {fingerprint(token)}>" in text
    for span in found:
        assert set(span.attributes or {}) <= {
            *("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"),
            *(f"sdksign.{field}" for field in ("app", "kind", "role", "caller")),
            *(f"sdksign.{field}" for field in ("rule", "valid", "problems")),
        }


async def test_glued_tokens_on_a_span_leave_nothing_to_rebuild(
    exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    first = (await stub.Sign(sign_request())).token
    second = (await stub.Sign(sign_request(meeting="123456789"))).token
    for glued in (first + second, first + "A" + second, first[:40] + second + first[40:]):
        await refused(stub.Sign(sign_request(app=glued)))  # no such app: refused, on a span
    text = everything_said(await spans(exporter, count=5))
    assert " chars, fp " in text and list(whole_tokens(text)) == []
    assert list(token_pieces(text)) == []
    for token in (first, second):
        assert token.split(".", 1)[1] not in text and token.split(".")[2][:12] not in text


async def test_meeting_numbers_only_when_the_config_allows_them(
    stub: pb_grpc.SignatureServiceStub,
) -> None:
    memory = InMemorySpanExporter()
    _tracing.start([memory], meeting_numbers=True)
    try:
        await stub.Sign(sign_request())
        video = pb.VideoClaims(session_name=SESSION, role=pb.ROLE_HOST)
        await stub.Sign(pb.SignRequest(video=video))
        meeting, session = await spans(memory, count=2)
    finally:
        _tracing.shutdown()
    assert (meeting.attributes or {})["sdksign.meeting"] == MEETING
    assert SESSION not in everything_said([meeting, session])


@pytest.mark.parametrize(
    ("value", "loaded"),
    [("true", True), ("false", False), (None, False), ('"yes"', "'yes' is not true or false")],
)
def test_the_config_says_whether_spans_carry_meeting_numbers(
    tmp_path: Path, value: str | None, loaded: bool | str
) -> None:
    server = "" if value is None else f"[server]\ntrace_meeting_numbers = {value}\n"
    path = tmp_path / "sdksign.toml"
    path.write_text(f'{server}{APP}secret_env = "S"\n')
    if isinstance(loaded, str):
        with pytest.raises(ConfigError, match=f"trace_meeting_numbers: {loaded}$"):
            load_config(path, {"S": "s" * 32})
        return
    config = load_config(path, {"S": "s" * 32})
    assert config.trace_meeting_numbers is loaded
    # A reload keeps what the start said (the tracer was made with it).
    flipped = dataclasses.replace(config, trace_meeting_numbers=not loaded)
    kept = reloaded(config, flipped, config.listen)
    assert kept is not None and kept.trace_meeting_numbers is loaded


# --- the trace id on the call's log line ------------------------------------------------------


async def test_the_log_line_carries_the_trace_and_span_ids(
    log_stream: io.BytesIO, exporter: InMemorySpanExporter, stub: pb_grpc.SignatureServiceStub
) -> None:
    await stub.Sign(sign_request(), metadata=(("traceparent", TRACEPARENT),))
    [span] = await spans(exporter)
    [line] = await rpc_lines(log_stream)
    assert span.context is not None
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == format(span.context.span_id, "016x") != PARENT_ID


async def test_spans_the_sampler_drops_leave_no_ids_on_the_log_line(
    log_stream: io.BytesIO, stub: pb_grpc.SignatureServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # read by the SDK itself
    memory = InMemorySpanExporter()
    _tracing.start([memory])
    try:
        await stub.Sign(sign_request())
        [line] = await rpc_lines(log_stream)  # the call is over: its span would have ended
        assert await spans(memory, count=0) == []
    finally:
        _tracing.shutdown()
    assert "trace_id" not in line and "span_id" not in line


def test_the_sdks_own_messages_are_json_log_lines(
    log_stream: io.BytesIO, exporter: InMemorySpanExporter
) -> None:
    sdk = logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter")
    sdk.warning("Failed to export traces to %s, error code: %s", "127.0.0.1:9", "UNAVAILABLE")
    sdk.info("below the warning level: not written")
    [line] = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert line["event"] == "opentelemetry" and line["level"] == "warning"
    assert line["logger"] == sdk.name
    assert line["text"] == "Failed to export traces to 127.0.0.1:9, error code: UNAVAILABLE"


class Failing(SpanProcessor):
    """A span processor that raises as a span starts or ends (a plugin's bug)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.stage == "begin":
            raise RuntimeError("a span processor that fails as a span starts")

    def on_end(self, span: Any) -> None:
        if self.stage == "end":
            raise RuntimeError("a span processor that fails as a span ends")


@pytest.mark.parametrize("stage", ["begin", "end"])
async def test_opentelemetry_failing_never_fails_the_call(
    log_stream: io.BytesIO,
    exporter: InMemorySpanExporter,
    stub: pb_grpc.SignatureServiceStub,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
) -> None:
    monkeypatch.setattr(_tracing, "_failures_logged", set())
    assert _tracing._active is not None
    _tracing._active.provider.add_span_processor(Failing(stage))
    for _ in range(2):
        assert (await stub.Sign(sign_request())).token
    await rpc_lines(log_stream, count=2)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [line["code"] for line in lines if line["event"] == "rpc"] == ["OK", "OK"]
    [failed] = [line for line in lines if line["event"].startswith("tracing failed")]
    assert failed["level"] == "error" and stage in failed["event"]  # once, not per call
    assert "RuntimeError: a span processor that fails" in failed["exception"]


def test_a_header_the_sdk_cannot_read_is_never_logged(
    log_stream: io.BytesIO, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Bearer s3cr3t-credential")  # no name=
    _tracing.configure(None, {"OTEL_TRACES_EXPORTER": "otlp"})
    _tracing.shutdown()
    [line] = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert line["event"] == "opentelemetry" and line["logger"] == "opentelemetry.util.re"
    assert line["text"].startswith("Header format invalid!")
    assert line["text"].endswith(": <hidden>")
    written = capfd.readouterr()
    assert "s3cr3t" not in log_stream.getvalue().decode() + written.out + written.err


# A base64 credential wrapped over two lines, URL-encoded as the OTLP spec asks, and the
# pieces of it that must never be in the log, whichever form (decoded, repr) carries them.
WRAPPED = "dXNlcjpzdXBlcnNlY3JldC1vdGxwLWtleS0xMjM0NTY3ODkw%0AQUJDREVGRw=="
WRAPPED_PIECES = ("dXNlcjpzdXBlcnNlY3JldC1vdGxwLWtleS0xMjM0NTY3ODkw", "QUJDREVGRw==")


def test_an_export_that_quotes_a_header_never_logs_its_value(
    log_stream: io.BytesIO, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Basic%20{WRAPPED}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # never reached
    [otlp] = exporters(["otlp"], _tracing.OTLP_MODULES["http/protobuf"])
    span = TracerProvider().get_tracer("test").start_span("refused by the HTTP client")
    span.end()
    try:
        assert otlp.export([cast(ReadableSpan, span)]).name == "FAILURE"
    finally:
        otlp.shutdown()
    [line] = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert line["event"] == "opentelemetry" and line["text"].startswith("Failed to export")
    assert "in header value: '<hidden>'" in line["text"]  # the repr() form, whole
    written = capfd.readouterr()
    logged = log_stream.getvalue().decode() + written.out + written.err
    assert not [piece for piece in WRAPPED_PIECES if piece in logged]


def test_an_otlp_header_s_value_is_hidden_in_every_form_and_in_the_traceback(
    log_stream: io.BytesIO, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"x-team=ops,x-key={WRAPPED}")
    decoded = WRAPPED.replace("%0A", "\n")
    first, second = decoded.split()
    sdk = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    try:
        raise ValueError(f"header value {decoded!r}") from OSError(f"sent {first} then {second}")
    except ValueError:
        sdk.exception("as written %s, decoded %s, cut: %s", WRAPPED, decoded, second)
    [line] = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert line["text"] == "as written <hidden>, decoded <hidden>, cut: <hidden>"
    assert line["exception"].startswith("OSError: sent <hidden> then <hidden>")
    assert line["exception"].endswith("ValueError: header value '<hidden>'")
    assert "Traceback (most recent call last)" in line["exception"]
    assert not [piece for piece in (*WRAPPED_PIECES, WRAPPED) if piece in json.dumps(line)]


# --- off unless the environment says otherwise ------------------------------------------------


async def test_off_by_default(
    log_stream: io.BytesIO, guarded: Config, stub: pb_grpc.SignatureServiceStub
) -> None:
    for environ in ({}, {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_TRACES_EXPORTER": " "}):
        _tracing.configure(guarded, environ)
        assert _tracing._active is None and _tracing.begin(f"/{SIGN}", None) is None
    disabled = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    _tracing.configure(guarded, disabled)
    assert _tracing._active is None
    await stub.Sign(sign_request(), metadata=(("traceparent", TRACEPARENT),))
    [line] = await rpc_lines(log_stream)
    assert "trace_id" not in line and "span_id" not in line


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "otlp,jaeger"},
            "OTEL_TRACES_EXPORTER: 'jaeger' is not one of otlp, console, none",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not one of grpc, http/protobuf",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' is not one of grpc, http/protobuf",
        ),
    ],
)
def test_what_cannot_be_made_is_one_line(environ: dict[str, str], line: str) -> None:
    assert _tracing.problem(environ) == line
    with pytest.raises(ConfigError, match=f"^{line}$"):
        _tracing.configure(None, environ)
    assert _tracing._active is None


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "ten",
            "OTEL_EXPORTER_OTLP_TIMEOUT: OpenTelemetry refuses it: could not convert string "
            "to float: 'ten'",
        ),
        (
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "zstd",
            'OTEL_EXPORTER_OTLP_COMPRESSION: OpenTelemetry refuses it: Invalid value "zstd" '
            "for compression envvar OTEL_EXPORTER_OTLP_COMPRESSION",
        ),
        (
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "0",
            "an OTEL_* variable: OpenTelemetry refuses it: max_queue_size must be a positive "
            "integer.",
        ),
    ],
)
def test_a_setting_the_sdk_refuses_is_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, line: str
) -> None:
    monkeypatch.setenv(variable, value)  # the SDK reads os.environ itself
    environ = {"OTEL_TRACES_EXPORTER": "otlp", variable: value}
    assert _tracing.problem(environ) == line
    with pytest.raises(ConfigError) as refused:
        _tracing.configure(None, environ)
    assert str(refused.value) == line
    assert _tracing._active is None


def test_a_refusal_never_shows_an_otlp_header_s_value() -> None:
    environ = {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-team=ops,authorization=Bearer s3cr3t"}
    error = ValueError("metadata 'authorization: Bearer s3cr3t' is not valid")
    line = _tracing._refusal(error, environ)
    assert "s3cr3t" not in line and line.endswith("is not valid")


@pytest.mark.parametrize(
    ("variable", "header"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", "header 'authorization'"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "header 'authorization'"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a header without a name"),
    ],
)
def test_a_header_value_with_a_line_break_refuses_the_start(variable: str, header: str) -> None:
    value = f"x-team=ops,authorization=Basic%20{WRAPPED}"
    if header == "a header without a name":
        value = f"Basic {WRAPPED.replace('%0A', chr(13))}"
    environ = {"OTEL_TRACES_EXPORTER": "otlp", variable: value}
    line = (
        f"{variable}: the value of {header} holds a control character (CR, LF, NUL...), "
        "which no HTTP or gRPC header can carry (the value is not shown)"
    )
    assert _tracing.problem(environ) == line
    with pytest.raises(ConfigError, match=re.escape(line)):
        _tracing.configure(None, environ)
    assert _tracing._active is None
    assert _tracing.problem({**environ, variable: "authorization=Basic%20dXNlcjpwdw=="}) is None


def test_a_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"OTEL_TRACES_EXPORTER": "console"}
    assert _tracing.problem(environ) is None
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    assert _tracing.problem(environ) == (
        "OTEL_TRACES_EXPORTER=console asks for traces, but OpenTelemetry is not installed "
        "(opentelemetry.sdk.trace): pip install 'sdksign[otel]'"
    )


# --- real OTLP receivers on loopback: the exporters the environment names ---------------------


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def exported(requests: list[Any]) -> list[tuple[str, str, str]]:
    """(service.name, span name, trace id) of every span the receiver got."""
    found = []
    for request in requests:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    found.append((attributes["service.name"], span.name, span.trace_id.hex()))
    return found


async def test_otlp_over_grpc_reaches_the_collector(
    log_stream: io.BytesIO,
    guarded: Config,
    stub: pb_grpc.SignatureServiceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver()
    collector = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sdksign-under-test")
    try:
        _tracing.configure(guarded, {"OTEL_TRACES_EXPORTER": "otlp"})
        await stub.Sign(sign_request(), metadata=(("traceparent", TRACEPARENT),))
        await rpc_lines(log_stream)  # the span ended (with the call's line), then sent
        _tracing.shutdown()
    finally:
        collector.stop(None)
    assert exported(receiver.requests) == [("sdksign-under-test", SIGN, TRACE_ID)]


async def test_otlp_over_http_reaches_the_collector(
    log_stream: io.BytesIO,
    guarded: Config,
    stub: pb_grpc.SignatureServiceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(
                (self.path, trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            )
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_port}")
    environ = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    try:
        _tracing.configure(guarded, environ)
        await stub.Sign(sign_request(), metadata=(("traceparent", TRACEPARENT),))
        await rpc_lines(log_stream)  # the span ended (with the call's line), then sent
        _tracing.shutdown()
    finally:
        collector.shutdown()
        collector.server_close()
    assert [path for path, _ in received] == ["/v1/traces"]
    assert exported([request for _, request in received]) == [("sdksign", SIGN, TRACE_ID)]
