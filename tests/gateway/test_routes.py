"""What the gateway lets through to the server (SignatureService over gRPC-web, Zoom's sample
as JSON) and what Envoy answers itself: 404 for any other path or method (and for a preflight
with an empty origin or method), 400 for an escaped slash, 415 for a body that is not
JSON. With the real Envoy, gateway/envoy.yaml and the production example."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sdksign.v1 import signature_service_pb2 as pb
from tests.certs import Authority
from tests.conftest import ROOT, ServerProcess, log_lines
from tests.gateway.conftest import CONFIGS, Gateway, serve_gateway
from tests.unit.test_security import MEETING_SECRET, example_config

pytestmark = pytest.mark.usefixtures("gateway_files")

GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
HEALTH = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
SIGN_JSON = json.dumps({"meetingNumber": "123456789", "role": 0}).encode()


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def not_found(gateway: Gateway, method: str, path: str, headers: dict[str, str]) -> bool:
    """Envoy's own 404: HTTP 404 with its body, or for a gRPC-web call the gRPC form of it,
    UNIMPLEMENTED (12) with the same message."""
    status, answer_headers, body = gateway.request(method, path, frame(b""), headers)
    if answer_headers.get("grpc-status") is not None:
        return (answer_headers["grpc-status"], answer_headers.get("grpc-message")) == (
            "12",
            "not found%0A",
        )
    return (status, body) == (404, b"not found\n") and answer_headers["server"] == "envoy"


def minted(server: ServerProcess) -> int:
    """The tokens the server has minted for ZoomSampleService/Sign, by its log lines."""
    return sum(
        (line.get("method"), line.get("code")) == ("/sdksign.v1.ZoomSampleService/Sign", "OK")
        for line in log_lines(server.logs())
    )


def wait_until_minted(server: ServerProcess, count: int) -> None:
    """Until the server has logged `count` tokens (its line follows the answer)."""
    deadline = time.monotonic() + 10
    while minted(server) < count:
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)


def test_make_gateway_listens_on_loopback_only() -> None:
    # The development server hands host tokens to whoever reaches the gateway.
    for extra, config in (
        ([], "gateway/envoy.yaml"),
        (["CORS_ORIGIN=https://dev.example"], ".build/envoy-gateway.yaml"),
    ):
        planned = subprocess.run(
            ["make", "-n", "gateway", *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"bin/envoy -c {config} " in planned
    # CORS_ORIGIN's configuration is this one with one origin more (tests/gateway/test_cors.py).
    text = CONFIGS[0].read_text()
    listeners = text.split("\n  listeners:\n")[1].split("\n  clusters:\n")[0]
    assert re.findall(r"\baddress: ([^,\s}]+)", listeners) == ["127.0.0.1"]
    assert not re.search(r"^admin:", text, re.M)  # no admin listener at all


def test_health_and_reflection_are_not_reachable_through_the_gateway(gateway: Gateway) -> None:
    for path in (HEALTH, REFLECTION):
        assert not_found(gateway, "POST", path, GRPC_WEB), path
        assert not_found(gateway, "POST", path, {"content-type": "application/grpc"}), path
        assert not_found(gateway, "GET", path, {}), path
    health_request = health_pb2.HealthCheckRequest(service="sdksign.v1.SignatureService")
    reflection_request = reflection_pb2.ServerReflectionRequest(list_services="")
    codes = {}
    for name, target in (
        ("gateway", f"127.0.0.1:{gateway.port}"),
        ("server", gateway.server.target),
    ):
        with grpc.insecure_channel(target) as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(health_request, timeout=10)
                codes[name, "health"] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                codes[name, "health"] = error.code()
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            try:
                list(reflection.ServerReflectionInfo(iter([reflection_request]), timeout=10))
                codes[name, "reflection"] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                codes[name, "reflection"] = error.code()
    # The server has both (Envoy's health checks use them); the gateway has neither.
    assert codes == {
        ("gateway", "health"): grpc.StatusCode.UNIMPLEMENTED,
        ("gateway", "reflection"): grpc.StatusCode.UNIMPLEMENTED,
        ("server", "health"): grpc.StatusCode.OK,
        ("server", "reflection"): grpc.StatusCode.OK,
    }


def test_other_paths_get_a_plain_404_while_the_server_is_up(gateway: Gateway) -> None:
    # The page's browser asks for /favicon.ico; before, the server reset it and Envoy said 503.
    for method, path in [("GET", "/favicon.ico"), ("GET", "/nope"), ("POST", "/app.js")]:
        assert not_found(gateway, method, path, {}), path
    # Only SignatureService: ZoomSampleService is the JSON endpoint's, through POST / alone.
    assert not_found(gateway, "POST", "/sdksign.v1.ZoomSampleService/Sign", GRPC_WEB)
    # A SignatureService path with a body that is not gRPC never reaches the server.
    assert not_found(
        gateway, "POST", "/sdksign.v1.SignatureService/Sign", {"content-type": "text/plain"}
    )
    status, _, _ = gateway.request("POST", "/", SIGN_JSON, {"content-type": "application/json"})
    assert status == 200  # the server was up all along


def test_the_json_endpoint_takes_only_json(gateway: Gateway) -> None:
    # A text/plain POST is a CORS "simple request": a browser sends it from any page
    # without asking first. It mints nothing, whatever its body.
    for headers in [{"content-type": "text/plain"}, {}, {"content-type": "application/jsonp"}]:
        status, answer_headers, body = gateway.request("POST", "/", SIGN_JSON, headers)
        assert status == 415, headers
        assert json.loads(body) == {
            "errors": [
                {"property": "$body", "reason": "must be sent as Content-Type: application/json"}
            ]
        }
        assert answer_headers["content-type"] == "application/json"
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        status, _, body = gateway.request("POST", "/", SIGN_JSON, {"content-type": content_type})
        assert status == 200 and b'"signature"' in body, content_type
    wait_until_minted(gateway.server, 3)
    assert minted(gateway.server) == 3  # the three JSON posts alone


def test_preflights_of_the_json_endpoint_are_answered_by_envoy(gateway: Gateway) -> None:
    headers = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    status, allowed, _ = gateway.request(
        "OPTIONS", "/", headers={"origin": "http://localhost:3000", **headers}
    )
    assert status == 200 and allowed["access-control-allow-origin"] == "http://localhost:3000"
    status, refused, _ = gateway.request(
        "OPTIONS", "/", headers={"origin": "https://evil.example", **headers}
    )
    assert status == 200 and "access-control-allow-origin" not in refused
    assert "x-envoy-upstream-service-time" not in allowed | refused  # none reached the server


def test_the_production_pair_gives_anonymous_callers_participant_tokens_only(
    tmp_path: Path,
) -> None:
    # examples/envoy-production.yaml in front of examples/production-gateway.toml, TLS both ways.
    authority = Authority()
    config = example_config(tmp_path, authority, "production-gateway.toml")
    env = {"ZOOM_MEETING_SDK_SECRET": MEETING_SECRET}
    for gateway in serve_gateway(tmp_path, env, ["--config", str(config)], production=authority):
        headers = {"content-type": "application/json"}
        status, _, body = gateway.request("POST", "/", SIGN_JSON, headers)
        assert status == 200 and json.loads(body)["sdkKey"] == "REPLACE_WITH_MEETING_SDK_CLIENT_ID"
        host = json.dumps({"meetingNumber": "123456789", "role": 1}).encode()
        status, _, body = gateway.request("POST", "/", host, headers)
        assert status == 401
        [error] = json.loads(body)["errors"]
        assert error["property"] == "role"
        assert error["reason"].startswith("anonymous callers may not mint host tokens")
        sign_host = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number="1", role=pb.ROLE_HOST))
        _, answer, _ = gateway.request(
            "POST",
            "/sdksign.v1.SignatureService/Sign",
            frame(sign_host.SerializeToString()),
            GRPC_WEB,
        )
        assert answer["grpc-status"] == "16"  # UNAUTHENTICATED
        assert not_found(gateway, "POST", HEALTH, GRPC_WEB)
        assert not_found(gateway, "GET", "/favicon.ico", {})


@pytest.fixture(params=["envoy.yaml", "envoy-production.yaml"])
def either_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, server_env: dict[str, str]
) -> Iterator[Gateway]:
    """The development gateway, or the production example in front of its server (TLS)."""
    if request.param == "envoy.yaml":
        yield from serve_gateway(tmp_path, server_env)
        return
    authority = Authority()
    config = example_config(tmp_path, authority, "production-gateway.toml")
    env = {"ZOOM_MEETING_SDK_SECRET": MEETING_SECRET}
    yield from serve_gateway(tmp_path, env, ["--config", str(config)], production=authority)


def calls_logged(server: ServerProcess) -> list[object]:
    """The methods of the calls the server has logged, in order."""
    return [line["method"] for line in log_lines(server.logs()) if "method" in line]


def settled(gateway: Gateway, meeting: str) -> list[object]:
    """The calls logged once a Sign for `meeting`, sent now, is logged: every call answered
    before it is logged too (one worker)."""
    body = json.dumps({"meetingNumber": meeting, "role": 0}).encode()
    status, _, _ = gateway.request("POST", "/", body, {"content-type": "application/json"})
    assert status == 200
    deadline = time.monotonic() + 10
    while not any(line.get("meeting") == meeting for line in log_lines(gateway.server.logs())):
        assert time.monotonic() < deadline, gateway.server.logs()
        time.sleep(0.05)
    return calls_logged(gateway.server)


def envoy_s_404(answer: tuple[int, dict[str, str], bytes], method: str) -> bool:
    """Envoy's own 404, with no upstream behind it (no service time, no reset)."""
    code, headers, text = answer
    if "x-envoy-upstream-service-time" in headers or headers.get("server") != "envoy":
        return False
    if headers.get("grpc-status") is not None:
        # A gRPC(-web) request gets the gRPC form of it (HTTP 200 for gRPC itself; a HEAD
        # has no body, so no message).
        message = None if method == "HEAD" else "not found%0A"
        return code in (200, 404) and (headers["grpc-status"], headers.get("grpc-message")) == (
            "12",
            message,
        )
    return (code, text) == (404, b"" if method == "HEAD" else b"not found\n")


