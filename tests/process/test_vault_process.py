"""`sdksign serve` with its secret in a real OpenBao: rotation by KV versions on SIGHUP and on
the refresh interval, in one process and in workers; OpenBao out of reach at start and later.
No log line and no stderr ever holds the Vault token or a secret."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest

from sdksign.server import fingerprint
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess, log_lines, start_server_process
from tests.openbao import OpenBao
from tests.process.test_process import serve_until_exit

SIGN = pb.SignRequest(
    meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
)
SDK_KEY = "VaultMeetingKey012345678"


def config_file(folder: Path, bao: OpenBao, vault: str = "refresh = 0\n") -> Path:
    path = folder / "sdksign.toml"
    path.write_text(
        '[[apps]]\nname = "meeting"\nkind = "meeting"\n'
        f'sdk_key = "{SDK_KEY}"\nsecret_vault = "secret/data/zoom/meeting#secret"\n'
        f'[vault]\naddress = "{bao.address}"\ntoken_env = "VAULT_TOKEN"\n{vault}'
    )
    return path


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Served:
    """A server reading its secret from OpenBao, and what a test checks against it."""

    def __init__(self, server: ServerProcess, bao: OpenBao) -> None:
        self.server = server
        self.bao = bao

    def sign(self) -> str:
        """A Sign call on its own connection (with workers: any of them)."""
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(self.server.target, options=options) as channel:
            return str(pb_grpc.SignatureServiceStub(channel).Sign(SIGN, timeout=10).token)

    def verify(self, token: str) -> pb.VerifyResponse:
        with grpc.insecure_channel(self.server.target) as channel:
            return pb_grpc.SignatureServiceStub(channel).Verify(
                pb.VerifyRequest(token=token), timeout=10
            )

    def events(self, event: str) -> list[dict[str, Any]]:
        return self.server.events(event)

    def wait_for(self, event: str, count: int = 1, timeout: float = 20.0) -> None:
        """Until the log holds `count` lines of `event`, the server still running."""
        self.server.wait_for_events(event, count, timeout)
        assert self.server.process.poll() is None, self.server.logs()

    def assert_nothing_secret_logged(self, *values: str) -> None:
        logs = self.server.logs()
        for value in (self.bao.root_token, self.bao.reader_token, *values):
            assert value not in logs
        assert "Traceback" not in logs


@contextmanager
def serve(
    tmp_path: Path, bao: OpenBao, args: tuple[str, ...] = ("--workers", "1"), vault: str = ""
) -> Iterator[Served]:
    config = config_file(tmp_path, bao, vault or "refresh = 0\n")
    env = {"VAULT_TOKEN": bao.reader_token}
    server = start_server_process(tmp_path, env, ["--config", str(config), *args])
    try:
        yield Served(server, bao)
    finally:
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=30)


def signed_with(token: str, secret: str) -> bool:
    try:
        return jwt.decode(token, secret, algorithms=["HS256"])["sdkKey"] == SDK_KEY
    except jwt.InvalidSignatureError:
        return False


def test_a_server_signs_with_its_secret_from_openbao(tmp_path: Path, openbao: OpenBao) -> None:
    secret = new_secret()
    openbao.write("zoom/meeting", secret)
    with serve(tmp_path, openbao) as served:
        token = served.sign()
        assert signed_with(token, secret)
        verified = served.verify(token)
        assert verified.valid and verified.secret_fingerprint == fingerprint(secret)
        (listening,) = served.events("listening")
        assert listening["apps"] == [
            f"meeting (meeting, sdk key {SDK_KEY}, secrets {fingerprint(secret)})"
        ]
    served.assert_nothing_secret_logged(secret)


def test_a_new_version_and_sighup_rotate_and_the_previous_version_still_verifies(
    tmp_path: Path, openbao: OpenBao
) -> None:
    first, second = new_secret(), new_secret()
    openbao.write("zoom/meeting", first)
    with serve(tmp_path, openbao) as served:
        old_token = served.sign()
        openbao.write("zoom/meeting", second)
        served.server.process.send_signal(signal.SIGHUP)
        served.wait_for("secrets rotated")
        new_token = served.sign()
        assert signed_with(new_token, second)
        assert served.verify(new_token).secret_fingerprint == fingerprint(second)
        still = served.verify(old_token)
        assert still.valid and still.secret_fingerprint == fingerprint(first)
        (rotated,) = served.events("secrets rotated")
        assert rotated["apps"] == [f"meeting (secrets {fingerprint(second)}, {fingerprint(first)})"]
    served.assert_nothing_secret_logged(first, second)


def test_the_refresh_interval_rotates_without_sighup(tmp_path: Path, openbao: OpenBao) -> None:
    first, second = new_secret(), new_secret()
    openbao.write("zoom/meeting", first)
    with serve(tmp_path, openbao, vault='refresh = "1s"\n') as served:
        assert signed_with(served.sign(), first)
        openbao.write("zoom/meeting", second)
        served.wait_for("secrets rotated")
        assert signed_with(served.sign(), second)
        # Refreshes that find nothing new say nothing: two more pass, and still one line.
        time.sleep(2.5)
        assert len(served.events("secrets rotated")) == 1
        assert not served.events("vault refresh failed: still serving the secrets already read")
        # A new version far shorter than Zoom's secrets is served, with a warning.
        short = secrets.token_hex(5)
        openbao.write("zoom/meeting", short)
        served.wait_for("secrets rotated", 2)
        warning = "app 'meeting': its secret is 10 bytes; Zoom's Client Secrets are 32 characters"
        assert any(
            str(line["event"]).startswith(warning) for line in log_lines(served.server.logs())
        )
    served.assert_nothing_secret_logged(first, second, short)


def test_openbao_gone_later_keeps_serving_the_secrets_already_read(
    tmp_path: Path, openbao: OpenBao
) -> None:
    secret = new_secret()
    openbao.write("zoom/meeting", secret)
    with serve(tmp_path, openbao, vault='refresh = "1s"\n') as served:
        openbao.stop()
        served.server.process.send_signal(signal.SIGHUP)
        refused = "reload refused: still serving the previous configuration"
        failed = "vault refresh failed: still serving the secrets already read"
        served.wait_for(refused)
        served.wait_for(failed)
        assert signed_with(served.sign(), secret)
        assert served.verify(served.sign()).valid
        for line in (*served.events(refused), *served.events(failed)):
            assert line["level"] == "error"
            assert str(line["error"]).endswith(
                f"cannot reach Vault at {openbao.address}: Connection refused"
            )
    served.assert_nothing_secret_logged(secret)


def test_calls_are_answered_while_a_reload_waits_on_vault(tmp_path: Path, openbao: OpenBao) -> None:
    secret = new_secret()
    openbao.write("zoom/meeting", secret)
    refused = "reload refused: still serving the previous configuration"
    with socket.socket() as silent, serve(tmp_path, openbao) as served:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(20)
        config = tmp_path / "sdksign.toml"
        silent_address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config.write_text(config.read_text().replace(openbao.address, silent_address))
        served.server.process.send_signal(signal.SIGHUP)
        waiting, _ = silent.accept()  # the reload's request to "Vault", never answered yet
        with waiting:
            tokens = [served.sign() for _ in range(5)]
            assert all(served.verify(token).valid for token in tokens)
            assert not served.events(refused)  # the reload is still waiting
        served.wait_for(refused)
        (line,) = served.events(refused)
        assert str(line["error"]).startswith(
            f"{config}: apps[0] ('meeting'): secret_vault secret/data/zoom/meeting#secret: "
            f"cannot reach Vault at {silent_address}: the connection closed without an answer"
        )
        assert signed_with(served.sign(), secret)
    served.assert_nothing_secret_logged(secret)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_openbao_out_of_reach_at_start_is_one_line_and_exit_status_2(
    tmp_path: Path, openbao: OpenBao, workers: str
) -> None:
    openbao.write("zoom/meeting", new_secret())
    config = config_file(tmp_path, openbao)
    openbao.stop()
    env = {"VAULT_TOKEN": openbao.reader_token}
    done = serve_until_exit(tmp_path, env, ["--config", str(config), "--workers", workers])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sdksign: configuration error: {config}: apps[0] ('meeting'): secret_vault "
        f"secret/data/zoom/meeting#secret: cannot reach Vault at {openbao.address}: "
        "Connection refused"
    ]
    assert openbao.reader_token not in done.stderr + done.stdout


def test_sighup_reaches_both_workers_and_a_replaced_one_reads_openbao_again(
    tmp_path: Path, openbao: OpenBao
) -> None:
    first, second = new_secret(), new_secret()
    openbao.write("zoom/meeting", first)
    with serve(tmp_path, openbao, ("--workers", "2")) as served:
        served.wait_for("listening", 2)
        old_token = served.sign()
        openbao.write("zoom/meeting", second)
        served.server.process.send_signal(signal.SIGHUP)
        served.wait_for("secrets rotated", 2)
        assert sorted(line["worker"] for line in served.events("secrets rotated")) == [0, 1]
        tokens = [served.sign() for _ in range(12)]  # each on a new connection, to either worker
        assert all(signed_with(token, second) for token in tokens)
        assert served.verify(old_token).valid
        # A worker that dies is replaced; the new one reads the configuration and OpenBao
        # again before it serves.
        time.sleep(2.5)  # past the start-up window, a dead worker is replaced
        victim = next(line["pid"] for line in served.events("listening") if line["worker"] == 0)
        assert isinstance(victim, int)
        os.kill(victim, signal.SIGKILL)
        served.wait_for("listening", 3)
        (replaced,) = served.events("listening")[2:]
        assert replaced["apps"] == [
            f"meeting (meeting, sdk key {SDK_KEY}, secrets {fingerprint(second)}, {fingerprint(first)})"
        ]
        assert all(signed_with(served.sign(), second) for _ in range(12))
    served.assert_nothing_secret_logged(first, second)


def test_an_unreadable_previous_version_does_not_block_rotation_or_start(
    tmp_path: Path, openbao: OpenBao
) -> None:
    first, third = new_secret(), new_secret()
    openbao.write("zoom/meeting", first)
    failed = "vault refresh failed: still serving the secrets already read"
    skipped = (
        "app 'meeting': secret_vault secret/data/zoom/meeting#secret: version 2 has no field "
        "'secret': it neither signs nor verifies (delete it to let an older version verify in "
        "its place)"
    )
    vault = 'refresh = "1s"\nprevious_versions = 1\n'
    with serve(tmp_path, openbao, vault=vault) as served:
        openbao.write("zoom/meeting", "x", field="other")  # the newest unreadable: kept serving
        served.wait_for(failed)
        assert signed_with(served.sign(), first)
        openbao.write("zoom/meeting", third)
        served.wait_for("secrets rotated")
        failures = len(served.events(failed))
        assert signed_with(served.sign(), third)
        time.sleep(2.5)  # two more refreshes: neither fails, nor warns again
        assert len(served.events(failed)) == failures
        assert len(served.events(skipped)) == 1
        (failure,) = {str(line["error"]) for line in served.events(failed)}
        assert failure.endswith("version 2 has no field 'secret'")
    served.assert_nothing_secret_logged(first, third)
    # A fresh start signs with version 3, and warns of version 2 once.
    (tmp_path / "again").mkdir()
    with serve(tmp_path / "again", openbao, vault=vault) as again:
        assert signed_with(again.sign(), third)
    assert again.server.logs().count("version 2 has no field 'secret'") == 1
    again.assert_nothing_secret_logged(first, third)


def test_a_permission_denied_refresh_names_both_policy_paths_whole(
    tmp_path: Path, openbao: OpenBao
) -> None:
    secret = new_secret()
    openbao.write("zoom/meeting", secret)
    failed = "vault refresh failed: still serving the secrets already read"
    with serve(tmp_path, openbao, vault='refresh = "1s"\n') as served:
        # The policy loses the metadata, where the versions are listed.
        only_data = 'path "secret/data/*" { capabilities = ["read"] }\n'
        openbao.client().sys.create_or_update_policy(name="sdksign", policy=only_data)
        served.wait_for(failed)
        assert served.events(failed)[0]["error"] == (
            "apps[0] ('meeting'): secret_vault secret/data/zoom/meeting#secret: "
            f"Vault at {openbao.address}: permission denied (the token is unknown or expired, "
            "or cannot read secret/data/zoom/meeting and secret/metadata/zoom/meeting)"
        )
        assert signed_with(served.sign(), secret)
    served.assert_nothing_secret_logged(secret)


def test_sighups_collapse_and_stopping_waits_for_no_vault_read(
    tmp_path: Path, openbao: OpenBao
) -> None:
    """A stalled Vault (a socket that accepts and never answers): SIGHUPs during a reload
    make one more at most, none starts once SIGTERM came, and the process ends while a
    read still waits (request_timeout 60 s)."""
    openbao.write("zoom/meeting", new_secret())
    refused = "reload refused: still serving the previous configuration"
    args = ("--workers", "1", "--drain", "10")
    with socket.socket() as silent, serve(tmp_path, openbao, args) as served:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent.settimeout(20)
        config = tmp_path / "sdksign.toml"
        stalled = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config.write_text(
            config.read_text().replace(openbao.address, stalled) + 'request_timeout = "60s"\n'
        )

        def sighups(count: int) -> None:  # one at a time: pending signals would merge
            for _ in range(count):
                seen = len(served.events("SIGHUP received"))
                served.server.process.send_signal(signal.SIGHUP)
                served.wait_for("SIGHUP received", seen + 1)

        sighups(1)
        first, _ = silent.accept()  # the first reload's read, stalled
        sighups(4)
        first.close()  # it fails ...
        served.wait_for(refused)
        second, _ = silent.accept()  # ... and the 4 SIGHUPs meanwhile make one more
        with second:
            sighups(5)
            served.server.process.send_signal(signal.SIGTERM)
            served.wait_for("draining")
            sighups(1)
            served.server.process.send_signal(signal.SIGTERM)  # the drain cut short
            assert served.server.process.wait(timeout=30) == 0  # the second read still waits
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):  # no third read, though 5 SIGHUPs came during it
            silent.accept()[0].close()
    assert [line["reload"] for line in served.events("SIGHUP received")] == [
        "queued",
        "queued after the one under way",
        *["already queued"] * 3,
        "queued after the one under way",
        *["already queued"] * 4,
        "none: stopping",
    ]
    assert len(served.events(refused)) == 1
    assert len(served.events("stopped")) == 1
