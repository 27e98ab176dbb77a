"""`sdksign serve` as its own process: grpcurl by reflection, the CLI, logs, signals, bad config."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sdksign.server import encode, fingerprint
from tests.conftest import (
    ADMIN,
    BIN,
    ENV,
    MEETING_KEY,
    ROOT,
    VIDEO_KEY,
    ServerProcess,
    log_lines,
    run,
    start_server_process,
)
from tests.helpers import raw_token


def grpcurl(
    target: str, *args: str, data: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "grpcurl"), "-plaintext"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run(
        [*command, target, *args], capture_output=True, text=True, timeout=30, check=False
    )


def cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`sdksign ARGS` (the server's environment: ENV, and `env`), run to its end."""
    command = [sys.executable, "-m", "sdksign.server", *args]
    return run(command, {**ENV, **(env or {})}, cwd, stdin, timeout=30)


SIGN = "sdksign.v1.SignatureService/Sign"
VERIFY = "sdksign.v1.SignatureService/Verify"


def test_grpcurl_by_reflection_and_the_cli(server_process: ServerProcess) -> None:
    target = server_process.target
    listed = grpcurl(target, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"sdksign.v1.SignatureService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = grpcurl(target, "describe", "sdksign.v1.SignatureService")
    assert "rpc Sign" in described.stdout and "rpc Verify" in described.stdout

    signed = grpcurl(
        target, SIGN, data={"meeting": {"meeting_number": "94843468909", "role": "ROLE_HOST"}}
    )
    assert signed.returncode == 0, signed.stderr
    token = json.loads(signed.stdout)["token"]
    assert json.loads(signed.stdout)["sdk_key"] == MEETING_KEY
    verified = json.loads(grpcurl(target, VERIFY, data={"token": token}).stdout)
    assert verified["valid"] is True and verified["kind"] == "TOKEN_KIND_MEETING_WEB"

    ok = cli("verify", "--target", target, token)
    assert ok.returncode == 0 and ok.stdout.startswith("valid")
    piped = cli("verify", "--target", target, "--json", "-", stdin=token + "\n")
    assert piped.returncode == 0 and json.loads(piped.stdout)["valid"] is True
    # "--": a signature may begin with "-", which argparse would read as an option.
    bad = cli("verify", "--target", target, "--", token.rsplit(".", 1)[1])
    assert bad.returncode == 1 and "NOT_A_JWT" in bad.stdout
    minted = cli(
        "sign", "--target", target, "--meeting-number", "123456789", "--role", "participant"
    )
    assert minted.returncode == 0 and minted.stdout.count(".") == 2
    refused = cli("sign", "--target", target, "--meeting-number", "12-34", "--role", "host")
    assert refused.returncode == 3 and "--meeting-number: " in refused.stderr

    health = grpcurl(
        target, "grpc.health.v1.Health/Check", data={"service": "sdksign.v1.SignatureService"}
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_a_deprecated_claim_is_a_warning_in_grpcurl_and_the_cli(
    server_process: ServerProcess, video_secret: str
) -> None:
    # audio_compatible_mode, which Zoom replaced by audio_webrtc_mode: named, the token valid.
    now = int(time.time())
    claims = {"app_key": VIDEO_KEY, "tpc": "math-101", "role_type": 0, "version": 1}
    claims |= {"iat": now, "exp": now + 7200, "audio_compatible_mode": 1}
    token = encode(claims, video_secret.encode())
    answer = grpcurl(server_process.target, VERIFY, data={"token": token})
    assert answer.returncode == 0, answer.stderr
    verified = json.loads(answer.stdout)
    assert verified["valid"] is True
    (problem,) = verified["problems"]
    assert problem["code"] == "PROBLEM_CODE_DEPRECATED_CLAIM"
    assert problem["severity"] == "SEVERITY_WARNING"
    assert problem["claim"] == "audio_compatible_mode"
    assert "audio_webrtc_mode" in problem["message"]
    said = cli("verify", "--target", server_process.target, token)
    assert said.returncode == 0, said.stdout + said.stderr
    lines = said.stdout.splitlines()
    assert lines[0].startswith("valid: a video token")
    assert lines[1].startswith("  - warning: DEPRECATED_CLAIM [audio_compatible_mode]: ")
    assert "in favour of audio_webrtc_mode" in lines[1]
    as_json = cli("verify", "--target", server_process.target, "--json", token)
    assert json.loads(as_json.stdout)["problems"][0]["severity"] == "WARNING"


def test_grpcurl_shows_valid_false_and_the_tokens_header_order(
    server_process: ServerProcess, meeting_secret: str
) -> None:
    # A token wrapped in quotes, its header in the order many libraries write (typ first), its
    # payload in an order of its own: invalid as sent, the signature right.
    now = int(time.time())
    claims = {"iat": now, "exp": now + 7200, "tokenExp": now + 7200, "sdkKey": MEETING_KEY}
    token = raw_token({"typ": "JWT", "alg": "HS256"}, claims, meeting_secret.encode())
    answer = grpcurl(server_process.target, VERIFY, data={"token": f'"{token}"'})
    assert answer.returncode == 0, answer.stderr
    assert '"valid": false' in answer.stdout
    verified = json.loads(answer.stdout)
    assert verified["valid"] is False
    assert [p["code"] for p in verified["problems"]] == ["PROBLEM_CODE_TOKEN_WRAPPED"]
    assert verified["header_json"] == '{"typ":"JWT","alg":"HS256"}'
    assert list(json.loads(verified["claims_json"])) == ["iat", "exp", "tokenExp", "sdkKey"]
    assert verified["signature"] == "SIGNATURE_CHECK_MATCHED"
    assert verified["secret_fingerprint"] == fingerprint(meeting_secret)
    assert token not in json.dumps(verified["problems"])


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"meeting": {"meeting_number": "94843468909", "role": "ROLE_HOST"}, "ttl": "10s"}, "ttl"),
        (
            {"meeting": {"meeting_number": "9484-3468", "role": "ROLE_HOST"}},
            "meeting.meeting_number",
        ),
        ({}, "claims"),
    ],
)
def test_grpcurl_shows_bad_request_details(
    server_process: ServerProcess, request_body: dict[str, Any], field: str
) -> None:
    answer = grpcurl(server_process.target, SIGN, data=request_body)
    assert answer.returncode != 0
    assert "Code: InvalidArgument" in answer.stderr
    assert (
        "google.rpc.BadRequest" in answer.stderr
        and f'"field":"{field}"' in answer.stderr.replace(" ", "")
    )