STRAY = [
    # Any method but POST on a SignatureService path (the server reset these; Envoy retried
    # three times, answered 503 and counted them against the replica).
    *(
        (method, "/sdksign.v1.SignatureService/Sign", headers)
        for method in ("GET", "PUT", "DELETE", "HEAD", "PATCH")
        for headers in (GRPC_WEB, {"content-type": "application/grpc"}, {})
    ),
    # Preflights with an empty origin or method: not preflights; the server answered INTERNAL.
    *(
        ("OPTIONS", path, {"origin": origin, "access-control-request-method": method})
        for path in ("/", "/sdksign.v1.SignatureService/Sign")
        for origin, method in (("", "POST"), ("http://localhost:3000", ""), ("", ""))
    ),
    # Paths that reach another service once normalized, or not at all.
    ("POST", "/sdksign.v1.SignatureService/../grpc.health.v1.Health/Check", GRPC_WEB),
    ("POST", "/sdksign.v1.SignatureService/Sign/../../grpc.health.v1.Health/Check", GRPC_WEB),
    ("POST", "/sdksign.v1.SignatureService/Sign/x", GRPC_WEB),
    ("POST", "/sdksign.v1.SignatureService/", GRPC_WEB),
]


def test_requests_that_are_not_api_calls_never_reach_the_server(either_gateway: Gateway) -> None:
    gateway = either_gateway
    before = settled(gateway, "111111111")
    wrong = []
    for method, path, headers in STRAY:
        answer = gateway.request(method, path, frame(b"") if method != "HEAD" else b"", headers)
        if not envoy_s_404(answer, method):
            wrong.append((method, path, headers, answer[0], answer[1].get("grpc-status")))
    assert wrong == []
    # An escaped slash is refused outright: 400, before any route is looked at.
    for path in ("/sdksign.v1.SignatureService%2FSign", "/sdksign.v1.SignatureService/Sign%2F"):
        status, headers, _ = gateway.request("POST", path, frame(b""), {})
        assert (status, headers["server"]) == (400, "envoy"), path
        assert "x-envoy-upstream-service-time" not in headers
    # A Sign sent after every stray request had its answer: the only call logged since.
    after = settled(gateway, "222222222")
    assert after[len(before) :] == ["/sdksign.v1.ZoomSampleService/Sign"]
