"""The real `sdksign` processes: refusing to serve unprotected, SIGHUP reload, CLI credentials."""

from __future__ import annotations

import hashlib
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENV, log_lines, start_server_process
from tests.process.test_process import serve_until_exit

SECRET = secrets.token_urlsafe(32)
TOKEN_A = secrets.token_urlsafe(24)
TOKEN_B = secrets.token_urlsafe(24)
APP = '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "ReloadKey0123"\nsecret_env = "S"\n'


def caller(name: str, token: str, roles: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f'[[callers]]\nname = "{name}"\ntoken_sha256 = "{digest}"\nroles = [{roles}]\n'


def sdksign(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sdksign.server", *args],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (None, "no TLS ([server] tls_cert_file and tls_key_file) and no caller policy"),
        (APP + caller("a", TOKEN_A, '"participant"'), "with no TLS"),
    ],
    ids=["development default", "callers without TLS"],
)
def test_beyond_loopback_unprotected_refuses_to_start(
    tmp_path: Path, config: str | None, says: str
) -> None:
    args = []
    if config is not None:
        (tmp_path / "sdksign.toml").write_text(config)
        args = ["--config", str(tmp_path / "sdksign.toml")]
    result = serve_until_exit(tmp_path, {"S": SECRET}, args, listen="0.0.0.0:0")
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0:0" in result.stderr and says in result.stderr
    assert "--insecure" in result.stderr
    assert SECRET not in result.stderr


def test_sighup_reloads_a_valid_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    config = tmp_path / "sdksign.toml"
    closed = "[anonymous]\nroles = []\nverify = false\n"
    config.write_text(APP + caller("a", TOKEN_A, '"participant"') + closed)
    server = start_server_process(tmp_path, {"S": SECRET}, ["--config", str(config)])
    try:
        server.wait_for_events("listening", 2)  # both workers

        def sign(token: str | None, role: str = "host") -> subprocess.CompletedProcess[str]:
            args = ["sign", "--target", server.target, "--meeting-number", "123456789"]
            return sdksign(*args, "--role", role, env={"SDKSIGN_BEARER_TOKEN": token or ""})

        assert "UNAUTHENTICATED" in sign(None, "participant").stderr
        assert "UNAUTHENTICATED" in sign(TOKEN_B).stderr
        denied = sign(TOKEN_A)
        assert denied.returncode == 3 and "PERMISSION_DENIED" in denied.stderr
        assert sign(TOKEN_A, "participant").returncode == 0

        # A valid new file: caller a may now mint host tokens, caller b exists.
        both = caller("a", TOKEN_A, '"participant", "host"') + caller("b", TOKEN_B, '"host"')
        config.write_text(APP + both + closed)
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_events("configuration reloaded", 2)
        for token in (TOKEN_A, TOKEN_B):
            for _ in range(4):  # new connections, whichever worker takes them
                assert sign(token).returncode == 0

        # A broken file is refused, and the last good one keeps serving.
        config.write_text(APP + both + closed + "[[callers]]\nname = 'c'\n")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_events("reload refused: still serving the previous configuration", 2)
        assert sign(TOKEN_B).returncode == 0
        assert server.process.poll() is None
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    logs = server.logs()
    for secret in (SECRET, TOKEN_A, TOKEN_B):
        assert secret not in logs
    refused = [line for line in log_lines(logs) if str(line["event"]).startswith("reload refused")]
    assert "exactly one of token_sha256 and cert_identity" in str(refused[0]["error"])
