"""What the metrics count, in one process (prometheus-client's default registry): calls through a
real in-process server, the facts of their log fields, secrets and reloads, the backends'
errors, and the serving process's own state. Several workers: tests/process/test_admin_process.py."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hvac import exceptions as hvac_errors
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sdksign.client import AsyncClient, Role, SdkSignError
from sdksign.server import App, Config, ConfigError, load_config
from sdksign.server.access.policy import Caller, Rule
from sdksign.server.access.ratestore import SharedLimiter
from sdksign.server.access.ratestore import error_kind as store_error_kind
from sdksign.server.config.model import RateLimitStore
from sdksign.server.config.vault import error_kind as vault_error_kind
from sdksign.server.errors import ResourceExhausted
from sdksign.server.observe import exposition, metricdir
from sdksign.server.observe import metrics as _metrics
from sdksign.server.observe.context import bind, start_call
from sdksign.server.runtime import service as _service
from sdksign.server.runtime.serve import add_port, build_server
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import rpc_lines
from tests.helpers import HS256, meeting_claims, raw_token

SIGN = {"grpc_service": "sdksign.v1.SignatureService", "grpc_method": "Sign", "grpc_type": "unary"}


def value(name: str, **labels: str) -> float:
    """The sample's value now (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counted(name: str, **labels: str) -> Callable[[], float]:
    """How much `name` has grown since this call."""
    before = value(name, **labels)
    return lambda: value(name, **labels) - before


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`: a call's answer reaches the client before it is counted (once gRPC
    has sent it: runtime.rpc)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not counted")


async def test_a_sign_counts_a_token_its_lifetime_and_the_call(
    target: str, meeting_app: App
) -> None:
    tokens = counted(
        "sdksign_tokens_issued_total",
        app="meeting",
        kind="meeting",
        role="host",
        caller="anonymous",
    )
    lifetimes = counted("sdksign_token_lifetime_seconds_sum", app="meeting")
    within_2h = counted("sdksign_token_lifetime_seconds_bucket", app="meeting", le="7200.0")
    handled = counted("grpc_server_handled_total", grpc_code="OK", **SIGN)
    started = counted("grpc_server_started_total", **SIGN)
    durations = counted("grpc_server_handling_seconds_count", **SIGN)
    async with AsyncClient(target) as client:
        await client.sign_meeting("94843468909", Role.HOST, ttl=timedelta(hours=2))
    await until(lambda: handled() == 1)
    assert (tokens(), lifetimes(), within_2h(), handled(), started(), durations()) == (
        1,
        7200,
        1,
        1,
        1,
        1,
    )


async def test_verify_counts_its_result_and_each_problem(target: str, meeting_app: App) -> None:
    valid = counted("sdksign_verify_results_total", app="meeting", valid="true")
    invalid = counted("sdksign_verify_results_total", app="meeting", valid="false")
    bad_signature = counted("sdksign_verify_problems_total", code="BAD_SIGNATURE")
    unknown_key = counted("sdksign_verify_results_total", app="unknown", valid="false")
    now = int(time.time())
    async with AsyncClient(target) as client:
        signed = await client.sign_meeting("94843468909", Role.PARTICIPANT)
        assert (await client.verify(signed.token)).valid
        forged = raw_token(HS256, meeting_claims(meeting_app.sdk_key, now), b"another secret")
        assert not (await client.verify(forged)).valid
        stranger = raw_token(HS256, meeting_claims("NoSuchKey", now), b"s")
        assert not (await client.verify(stranger)).valid
    await until(lambda: unknown_key() == 1)
    assert (valid(), invalid(), bad_signature(), unknown_key()) == (1, 1, 1, 1)


async def test_an_invalid_call_is_counted_by_code_and_the_request_s_values_are_no_label(
    target: str,
) -> None:
    invalid = counted("grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **SIGN)
    sent = "an-app-name-the-caller-made-up"
    async with AsyncClient(target) as client:
        with pytest.raises(SdkSignError):
            await client.sign_meeting("not-a-number-7731", Role.HOST, app=sent)
    await until(lambda: invalid() == 1)
    text = generate_latest(REGISTRY).decode()
    assert sent not in text and "7731" not in text


def record(code: str, **fields: object) -> None:
    """record_call for one Sign call whose servicer bound `fields`, as runtime.rpc makes it."""

    def call() -> None:  # in a context of its own, as each RPC's task is
        start_call()
        bind(**fields)
        _metrics.record_call("/sdksign.v1.SignatureService/Sign", code, 0.001)

    contextvars.copy_context().run(call)


async def test_streaming_calls_are_counted_by_type_and_code(target: str) -> None:
    watch_labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch"}
    watch_started = counted("grpc_server_started_total", grpc_type="server_stream", **watch_labels)
    watch_cancelled = counted(
        "grpc_server_handled_total",
        grpc_type="server_stream",
        grpc_code="CANCELLED",
        **watch_labels,
    )
    watch_ok = counted(
        "grpc_server_handled_total", grpc_type="server_stream", grpc_code="OK", **watch_labels
    )
    reflection_labels = {
        "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
        "grpc_method": "ServerReflectionInfo",
        "grpc_type": "bidi_stream",
    }
    reflection_started = counted("grpc_server_started_total", **reflection_labels)
    reflection_ok = counted("grpc_server_handled_total", grpc_code="OK", **reflection_labels)
    reflection_durations = counted("grpc_server_handling_seconds_count", **reflection_labels)
    async with grpc.aio.insecure_channel(target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(anext(aiter(watch)), 5)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        info = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        answers = [answer async for answer in info]
    assert "sdksign.v1.SignatureService" in {
        service.name for service in answers[0].list_services_response.service
    }
    await until(lambda: watch_cancelled() == 1 and reflection_ok() == 1)
    assert (watch_started(), watch_cancelled(), watch_ok()) == (1, 1, 0)
    assert (reflection_started(), reflection_ok(), reflection_durations()) == (1, 1, 1)
    assert value("grpc_server_started_total", grpc_type="unary", **watch_labels) == 0


def test_refusals_count_by_caller_and_rule_never_the_app_asked_for() -> None:
    by_rule = counted("sdksign_refusals_total", caller="scheduler", rule="role")
    unidentified = counted("sdksign_refusals_total", caller="unknown", rule="credentials")
    limited = counted("sdksign_refusals_total", caller="scheduler", rule="rate_limit")
    record("PERMISSION_DENIED", caller="scheduler", rule="role", app="user input")
    record("UNAUTHENTICATED", rule="credentials", app="user input")  # no caller bound
    record("RESOURCE_EXHAUSTED", caller="scheduler", rule="rate_limit")
    record("INVALID_ARGUMENT", caller="scheduler", app="user input")  # not a refusal
    assert (by_rule(), unidentified(), limited()) == (1, 1, 1)
    assert "user input" not in generate_latest(REGISTRY).decode()


def test_a_rate_limit_refusal_names_its_rule() -> None:
    assert ResourceExhausted("over", 1.0, "c").rule == "rate_limit"
    unavailable = ResourceExhausted("store lost", 1.0, "c", reason="RATE_LIMIT_STORE_UNAVAILABLE")
    assert unavailable.rule == "rate_limit_store"


def test_a_native_token_s_role_is_none() -> None:
    native = counted(
        "sdksign_tokens_issued_total", app="meeting", kind="meeting", role="none", caller="a"
    )
    record("OK", app="meeting", kind="meeting", role="", caller="a", ttl=7200)
    assert native() == 1


def test_secrets_shown_are_those_served_with_their_age(tmp_path: Path) -> None:
    (tmp_path / "web.secret").write_text("w" * 32)
    (tmp_path / "old.secret").write_text("o" * 32)
    os.utime(tmp_path / "web.secret", (1_700_000_000, 1_700_000_000))
    config = tmp_path / "sdksign.toml"
    config.write_text(
        '[[apps]]\nname = "web"\nkind = "meeting"\nsdk_key = "k1"\nsecret_file = "web.secret"\n'
        'previous_secret_files = ["old.secret"]\n'
        '[[apps]]\nname = "env"\nkind = "video"\nsdk_key = "k2"\nsecret_env = "E"\n'
    )
    loaded = load_config(config, {"E": "e" * 32})
    web, env = loaded.apps
    _metrics.secrets_served(loaded)
    active, previous = web.secret_fingerprints
    assert value("sdksign_app_secret_info", app="web", fingerprint=active, active="true") == 1
    assert value("sdksign_app_secret_info", app="web", fingerprint=previous, active="false") == 1
    assert value("sdksign_app_secret_created_timestamp_seconds", app="web", fingerprint=active) == (
        1_700_000_000
    )
    (env_active,) = env.secret_fingerprints
    assert value("sdksign_app_secret_info", app="env", fingerprint=env_active, active="true") == 1
    assert not REGISTRY.get_sample_value(
        "sdksign_app_secret_created_timestamp_seconds", {"app": "env", "fingerprint": env_active}
    )  # an environment variable says nothing of its age

    # Rotated: the previous secret is let go of, the series gone (not left at 0).
    _metrics.secrets_served(Config(apps=(App("web", "meeting", "k1", b"n" * 32),), source="t"))
    names = {"app": "web", "fingerprint": previous, "active": "false"}
    assert REGISTRY.get_sample_value("sdksign_app_secret_info", names) is None
    assert (
        REGISTRY.get_sample_value(
            "sdksign_app_secret_info", {"app": "env", "fingerprint": env_active, "active": "true"}
        )
        is None
    )
    for secret in (b"w" * 32, b"o" * 32, b"e" * 32, b"n" * 32):
        assert secret.decode() not in generate_latest(REGISTRY).decode()


def test_reloads_count_by_result_and_a_success_sets_the_time(config: Config) -> None:
    successes = counted("sdksign_config_reloads_total", result="success")
    failures = counted("sdksign_config_reloads_total", result="failure")
    before = time.time()
    _metrics.reload_done(None)
    _metrics.reload_done(config)
    assert (successes(), failures()) == (1, 1)
    assert value("sdksign_config_last_reload_success_timestamp_seconds") >= before


def test_a_vault_out_of_reach_counts_a_connection_error(tmp_path: Path) -> None:
    errors = counted("sdksign_vault_errors_total", error="connection")
    config = tmp_path / "sdksign.toml"
    config.write_text(
        '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\n'
        'secret_vault = "secret/data/zoom/meeting#secret"\n'
        '[vault]\naddress = "http://127.0.0.1:1"\ntoken_env = "T"\n'  # nothing listens on 1
    )
    with pytest.raises(ConfigError):
        load_config(config, {"T": "t"})
    assert errors() == 1


def test_vault_errors_by_kind() -> None:
    assert vault_error_kind(hvac_errors.Forbidden()) == "auth"
    assert vault_error_kind(requests.exceptions.ConnectTimeout()) == "timeout"
    assert vault_error_kind(requests.exceptions.ReadTimeout()) == "timeout"
    assert vault_error_kind(requests.exceptions.SSLError()) == "connection"
    assert vault_error_kind(hvac_errors.VaultDown()) == "other"


async def test_a_store_out_of_reach_counts_a_connection_error() -> None:
    errors = counted("sdksign_rate_limit_store_errors_total", error="connection")
    limiter = SharedLimiter(RateLimitStore(host="127.0.0.1", port=1, timeout=1.0))
    try:
        await limiter.take(Caller(name="c", rule=Rule(rate=1.0, burst=1)))
    finally:
        await limiter.aclose()
    assert errors() == 1


def test_store_errors_by_kind() -> None:
    assert store_error_kind(AuthenticationError()) == "auth"
    assert store_error_kind(TimeoutError()) == "timeout"
    assert store_error_kind(RedisTimeoutError()) == "timeout"
    assert store_error_kind(RedisConnectionError()) == "connection"
    assert store_error_kind(ConnectionRefusedError()) == "connection"
    assert store_error_kind(ValueError()) == "other"


def test_every_error_kind_and_reload_result_is_shown_from_the_start() -> None:
    _metrics.setup()  # the start of a process that serves
    for kind in _metrics.ERROR_KINDS:
        assert REGISTRY.get_sample_value("sdksign_vault_errors_total", {"error": kind}) is not None
        store = REGISTRY.get_sample_value("sdksign_rate_limit_store_errors_total", {"error": kind})
        assert store is not None
    for result in ("success", "failure"):
        assert (
            REGISTRY.get_sample_value("sdksign_config_reloads_total", {"result": result})
            is not None
        )


def test_the_serving_process_s_own_metrics() -> None:
    reason: list[str | None] = ["starting: not serving yet"]
    state = exposition.ServerState(lambda: reason[0])
    shown = exposition.registry(state)
    assert shown.get_sample_value("sdksign_ready") == 0
    reason[0] = None
    state.worker_restarts = 2
    assert shown.get_sample_value("sdksign_ready") == 1
    assert shown.get_sample_value("sdksign_worker_restarts_total") == 2
    version, python, grpcio = exposition.build_labels()
    labels = {"version": version, "python": python, "grpcio": grpcio}
    assert shown.get_sample_value("sdksign_build_info", labels) == 1
    # The process's own registry is shown as well, once.
    text = generate_latest(shown).decode()
    assert text.count("# TYPE grpc_server_handled_total counter") == 1


def test_the_zeros_of_secrets_no_longer_served_are_left_out() -> None:
    class Files:  # as the workers' files read back: a secret let go of stays at 0
        def collect(self) -> list[GaugeMetricFamily]:
            info = GaugeMetricFamily("sdksign_app_secret_info", "", labels=["fingerprint"])
            info.add_metric(["new"], 1)
            info.add_metric(["old"], 0)
            other = GaugeMetricFamily("sdksign_ready_elsewhere", "", value=0)
            return [info, other]

    shown = list(exposition._ZerosLeftOut(Files()).collect())
    assert [s.labels for s in shown[0].samples] == [{"fingerprint": "new"}]
    assert [s.value for s in shown[1].samples] == [0]  # other families keep their zeros


def test_the_workers_folder_is_a_new_one_or_the_operator_s_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(metricdir.MULTIPROC_ENV, "")  # as if unset; put back as it was, after
    folder, own = metricdir.multiprocess_dir()
    try:
        assert own and folder.is_dir() and os.environ[metricdir.MULTIPROC_ENV] == str(folder)
    finally:
        metricdir.remove_dir(folder)
    assert not folder.exists()

    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "notes.txt").write_text("kept")
    monkeypatch.setenv(metricdir.MULTIPROC_ENV, str(given))
    assert metricdir.multiprocess_dir() == (given, False)
    # Its *.db files gone, and its lock (held while this process lives) made.
    assert sorted(p.name for p in given.iterdir()) == [".sdksign.lock", "notes.txt"]
    (given / "file").write_text("")
    monkeypatch.setenv(metricdir.MULTIPROC_ENV, str(given / "file" / "metrics"))
    with pytest.raises(metricdir.FolderError) as caught:
        metricdir.multiprocess_dir()
    assert str(caught.value) == (
        f"cannot keep the workers' metrics in PROMETHEUS_MULTIPROC_DIR "
        f"'{given / 'file' / 'metrics'}': Not a directory (set PROMETHEUS_MULTIPROC_DIR to a "
        "folder this user may write)"
    )


async def test_a_call_is_started_before_it_is_handled(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = counted("grpc_server_started_total", **SIGN)
    handled = counted("grpc_server_handled_total", grpc_code="OK", **SIGN)
    seen: list[tuple[float, float]] = []
    sign = _service.SignatureService.Sign

    async def watched(
        self: _service.SignatureService,
        request: pb.SignRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.SignResponse:
        seen.append((started(), handled()))  # while the call runs
        return await sign(self, request, context)

    monkeypatch.setattr(_service.SignatureService, "Sign", watched)
    server, _ = build_server(config)
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        async with AsyncClient(f"127.0.0.1:{port}") as client:
            await client.sign_meeting("94843468909", Role.HOST)
        await until(lambda: handled() == 1)  # counted once its answer has left
    finally:
        await server.stop(None)
    assert seen == [(1, 0)]
    assert (started(), handled()) == (1, 1)


def test_folders_of_servers_killed_before_their_end_are_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = tmp_path / f"sdksign-metrics-{gone.pid}-x1y2"
    alive = tmp_path / f"sdksign-metrics-{os.getppid()}-a1b2"
    other = tmp_path / "sdksign-metrics-notes"
    for folder in (orphan, alive, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"")
    metricdir._remove_orphans(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


async def test_a_metric_that_cannot_be_written_never_fails_the_call(
    log_stream: io.BytesIO, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that raises (a worker's metrics file on a full /tmp) leaves the call answered
    and logged, uncounted; the failure is logged once per step, not once a call."""

    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_metrics, "_failures_logged", set())
    monkeypatch.setattr(_metrics, "_started", {})
    monkeypatch.setattr(_metrics, "_calls", {})
    made = _metrics.setup()
    monkeypatch.setattr(made.started, "labels", full)
    monkeypatch.setattr(made.handled, "labels", full)
    async with AsyncClient(target) as client:
        for _ in range(2):
            assert (await client.sign_meeting("94843468909", Role.HOST)).token
    await rpc_lines(log_stream, count=2)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [line["code"] for line in lines if line["event"] == "rpc"] == ["OK", "OK"]
    failed = [line for line in lines if line["event"].startswith("metrics failed")]
    assert sorted(line["event"].split(" by ")[1] for line in failed) == [
        "call_started (said once)",
        "record_call (said once)",
    ]
    assert all("No space left on device" in line["exception"] for line in failed)


def test_a_folder_named_with_this_process_s_own_pid_is_an_earlier_run_s_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PID 1 in a container on every restart, with /tmp kept: the folder of the run before
    is named with this run's pid, and goes at start; this run's own is made after."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    monkeypatch.setenv(metricdir.MULTIPROC_ENV, "")
    earlier = tmp_path / f"sdksign-metrics-{os.getpid()}-e4r1"
    earlier.mkdir()
    (earlier / "counter_7.db").write_bytes(b"counts of the run before")
    folder, own = metricdir.multiprocess_dir()
    try:
        assert own and folder.parent == tmp_path
        assert [p.name for p in tmp_path.iterdir()] == [folder.name]
    finally:
        metricdir.remove_dir(folder)
