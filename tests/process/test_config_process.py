"""Configuration errors from a real `sdksign serve`: at start, and on SIGHUP."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import jwt
import pytest

from sdksign.client import Client, Role
from sdksign.server import ConfigError, load_config
from tests.conftest import log_lines, start_server_process
from tests.process.test_process import serve_until_exit
from tests.unit.test_config import APP, LATIN1, SECRET, write

# --- the same messages from a real process: at start, and on SIGHUP --------------------------


def expected_refusal(path: Path, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    return str(caught.value)


def test_a_bad_config_at_start_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    config = write(tmp_path, APP + "[anonymous]\nrate = nan\n")
    env = {"S": SECRET}
    done = serve_until_exit(tmp_path, env, ["--config", str(config)])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sdksign: configuration error: {expected_refusal(config, env)}"
    ]
    assert "rate must be a number" in done.stderr and "Traceback" not in done.stderr


def test_sighup_with_a_secret_file_that_is_not_utf8_is_refused_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "web.secret"
    secret_file.write_text(SECRET + "\n")
    config = write(tmp_path, APP.replace('secret_env = "S"', 'secret_file = "web.secret"'))
    server = start_server_process(tmp_path, {}, ["--config", str(config), "--workers", "1"])
    try:
        secret_file.write_bytes(LATIN1.encode("latin-1"))
        expected = expected_refusal(config, {})
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reload refused" not in server.logs():
            assert time.monotonic() < deadline and server.process.poll() is None, server.logs()
            time.sleep(0.05)
        with Client(server.target) as client:
            token = client.sign_meeting("123456789", Role.PARTICIPANT).token
        # Signed with the secret of the configuration it started with.
        assert jwt.decode(token, SECRET, algorithms=["HS256"])["sdkKey"] == "k"
        assert server.process.poll() is None
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)
    logs = server.logs()
    refused = [line for line in log_lines(logs) if str(line["event"]).startswith("reload refused")]
    assert [line["error"] for line in refused] == [expected]
    assert "not UTF-8 text" in expected and "Traceback" not in logs
    assert SECRET not in logs and "cret-in" not in logs


def test_placeholder_keys_and_short_secrets_are_warned_at_start_and_on_reload(
    tmp_path: Path,
) -> None:
    placeholder = APP.replace('sdk_key = "', 'sdk_key = "REPLACE_WITH_', 1)
    config = write(tmp_path, placeholder)
    server = start_server_process(tmp_path, {"S": "x"}, ["--config", str(config)])
    try:
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "configuration reloaded" not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)
    logs = server.logs()
    at_start = [line for line in logs.splitlines() if line.startswith("sdksign: WARNING: app")]
    assert len(at_start) == 2, logs
    assert "looks like a placeholder" in at_start[0] and "its secret is 1 byte;" in at_start[1]
    reloaded = [line for line in log_lines(logs) if line.get("level") == "warning"]
    assert any("looks like a placeholder" in line["event"] for line in reloaded), logs
    assert any("its secret is 1 byte;" in line["event"] for line in reloaded), logs
