"""The admin listener of real `sdksign serve` processes: /metrics for all the workers at once
(prometheus-client's multiprocess mode), readiness through a drain, a worker's counts kept
after it dies, and the listener's own refusals (a taken port, beyond loopback without TLS)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sdksign.server import fingerprint
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.certs import Authority
from tests.conftest import MEETING_KEY, ServerProcess, log_lines, start_server_process
from tests.helpers import HS256, meeting_claims, raw_token
from tests.openbao import OpenBao
from tests.process.test_process import serve_until_exit
from tests.process.test_vault_process import config_file
from tests.process.test_workers import events, wait_for

MEETING = "94843468909"
RATED_TOKEN = secrets.token_urlsafe(24)
WRONG_TOKEN = secrets.token_urlsafe(24)
# An app name sent by a caller: request input, never a label.
SENT_APP = "app-the-caller-made-up"
BAD_NUMBER = "9484x3468909"


def config_text() -> str:
    digest = hashlib.sha256(RATED_TOKEN.encode()).hexdigest()
    return (
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{MEETING_KEY}"\n'
        'secret_env = "S"\n'
        '[anonymous]\nroles = ["participant"]\nverify = true\n'
        f'[[callers]]\nname = "rated"\ntoken_sha256 = "{digest}"\nroles = ["participant"]\n'
        "rate = 0.001\nburst = 2\n"
    )


def serve(
    tmp_path: Path, at_end: contextlib.ExitStack, args: list[str]
) -> tuple[ServerProcess, str]:
    """A server of config_text() (stopped at the test's end), and its admin listener's
    address; TOKENS emptied for its calls."""
    TOKENS.clear()
    (tmp_path / "sdksign.toml").write_text(config_text())
    env = {"S": SECRET}
    server = start_server_process(tmp_path, env, ["--config", "sdksign.toml", *args])
    at_end.callback(stop, server)
    return server, admin_address(server)


SECRET = secrets.token_urlsafe(32)


@pytest.fixture
def at_end() -> Iterator[contextlib.ExitStack]:
    """What a test leaves to do at its end (the servers it started, stopped)."""
    with contextlib.ExitStack() as stack:
        yield stack


def stop(server: ServerProcess) -> None:
    """SIGTERM (the metrics folder is removed), and SIGKILL if it does not stop."""
    server.stop(timeout=30)


def admin_address(server: ServerProcess) -> str:
    wait_for(lambda: events(server, "listening"), server)
    return str(events(server, "listening")[0]["admin_address"])


def get(address: str, path: str, method: str = "GET") -> tuple[int, str]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: str) -> tuple[str, Samples]:
    status, text = get(address, "/metrics")
    assert status == 200, text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def scrape_when_counted(address: str, server: ServerProcess, calls: int) -> tuple[str, Samples]:
    """/metrics once `calls` unary calls are counted: a refused call's status reaches its
    caller before the server counts it."""
    wait_for(lambda: total(scrape(address)[1], "grpc_server_handled_total") >= calls, server)
    return scrape(address)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, have), value in samples.items() if n == name and wanted <= have)


def sign(channel: grpc.Channel, request: pb.SignRequest, token: str | None = None) -> str:
    """The call's code name; the token of an OK one goes to TOKENS."""
    metadata = [("authorization", f"Bearer {token}")] if token else None
    try:
        answer = pb_grpc.SignatureServiceStub(channel).Sign(request, timeout=10, metadata=metadata)
    except grpc.RpcError as error:
        return str(error.code().name)
    TOKENS.append(answer.token)
    return "OK"


TOKENS: list[str] = []
PARTICIPANT = pb.SignRequest(
    meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
)
HOST = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST))


