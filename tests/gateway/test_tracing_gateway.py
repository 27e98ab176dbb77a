"""A browser's trace through the real Envoy into the server: the W3C traceparent a page sends
with a gRPC-web call (or with Zoom's sample JSON request) is continued by the server's span,
which the console exporter writes to the server's standard output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import log_lines, wait_until
from tests.gateway.conftest import Gateway, serve_gateway
from tests.gateway.test_gateway import ALLOWED_ORIGIN, frame, preflight, unframe

pytestmark = pytest.mark.usefixtures("gateway_files")

MEETING = "123456789"


@pytest.fixture
def traced(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Gateway]:
    """The gateway in front of a server whose spans go to its standard output, batched
    every 100 ms (the SDK reads OTEL_BSP_SCHEDULE_DELAY itself)."""
    env = {**server_env, "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    yield from serve_gateway(tmp_path, env)


def traceparent(trace_id: str, parent_id: str) -> str:
    return f"00-{trace_id}-{parent_id}-01"


def span_of_trace(tmp_path: Path, trace_id: str) -> dict[str, Any]:
    """The one span of `trace_id` the server wrote (one JSON line each), waited for."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lines = (tmp_path / "server.stdout").read_text().splitlines()
        found = [json.loads(line) for line in lines if f'"0x{trace_id}"' in line]
        if found:
            [span] = found
            return span
        time.sleep(0.05)
    raise AssertionError(f"no span of {trace_id}: {(tmp_path / 'server.stdout').read_text()}")


def rpc_line(gateway: Gateway, trace_id: str) -> dict[str, object]:
    """The one rpc line of `trace_id`, waited for: written once the call's answer has left,
    as its span ends, and not necessarily before the span is on stdout."""

    def found() -> list[dict[str, object]]:
        return [
            line
            for line in log_lines(gateway.server.logs())
            if line["event"] == "rpc" and line.get("trace_id") == trace_id
        ]

    wait_until(found, gateway.server.logs)
    [line] = found()
    return line


def test_the_pages_trace_continues_through_envoy_into_the_server(
    traced: Gateway, tmp_path: Path
) -> None:
    # The browser's preflight: Envoy lets a page send the trace context.
    requested = "content-type,x-grpc-web,traceparent,tracestate"
    status, headers = preflight(traced, ALLOWED_ORIGIN, requested)
    assert status == 200
    assert {"traceparent", "tracestate"} <= set(headers["access-control-allow-headers"].split(", "))

    # gRPC-web, as the page calls Sign.
    web_trace, web_parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    request = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST))
    status, _, answer = traced.request(
        "POST",
        "/sdksign.v1.SignatureService/Sign",
        frame(request.SerializeToString()),
        {
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "origin": ALLOWED_ORIGIN,
            "traceparent": traceparent(web_trace, web_parent),
            "tracestate": "browser=page",
        },
    )
    assert status == 200 and unframe(answer)[1]["grpc-status"] == "0"
    span = span_of_trace(tmp_path, web_trace)
    assert span["name"] == "sdksign.v1.SignatureService/Sign"
    assert span["kind"] == "SpanKind.SERVER" and span["parent_id"] == f"0x{web_parent}"
    assert all(word in span["context"]["trace_state"] for word in ("browser", "page"))
    assert span["status"]["status_code"] == "UNSET"
    attributes = span["attributes"]
    assert attributes["rpc.grpc.status_code"] == 0 and attributes["sdksign.role"] == "host"
    assert (attributes["sdksign.app"], attributes["sdksign.caller"]) == ("meeting", "anonymous")
    line = rpc_line(traced, web_trace)
    assert line["span_id"] == span["context"]["span_id"].removeprefix("0x")

    # Zoom's sample JSON request, transcoded by Envoy: its trace continues too.
    json_trace, json_parent = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    status, _, answer = traced.request(
        "POST",
        "/",
        json.dumps({"meetingNumber": MEETING, "role": 0}).encode(),
        {"content-type": "application/json", "traceparent": traceparent(json_trace, json_parent)},
    )
    assert status == 200 and "signature" in json.loads(answer)
    span = span_of_trace(tmp_path, json_trace)
    assert (
        span["parent_id"] == f"0x{json_parent}"
        and span["name"] == "sdksign.v1.ZoomSampleService/Sign"
    )
    assert rpc_line(traced, json_trace)["span_id"] == span["context"]["span_id"][2:]

    # Spans name no meeting and hold no token.
    spans_text = (tmp_path / "server.stdout").read_text()
    assert MEETING not in spans_text and ".eyJ" not in spans_text
