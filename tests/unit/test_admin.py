"""The admin listener in this process, on loopback: its routes and methods, readiness as the
server's state changes, TLS with the server's certificate, a taken port, and the command's
refusals of an admin address that is not safe. Real servers: tests/process/test_admin_process.py."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from sdksign.client._cli import main
from sdksign.server import ConfigError, load_config
from sdksign.server.config.model import Tls
from sdksign.server.observe import exposition
from sdksign.server.observe.admin import (
    DRAINING,
    SERVING,
    STARTING,
    AdminError,
    AdminServer,
    LocalReadiness,
    WorkerReadiness,
    WorkerStates,
    alone,
)
from sdksign.server.runtime.cli import serve_command
from tests.certs import Authority


@pytest.fixture
def readiness() -> Iterator[LocalReadiness]:
    with alone("127.0.0.1:0", None) as serving:
        yield serving


def get(
    address: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read().decode()
    finally:
        connection.close()


def test_readiness_follows_the_server_s_state(readiness: LocalReadiness) -> None:
    address = readiness.address
    assert get(address, "/healthz/live")[::2] == (200, "live\n")
    assert get(address, "/healthz/ready")[::2] == (503, "starting: not serving yet\n")
    readiness.set(SERVING)
    assert get(address, "/healthz/ready")[::2] == (200, "ready\n")
    readiness.set(DRAINING)
    status, headers, body = get(address, "/healthz/ready")
    assert (status, body) == (503, "draining: stopping\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert get(address, "/healthz/live")[0] == 200  # up while it drains


def test_metrics_in_prometheus_text_or_openmetrics(readiness: LocalReadiness) -> None:
    readiness.set(SERVING)
    status, headers, text = get(readiness.address, "/metrics?debug=1")  # a query is ignored
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"grpc_server_handled", "sdksign_tokens_issued", "sdksign_ready"} <= names
    assert "sdksign_ready 1.0" in text
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    status, headers, text = get(readiness.address, "/metrics", headers=accept)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_answered(readiness: LocalReadiness, method: str) -> None:
    status, headers, _ = get(readiness.address, "/metrics", method)
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


def raw(address: str, method: str, path: str) -> bytes:
    """All the server sends to one request on a connection then closed (http.client would
    drop a body sent to a HEAD)."""
    host, port = address.rsplit(":", 1)
    request = f"{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request.encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/healthz/live", "/healthz/ready", "/nowhere", "/metrics"])
def test_head_answers_as_get_without_the_body(readiness: LocalReadiness, path: str) -> None:
    got = raw(readiness.address, "GET", path)
    head, _, body = raw(readiness.address, "HEAD", path).partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert status == got.split(b"\r\n", 1)[0].decode() and body == b""
    assert headers["Content-Type"] == get(readiness.address, path)[1]["Content-Type"]
    if path != "/metrics":  # the metrics' values move between two scrapes
        assert int(headers["Content-Length"]) == len(got.partition(b"\r\n\r\n")[2])
    else:
        assert int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", ["/", "/healthz", "/metrics/", "/healthz/ready/x", "/../metrics"])
def test_other_paths_are_not_found(readiness: LocalReadiness, path: str) -> None:
    status, _, body = get(readiness.address, path)
    assert status == 404 and "GET /metrics, /healthz/live or /healthz/ready" in body


def test_the_server_header_names_no_versions(readiness: LocalReadiness) -> None:
    assert get(readiness.address, "/healthz/live")[1]["Server"] == "sdksign-admin"


def test_workers_are_ready_when_all_serve_and_no_drain_began() -> None:
    states = WorkerStates(bytearray([STARTING, STARTING]))
    assert states.not_ready() == "starting: worker 0 is not serving yet"
    WorkerReadiness(states.states, states.heartbeats, 0, "").set(SERVING)
    assert states.not_ready() == "starting: worker 1 is not serving yet"
    WorkerReadiness(states.states, states.heartbeats, 1, "").set(SERVING)
    assert states.not_ready() is None
    states.states[1] = DRAINING  # a worker told to stop by someone else
    assert states.not_ready() == "draining: worker 1 is stopping"
    states.states[1] = SERVING
    states.stopping = True  # the parent's SIGTERM: at once
    assert states.not_ready() == "draining: stopping"


def workers_files(folder: Path, *files: tuple[str, bytes]) -> CollectorRegistry:
    """What the workers' parent shows, `folder` holding the workers' `files` (name, bytes)."""
    for name, data in files:
        (folder / name).write_bytes(data)
    return exposition.registry(exposition.ServerState(lambda: None), folder)


def counted(used: int, *entries: tuple[str, float]) -> bytes:
    """A worker's file as prometheus-client writes it: the bytes used, then each entry."""
    data = b""
    for key, value in entries:
        encoded = key.encode()
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        data += struct.pack(f"i{len(padded)}sdd", len(encoded), padded, value, 0.0)
    return struct.pack("ii", used or 8 + len(data), 0) + data + bytes(4096)