def make_calls(target: str) -> dict[str, int]:
    """100 tokens (98 anonymous on 14 connections, 2 of `rated`), and refused and invalid
    calls; Verify of two good tokens and a forged one. The codes counted."""
    codes: dict[str, int] = {}

    def count(code: str) -> None:
        codes[code] = codes.get(code, 0) + 1

    for _ in range(14):  # each on its own connection: both workers serve some
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as c:
            for _ in range(7):
                count(sign(c, PARTICIPANT))
    with grpc.insecure_channel(target) as channel:  # one connection: one worker's bucket
        for _ in range(5):
            count(sign(channel, PARTICIPANT, RATED_TOKEN))  # 2 OK, then over the rate
        for _ in range(4):
            count(sign(channel, HOST))  # anonymous callers may not mint host tokens
        for _ in range(3):
            count(sign(channel, PARTICIPANT, WRONG_TOKEN))
        bad = pb.SignRequest(
            meeting=pb.MeetingClaims(meeting_number=BAD_NUMBER, role=pb.ROLE_PARTICIPANT)
        )
        for _ in range(5):
            count(sign(channel, bad))
        count(sign(channel, pb.SignRequest(app=SENT_APP, meeting=PARTICIPANT.meeting)))
        stub = pb_grpc.SignatureServiceStub(channel)
        forged = raw_token(HS256, meeting_claims(MEETING_KEY, int(time.time())), b"not the secret")
        for token in (TOKENS[0], TOKENS[1], forged):
            stub.Verify(pb.VerifyRequest(token=token), timeout=10)
    return codes


# Long on purpose: the issue's "done when", in order: counts, no secret, a worker killed, then a drain
def test_two_workers_show_one_endpoint_through_a_worker_s_death_and_a_drain(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    server, admin = serve(tmp_path, at_end, ["--workers", "2", "--drain", "3"])
    wait_for(lambda: len(events(server, "listening")) == 2, server)
    wait_for(lambda: get(admin, "/healthz/ready") == (200, "ready\n"), server)

    codes = make_calls(server.target)
    assert codes == {
        "OK": 100,
        "RESOURCE_EXHAUSTED": 3,
        "UNAUTHENTICATED": 7,
        "INVALID_ARGUMENT": 6,
    }
    text, samples = scrape_when_counted(admin, server, 119)
    assert total(samples, "sdksign_tokens_issued_total") == 100
    issued = {"app": "meeting", "kind": "meeting", "role": "participant"}
    assert total(samples, "sdksign_tokens_issued_total", caller="anonymous", **issued) == 98
    assert total(samples, "sdksign_tokens_issued_total", caller="rated", **issued) == 2
    sign_method = {"grpc_service": "sdksign.v1.SignatureService", "grpc_method": "Sign"}
    for code, count in codes.items():
        handled = total(samples, "grpc_server_handled_total", grpc_code=code, **sign_method)
        assert handled == count, code
    assert total(samples, "grpc_server_started_total", **sign_method) == 116
    assert total(samples, "grpc_server_handling_seconds_count", **sign_method) == 116
    assert total(samples, "sdksign_token_lifetime_seconds_count", app="meeting") == 100
    assert total(samples, "sdksign_refusals_total") == 10
    assert total(samples, "sdksign_refusals_total", caller="rated", rule="rate_limit") == 3
    assert total(samples, "sdksign_refusals_total", caller="anonymous", rule="role") == 4
    assert total(samples, "sdksign_refusals_total", caller="unknown", rule="credentials") == 3
    assert total(samples, "sdksign_verify_results_total", app="meeting", valid="true") == 2
    assert total(samples, "sdksign_verify_results_total", app="meeting", valid="false") == 1
    assert total(samples, "sdksign_verify_problems_total", code="BAD_SIGNATURE") == 1
    assert total(samples, "sdksign_ready") == 1
    assert total(samples, "sdksign_worker_restarts_total") == 0
    assert total(samples, "sdksign_app_secret_info", app="meeting", active="true") == 1
    assert total(samples, "sdksign_config_last_reload_success_timestamp_seconds") > 0

    # Nothing a caller sent, and no secret or token, is in the text.
    for never in (MEETING, BAD_NUMBER, SENT_APP, SECRET, RATED_TOKEN, WRONG_TOKEN, *TOKENS):
        assert never not in text
    for token in TOKENS:
        assert token.split(".")[1] not in text  # not even its claims

    # A worker killed: its counts stay, the replacement's add to them.
    victim = events(server, "listening")[0]
    served = [line for line in events(server, "rpc") if line["worker"] == victim["worker"]]
    assert served  # it counted some of the calls above
    os.kill(int(str(victim["pid"])), signal.SIGKILL)
    wait_for(lambda: len(events(server, "listening")) == 3, server)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
    with grpc.insecure_channel(server.target) as channel:
        assert sign(channel, PARTICIPANT) == "OK"
    _, samples = scrape_when_counted(admin, server, 120)
    assert total(samples, "sdksign_tokens_issued_total") == 101
    assert total(samples, "grpc_server_handled_total", grpc_code="OK", **sign_method) == 101
    assert total(samples, "sdksign_worker_restarts_total") == 1
    # The dead worker's secrets are not shown twice: one active secret, from the live ones.
    assert total(samples, "sdksign_app_secret_info", app="meeting", active="true") == 1

    # SIGTERM: not ready at once, while the workers drain (3 s) and the listener answers.
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 503, server)
    assert not events(server, "shutting down")  # still in the drain
    assert get(admin, "/healthz/ready") == (503, "draining: stopping\n")
    assert get(admin, "/healthz/live") == (200, "live\n")
    assert total(scrape(admin)[1], "sdksign_ready") == 0
    assert server.process.wait(timeout=30) == 0
    with pytest.raises(OSError):  # closed last, with the server
        get(admin, "/healthz/live")
    (starting,) = events(server, "starting workers")
    assert not Path(str(starting["metrics_folder"])).exists()  # its own: removed