def test_logs_one_line_per_rpc_and_never_a_secret_or_token(
    server_process: ServerProcess, meeting_secret: str, video_secret: str
) -> None:
    target = server_process.target
    tokens = [
        json.loads(grpcurl(target, SIGN, data=body).stdout)["token"]
        for body in (
            {"meeting": {"meeting_number": "94843468909", "role": "ROLE_HOST"}},
            {"video": {"session_name": "math-101", "role": "ROLE_PARTICIPANT"}},
        )
    ]
    for token in tokens:
        grpcurl(target, VERIFY, data={"token": token})
    grpcurl(target, VERIFY, data={"token": tokens[0][:-3] + "AAA"})  # a bad signature
    grpcurl(target, SIGN, data={"meeting": {"meeting_number": "1-2"}})  # refused
    server_process.process.send_signal(signal.SIGTERM)
    assert server_process.process.wait(timeout=15) == 0

    text = server_process.logs()
    for secret in (meeting_secret, video_secret):
        assert secret not in text
    for token in tokens:
        assert token not in text and token.split(".")[2] not in text
    rpcs = [line for line in log_lines(text) if line["event"] == "rpc"]
    assert len(rpcs) == 6
    for line in rpcs:
        assert {"method", "peer", "code", "duration_ms", "timestamp"} <= set(line)
    signs = [line for line in rpcs if str(line["method"]).endswith("/Sign")]
    assert [(line["app"], line["role"], line["code"]) for line in signs] == [
        ("meeting", "host", "OK"),
        ("video", "participant", "OK"),
        ("", "", "INVALID_ARGUMENT"),
    ]
    verifies = [line for line in rpcs if str(line["method"]).endswith("/Verify")]
    assert [line["valid"] for line in verifies] == [True, True, False]
    assert [line["role"] for line in verifies] == ["host", "participant", "host"]
    assert all(len(str(line["token_fp"])) == 12 for line in verifies)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_process_with_status_zero(
    tmp_path: Path, server_env: dict[str, str], signum: signal.Signals
) -> None:
    # That calls in flight finish is shown in test_service.py, on the same serve().
    server = start_server_process(tmp_path, server_env, ["--workers", "1"])
    assert grpcurl(server.target, SIGN, data={"meeting": {}}).returncode == 0
    server.process.send_signal(signum)
    assert server.process.wait(timeout=15) == 0
    events = [line["event"] for line in log_lines(server.logs())]
    assert events[-2:] == ["shutting down", "stopped"]