TOKENS_KEY = json.dumps(
    ["sdksign_tokens_issued", "sdksign_tokens_issued_total", {"app": "m"}, "Tokens."],
    sort_keys=True,
)


def test_a_worker_s_file_still_empty_as_it_is_made_leaves_the_scrape_whole(
    tmp_path: Path,
) -> None:
    shown = workers_files(
        tmp_path, ("counter_101.db", counted(0, (TOKENS_KEY, 3.0))), ("counter_102.db", b"")
    )
    with AdminServer("127.0.0.1:0", shown, lambda: None) as admin:
        admin.start()
        status, _, text = get(admin.address, "/metrics")
    assert status == 200
    assert 'sdksign_tokens_issued_total{app="m"} 3.0' in text and "sdksign_ready 1.0" in text


def test_metrics_that_cannot_be_gathered_are_a_500_that_says_so(tmp_path: Path) -> None:
    damaged = counted(64, (TOKENS_KEY, 3.0))[:8] + struct.pack("i", 1000) + bytes(64)
    shown = workers_files(tmp_path, ("counter_101.db", damaged))
    with AdminServer("127.0.0.1:0", shown, lambda: None) as admin, capture_logs() as logged:
        admin.start()
        assert get(admin.address, "/metrics")[::2] == (
            500,
            "cannot gather the metrics: the server's log says why\n",
        )
        assert get(admin.address, "/healthz/live")[0] == 200  # the listener goes on
    [line] = logged
    assert line["event"] == "cannot gather the metrics" and line["log_level"] == "error"


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AdminError) as caught:
            AdminServer(f"127.0.0.1:{port}", _registry(), lambda: None)
    assert str(caught.value) == (
        f"cannot serve the admin listener on '127.0.0.1:{port}': address in use "
        "(--admin-listen HOST:PORT: another port; port 0: any free one)"
    )


def test_a_host_that_does_not_resolve_is_one_line() -> None:
    with pytest.raises(
        AdminError, match=r"cannot serve the admin listener on 'no-such-host\.invalid:0'"
    ):
        AdminServer("no-such-host.invalid:0", _registry(), lambda: None)


def test_ipv6_loopback_is_shown_in_brackets() -> None:
    with AdminServer("[::1]:0", _registry(), lambda: None) as admin:
        admin.start()
        assert admin.address.startswith("[::1]:")
        assert get(admin.address, "/healthz/ready")[0] == 200


def _registry() -> CollectorRegistry:
    return exposition.registry(exposition.ServerState(lambda: None))


def test_with_tls_it_serves_the_server_s_certificate() -> None:
    authority = Authority()
    issued = authority.issue("sdksign", ips=("127.0.0.1",), server=True)
    tls = Tls(certificate_chain=issued.cert, private_key=issued.key)
    with AdminServer("127.0.0.1:0", _registry(), lambda: None, tls) as admin:
        admin.start()
        port = int(admin.address.rsplit(":", 1)[1])
        context = ssl.create_default_context(cadata=authority.pem.decode())
        with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP: no answer
            get(admin.address, "/healthz/live")
        with pytest.raises(ssl.SSLCertVerificationError):  # a CA that did not sign it
            _https(port, ssl.create_default_context(cadata=Authority().pem.decode()))
        assert _https(port, context) == 200  # and it goes on serving after both


