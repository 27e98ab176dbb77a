"""Interop with jsrsasign, the library Zoom's auth-endpoint samples sign with (real Node.js)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import jwt
import pytest

from sdksign.client import AsyncClient, Role
from sdksign.server import App, Config
from sdksign.server.runtime.serve import add_port, build_server
from tests.conftest import MEETING_KEY, ROOT

JS = ROOT / "tests" / "js"


def node(script: str, data: dict[str, Any]) -> str:
    executable = shutil.which("node")
    assert executable, "Node.js is needed for the interop tests: install nodejs and npm"
    assert (JS / "node_modules" / "jsrsasign").is_dir(), (
        "jsrsasign is missing: run `make test` (it installs tests/js with npm)"
    )
    done = subprocess.run(
        [executable, str(JS / script)],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def jsrsasign_verify(token: str, secret: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        node("jsrsasign_verify.mjs", {"token": token, "secret": secret})
    )
    return result


@pytest.fixture
async def client(target: str) -> Any:
    async with AsyncClient(target) as client:
        yield client


async def test_our_tokens_verify_with_jsrsasign_and_pyjwt(
    client: AsyncClient, meeting_secret: str, video_secret: str
) -> None:
    web = await client.sign_meeting("94843468909", Role.HOST, video_webrtc_mode=True)
    native = await client.sign_meeting()
    video = await client.sign_video("math-101", Role.PARTICIPANT, user_identity="u1")
    for signed, secret in ((web, meeting_secret), (native, meeting_secret), (video, video_secret)):
        by_jsrsasign = jsrsasign_verify(signed.token, secret)
        by_pyjwt = jwt.decode(signed.token, secret, algorithms=["HS256"])
        assert by_jsrsasign["valid"] is True
        assert by_jsrsasign["payload"] == by_pyjwt
    claims = jwt.decode(web.token, meeting_secret, algorithms=["HS256"])
    assert (
        claims["mn"] == "94843468909" and claims["role"] == 1 and claims["video_webrtc_mode"] == 1
    )
    assert all(type(claims[name]) is int for name in ("role", "iat", "exp", "tokenExp"))
    assert "mn" not in jwt.decode(native.token, meeting_secret, algorithms=["HS256"])


async def test_jsrsasign_refuses_our_token_under_another_secret(client: AsyncClient) -> None:
    signed = await client.sign_meeting("94843468909", Role.PARTICIPANT)
    assert jsrsasign_verify(signed.token, "another-secret-entirely")["valid"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"meetingNumber": "94843468909", "role": 0},
        {"meetingNumber": "94843468909", "role": 1, "videoWebRtcMode": 1},
        {"meetingNumber": 94843468909, "role": 1, "expirationSeconds": 1800},
        {"expirationSeconds": 172800},  # a native token: no meeting number, no role
    ],
)
async def test_tokens_from_zoom_sample_style_code_pass_verify(
    client: AsyncClient, meeting_secret: str, body: dict[str, Any]
) -> None:
    token = node("zoom_sample_sign.mjs", {"secret": meeting_secret, "sdkKey": MEETING_KEY, **body})
    result = await client.verify(token, expected_meeting_number=body.get("meetingNumber"))
    assert result.valid, result.explain()
    assert result.kind == ("MEETING_WEB" if "meetingNumber" in body else "MEETING_NATIVE")


async def test_zoom_sample_style_token_with_another_secret_is_bad_signature(
    client: AsyncClient,
) -> None:
    token = node(
        "zoom_sample_sign.mjs",
        {
            "secret": "not-the-configured-secret",
            "sdkKey": MEETING_KEY,
            "meetingNumber": "1234567890",
            "role": 1,
        },
    )
    result = await client.verify(token)
    assert result.codes == ["BAD_SIGNATURE"]


async def test_hex_looking_secret_read_as_hex_by_jsrsasign_is_named(target: str) -> None:
    # jsrsasign reads a plain string secret of even length made of hex digits as hex bytes,
    # so such a secret signs differently there than in every other library.
    secret = "0123456789abcdef0123456789abcdef"
    server, _ = build_server(
        Config(apps=(App("hexy", "meeting", "HexKey", secret.encode()),), source="tests")
    )
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        token = node(
            "zoom_sample_sign.mjs",
            {"secret": secret, "sdkKey": "HexKey", "meetingNumber": "123456789", "role": 0},
        )
        async with AsyncClient(f"127.0.0.1:{port}") as client:
            result = await client.verify(token)
        assert result.codes == ["SECRET_ENCODING"]
        assert (
            "hex-decoded" in result.problems[0].message
            and "jsrsasign" in result.problems[0].message
        )
        assert result.signature == "MISMATCHED"
    finally:
        await server.stop(None)