def test_one_process_serves_its_own_admin_listener(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    server, admin = serve(tmp_path, at_end, ["--workers", "1", "--drain", "3"])
    assert get(admin, "/healthz/ready") == (200, "ready\n")
    with grpc.insecure_channel(server.target) as channel:
        assert sign(channel, PARTICIPANT) == "OK"
        assert sign(channel, HOST) == "UNAUTHENTICATED"
    _, samples = scrape_when_counted(admin, server, 2)
    assert total(samples, "sdksign_tokens_issued_total", caller="anonymous") == 1
    assert total(samples, "sdksign_refusals_total", caller="anonymous", rule="role") == 1
    assert total(samples, "sdksign_build_info") == 1
    assert total(samples, "process_resident_memory_bytes") > 0  # the process's own metrics

    assert get(admin, "/metrics", "POST")[0] == 405
    assert get(admin, "/healthz", "GET")[0] == 404
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 503, server)
    assert not events(server, "shutting down")
    assert get(admin, "/healthz/live")[0] == 200
    assert server.process.wait(timeout=30) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_admin_port_stops_the_start_in_one_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "sdksign.toml").write_text(config_text())
        # After the test's own --admin-listen 127.0.0.1:0: the last one given is used.
        args = [
            "--config",
            "sdksign.toml",
            "--workers",
            workers,
            "--admin-listen",
            f"127.0.0.1:{port}",
        ]
        done = serve_until_exit(tmp_path, {"S": SECRET}, args)
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert line == (
        f"sdksign: cannot serve the admin listener on '127.0.0.1:{port}': address in use "
        "(--admin-listen HOST:PORT: another port; port 0: any free one)"
    )
    assert not [line for line in log_lines(done.stderr) if line["event"] == "listening"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_admin_listener_on_the_grpc_port_stops_the_start_in_one_line(
    tmp_path: Path, workers: str
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (tmp_path / "sdksign.toml").write_text(config_text())
    address = f"127.0.0.1:{port}"
    args = ["--config", "sdksign.toml", "--workers", workers, "--admin-listen", address]
    done = serve_until_exit(tmp_path, {"S": SECRET}, args, listen=address)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sdksign: configuration error: the admin listener ({address}) is on the gRPC "
        f"listener's port ({address}): give --admin-listen or [server] admin_listen a port of "
        "its own"
    ]


def test_beyond_loopback_the_admin_listener_needs_tls_or_insecure(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    (tmp_path / "sdksign.toml").write_text(config_text())
    args = ["--config", "sdksign.toml", "--admin-listen", "0.0.0.0:0"]
    done = serve_until_exit(tmp_path, {"S": SECRET}, args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "sdksign: refusing to serve metrics and health on 0.0.0.0:0, beyond loopback, with no "
        "TLS ([server] tls_cert_file and tls_key_file): configure it (the admin listener serves "
        "the same certificate), use --admin-listen 127.0.0.1:9464, or pass --insecure"
    ]
    server = start_server_process(
        tmp_path,
        {"S": SECRET},
        ["--config", "sdksign.toml", "--workers", "1", "--admin-listen", "0.0.0.0:0", "--insecure"],
    )
    at_end.callback(stop, server)
    assert "serving metrics and health on 0.0.0.0:0 without TLS" in server.logs()
    port = admin_address(server).rsplit(":", 1)[1]
    assert get(f"127.0.0.1:{port}", "/healthz/ready") == (200, "ready\n")


def test_with_tls_the_admin_listener_serves_the_server_s_certificate(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    authority = Authority()
    issued = authority.issue("sdksign", dns=("localhost",), ips=("127.0.0.1",), server=True)
    (tmp_path / "server.crt").write_bytes(issued.cert)
    (tmp_path / "server.key").write_bytes(issued.key)
    tls = '[server]\ntls_cert_file = "server.crt"\ntls_key_file = "server.key"\n'
    (tmp_path / "sdksign.toml").write_text(tls + config_text())
    server = start_server_process(
        tmp_path,
        {"S": SECRET},
        # Beyond loopback: allowed with TLS, without --insecure.
        ["--config", "sdksign.toml", "--workers", "2", "--admin-listen", "0.0.0.0:0"],
    )
    at_end.callback(stop, server)
    port = admin_address(server).rsplit(":", 1)[1]
    context = ssl.create_default_context(cadata=authority.pem.decode())
    wait_for(lambda: https_get(port, context, "/healthz/ready")[0] == 200, server)
    status, text = https_get(port, context, "/metrics")
    assert status == 200 and "sdksign_ready 1.0" in text
    with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP gets no answer
        get(f"127.0.0.1:{port}", "/healthz/live")
    assert https_get(port, context, "/healthz/live")[0] == 200  # and the listener goes on


def https_get(port: str, context: ssl.SSLContext, path: str) -> tuple[int, str]:
    connection = http.client.HTTPSConnection("127.0.0.1", int(port), context=context, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def made(openbao: OpenBao) -> dict[str, float]:
    """When each version of zoom/meeting was written (epoch seconds), as OpenBao says."""
    answer = openbao.client().secrets.kv.v2.read_secret_metadata(path="zoom/meeting")
    versions = answer["data"]["versions"].items()
    return {number: datetime.fromisoformat(v["created_time"]).timestamp() for number, v in versions}


# Long on purpose: three Vault versions and a lost Vault, each step read back from two workers' metrics
def test_secrets_and_reloads_of_two_workers_from_openbao(
    tmp_path: Path, openbao: OpenBao, at_end: contextlib.ExitStack
) -> None:
    first, second, third = (secrets.token_urlsafe(32) for _ in range(3))
    openbao.write("zoom/meeting", first)
    config = config_file(tmp_path, openbao)
    env = {"VAULT_TOKEN": openbao.reader_token}
    server = start_server_process(tmp_path, env, ["--config", str(config), "--workers", "2"])
    at_end.callback(stop, server)
    admin = admin_address(server)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)

    def shown() -> dict[tuple[str, str], float]:
        """(fingerprint, active) of each secret shown, and when it was made."""
        _, samples = scrape(admin)
        ages = {
            dict(labels)["fingerprint"]: age
            for (name, labels), age in samples.items()
            if name == "sdksign_app_secret_created_timestamp_seconds"
        }
        return {
            (dict(labels)["fingerprint"], dict(labels)["active"]): ages[dict(labels)["fingerprint"]]
            for (name, labels), one in samples.items()
            if name == "sdksign_app_secret_info" and one == 1
        }

    assert shown() == {(fingerprint(first.encode()), "true"): made(openbao)["1"]}
    for reloads, secret in enumerate((second, third), start=1):
        openbao.write("zoom/meeting", secret)
        server.process.send_signal(signal.SIGHUP)
        lines = 2 * reloads  # one a worker
        wait_for(lambda n=lines: len(events(server, "configuration reloaded")) == n, server)
    # The first version no longer verifies (previous_versions = 1): gone, not shown at 0.
    assert shown() == {
        (fingerprint(third.encode()), "true"): made(openbao)["3"],
        (fingerprint(second.encode()), "false"): made(openbao)["2"],
    }
    openbao.stop()
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(events(server, "reload refused")) == 2, server)
    text, samples = scrape(admin)
    assert total(samples, "sdksign_config_reloads_total", result="success") == 4
    assert total(samples, "sdksign_config_reloads_total", result="failure") == 2
    assert total(samples, "sdksign_vault_errors_total", error="connection") == 2
    for value in (first, second, third, openbao.reader_token, openbao.root_token):
        assert value not in text


def test_the_operator_s_metrics_folder_is_made_or_emptied_else_one_line(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    (tmp_path / "sdksign.toml").write_text(config_text())
    args = ["--config", "sdksign.toml", "--workers", "2"]
    unusable = {"S": SECRET, "PROMETHEUS_MULTIPROC_DIR": "/proc/no-such-folder"}
    done = serve_until_exit(tmp_path, unusable, args)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [
        "sdksign: cannot keep the workers' metrics in PROMETHEUS_MULTIPROC_DIR "
        "'/proc/no-such-folder': No such file or directory (set PROMETHEUS_MULTIPROC_DIR to a "
        "folder this user may write)"
    ]

    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_4000000.db").write_bytes(b"a run before: not a metrics file")
    env = {"S": SECRET, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    server = start_server_process(tmp_path, env, args)
    at_end.callback(stop, server)
    admin = admin_address(server)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
    assert total(scrape(admin)[1], "sdksign_app_secret_info") == 1
    assert not (folder / "counter_4000000.db").exists()
    # A second server given the same folder is refused: the two would count into each
    # other's files, and its start would empty the first's.
    (second := tmp_path / "second").mkdir()
    (second / "sdksign.toml").write_text(config_text())
    done = serve_until_exit(second, env, args)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [
        f"sdksign: cannot keep the workers' metrics in PROMETHEUS_MULTIPROC_DIR '{folder}': "
        "another sdksign server uses it (give each server a folder of its own)"
    ]
    assert total(scrape(admin)[1], "sdksign_app_secret_info") == 1  # the first's, untouched
    server.process.terminate()
    assert server.process.wait(timeout=30) == 0
    assert folder.is_dir()  # the operator's: left in place


def test_an_operator_s_metrics_folder_that_cannot_be_written_is_one_line(
    tmp_path: Path,
) -> None:
    """A folder that is there but takes no file (/proc/1: not this user's, nor a folder of
    files): refused at the start, not by workers that fail on their first count."""
    (tmp_path / "sdksign.toml").write_text(config_text())
    env = {"S": SECRET, "PROMETHEUS_MULTIPROC_DIR": "/proc/1"}
    done = serve_until_exit(tmp_path, env, ["--config", "sdksign.toml", "--workers", "2"])
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith(
        "sdksign: cannot keep the workers' metrics in PROMETHEUS_MULTIPROC_DIR '/proc/1': "
    )
    assert line.endswith(" (set PROMETHEUS_MULTIPROC_DIR to a folder this user may write)")


def test_a_replacement_worker_that_cannot_read_the_file_again_counts_a_failed_reload(
    tmp_path: Path, at_end: contextlib.ExitStack
) -> None:
    """It serves the last configuration the workers took, and SdksignConfigReloadFailed hears of it:
    sdksign_config_reloads_total{result="failure"}, from the replacement alone."""
    server, admin = serve(tmp_path, at_end, ["--workers", "2"])
    wait_for(lambda: len(events(server, "listening")) == 2, server)
    assert total(scrape(admin)[1], "sdksign_config_reloads_total", result="failure") == 0
    config = tmp_path / "sdksign.toml"
    config.write_text(config.read_text() + "[[callers]]\nname = 'no token'\n")
    victim = events(server, "listening")[0]
    os.kill(int(str(victim["pid"])), signal.SIGKILL)
    wait_for(lambda: events(server, "serves the last configuration the workers took"), server)
    wait_for(lambda: get(admin, "/healthz/ready")[0] == 200, server)
    samples = scrape(admin)[1]
    assert total(samples, "sdksign_config_reloads_total", result="failure") == 1
    assert total(samples, "sdksign_config_reloads_total", result="success") == 0