def _https(port: int, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/healthz/ready")
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_key_that_is_not_the_certificate_s_is_one_line() -> None:
    authority = Authority()
    one, other = authority.issue("a", server=True), authority.issue("b", server=True)
    tls = Tls(certificate_chain=one.cert, private_key=other.key)
    with pytest.raises(AdminError, match="cannot serve the admin listener with TLS: "):
        AdminServer("127.0.0.1:0", _registry(), lambda: None, tls)


# --- [server] admin_listen and the command's refusals ----------------------------------------

APP = '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'


def serve_args(config: Path, **given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "config": config,
        "listen": None,
        "admin_listen": None,
        "drain": None,
        "workers": 1,
        "insecure": False,
    }
    return argparse.Namespace(**{**values, **given})


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S", "s" * 32)


def refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: str, **given: object
) -> str:
    """The one line `sdksign serve` refuses to start with, `server` the file's [server]."""
    config = tmp_path / "sdksign.toml"
    config.write_text(f"[server]\n{server}\n{APP}")
    assert serve_command(serve_args(config, **given)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.usefixtures("secret")
def test_the_file_s_admin_listen_is_read_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sdksign.toml"
    config.write_text('[server]\nadmin_listen = "127.0.0.1:9999"\n' + APP)
    assert load_config(config).admin_listen == "127.0.0.1:9999"
    config.write_text("[server]\nadmin_listen = 9464\n" + APP)
    with pytest.raises(ConfigError, match=r"\[server\] admin_listen: must be a string HOST:PORT"):
        load_config(config)
    assert refusal(tmp_path, capsys, 'admin_listen = "127.0.0.1:99999"') == (
        "sdksign: configuration error: [server] admin_listen: '127.0.0.1:99999': the port "
        "99999 is out of range: ports are 0 to 65535"
    )


@pytest.mark.usefixtures("secret")
def test_a_refused_admin_address_s_example_is_on_the_admin_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the gRPC port's 50051, which --admin-listen would then refuse as taken by it."""
    for flag, port in (("--admin-listen", 9464), ("--listen", 50051)):
        with pytest.raises(SystemExit):
            main(["serve", flag, ":1"])
        said = capsys.readouterr().err.splitlines()[-1]
        assert said.endswith(
            f"argument {flag}: ':1' has no host: write HOST:PORT, e.g. 127.0.0.1:{port} "
            f"(port 0: any free port), or 0.0.0.0:{port} for every interface"
        )
    assert refusal(tmp_path, capsys, 'admin_listen = "localhost"') == (
        "sdksign: configuration error: [server] admin_listen: 'localhost' has no port: write "
        "HOST:PORT, e.g. 127.0.0.1:9464 (port 0: any free port)"
    )


@pytest.mark.usefixtures("secret")
def test_beyond_loopback_without_tls_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(tmp_path, capsys, 'admin_listen = "0.0.0.0:9464"')
    assert line.startswith("sdksign: refusing to serve metrics and health on 0.0.0.0:9464, ")
    line = refusal(tmp_path, capsys, "", admin_listen="[::]:9464")  # the flag, as the file
    assert line.startswith("sdksign: refusing to serve metrics and health on [::]:9464, ")


@pytest.fixture
def taken() -> Iterator[str]:
    """A loopback address another listener holds (what `make run` does to the default)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


def test_the_default_address_in_use_gives_way_to_a_free_port(taken: str) -> None:
    with alone(taken, None, give_way=True) as serving:
        assert serving.taken == taken
        assert serving.address.startswith("127.0.0.1:") and serving.address != taken
        serving.set(SERVING)
        assert get(serving.address, "/healthz/ready")[0] == 200


def test_an_address_someone_set_does_not_give_way(taken: str) -> None:
    with pytest.raises(AdminError, match="address in use"), alone(taken, None):
        pass


@pytest.mark.usefixtures("secret")
def test_only_an_admin_listen_nobody_set_may_give_way(tmp_path: Path) -> None:
    config = tmp_path / "sdksign.toml"
    config.write_text(APP)
    assert not load_config(config).admin_listen_set
    config.write_text('[server]\nadmin_listen = "127.0.0.1:9464"\n' + APP)
    assert load_config(config).admin_listen_set