def serve_until_exit(
    tmp_path: Path, env: dict[str, str], args: list[str], listen: str = "127.0.0.1:0"
) -> subprocess.CompletedProcess[str]:
    """Run `sdksign serve` expecting it to stop by itself (a refusal), and return how it ended."""
    return subprocess.run(
        [sys.executable, "-m", "sdksign.server", "serve", "--listen", listen, *ADMIN, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**ENV, **env},
        check=False,
    )


SECRET = "never-print-this-secret-value-0123456789"


@pytest.mark.parametrize(
    ("config", "env", "says"),
    [
        (
            '[[apps]]\nname = "a"\nkind = "webinar"\nsdk_key = "k"\nsecret_env = "S"\n',
            {"S": SECRET},
            "kind 'webinar'",
        ),
        (
            f'[[apps]]\nname = "a"\nkind = "meeting"\nsdk_key = "k"\nsecret = "{SECRET}"\n',
            {},
            "never written inline",
        ),
        (
            '[[apps]]\nname = "a"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "UNSET"\n',
            {},
            "'UNSET' is empty or not set",
        ),
        (None, {"ZOOM_MEETING_SDK_KEY": "k"}, "ZOOM_MEETING_SDK_SECRET"),
    ],
)
def test_bad_configuration_stops_before_listening(
    tmp_path: Path, config: str | None, env: dict[str, str], says: str
) -> None:
    args = []
    if config is not None:
        (tmp_path / "sdksign.toml").write_text(config)
        args = ["--config", "sdksign.toml"]
    done = serve_until_exit(tmp_path, env, args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and says in lines[0] and lines[0].startswith("sdksign: configuration error")
    )
    assert SECRET not in done.stderr and "listening" not in done.stderr


def test_config_file_apps(tmp_path: Path) -> None:
    (tmp_path / "web.secret").write_text(SECRET + "\n")
    (tmp_path / "sdksign.toml").write_text(
        '[[apps]]\nname = "web"\nkind = "meeting"\nsdk_key = "WebKey"\nsecret_file = "web.secret"\n'
        '[[apps]]\nname = "web2"\nkind = "meeting"\nsdk_key = "WebKey2"\nsecret_env = "WEB2"\n'
    )
    server = start_server_process(tmp_path, {"WEB2": SECRET + "2"}, ["--config", "sdksign.toml"])
    try:
        signed = json.loads(
            grpcurl(server.target, SIGN, data={"app": "web2", "meeting": {}}).stdout
        )
        assert (signed["app"], signed["sdk_key"]) == ("web2", "WebKey2")
        refused = grpcurl(server.target, SIGN, data={"meeting": {}})
        assert "this caller may use several meeting apps (web, web2)" in refused.stderr
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
    assert SECRET not in server.logs()


def test_development_default(tmp_path: Path) -> None:
    first = start_server_process(tmp_path, {})
    try:
        signed = json.loads(grpcurl(first.target, SIGN, data={"meeting": {}}).stdout)
    finally:
        first.process.terminate()
        first.process.wait(timeout=15)
    apps_file = tmp_path / "state" / "sdksign" / "dev-apps.json"  # $XDG_STATE_HOME/sdksign
    assert stat.S_IMODE(apps_file.stat().st_mode) == 0o600
    stored = json.loads(apps_file.read_text())
    assert signed["sdk_key"] == stored["meeting"]["sdk_key"]
    assert "WARNING" in first.logs() and stored["meeting"]["sdk_key"] in first.logs()
    assert str(apps_file) in first.logs()  # the warning says where the secrets are
    assert stored["meeting"]["secret"] not in first.logs()

    # Started from another folder, by the same user: the same apps, so the token verifies.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = start_server_process(elsewhere, {"XDG_STATE_HOME": str(tmp_path / "state")})
    try:
        again = json.loads(grpcurl(second.target, VERIFY, data={"token": signed["token"]}).stdout)
        assert again["valid"] is True
    finally:
        second.process.terminate()
        second.process.wait(timeout=15)
    assert not (elsewhere / ".sdksign").exists() and not (elsewhere / "state").exists()


def test_port_in_use(tmp_path: Path, server_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_until_exit(tmp_path, server_env, [], listen=f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert f"cannot listen on '127.0.0.1:{port}'" in done.stderr
