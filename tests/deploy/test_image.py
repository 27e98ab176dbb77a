"""The Containerfile's recipe, run without a container engine (none runs on these machines):
its build stage's COPY lines into a folder, its RUN line (deploy/image/install.sh) into a clean
virtual environment from PyPI, then its ENTRYPOINT with the Kubernetes Deployment's arguments
on loopback: gRPC health SERVING for the probes' services, a Sign call, /healthz/ready, then
SIGTERM as kubelet sends it: NOT_SERVING during the drain, and exit status 0 within the pod's
termination grace period."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sdksign.client import AsyncClient, Role
from tests.conftest import ROOT, log_lines
from tests.deploy.kit import (
    container,
    containerfile_instructions,
    entrypoint,
    pod_spec,
    secret_keys,
    server_args,
    write_config,
)

# Where the image puts the environment, and the build stage's folder (Containerfile).
IMAGE_VENV = "/opt/sdksign"
# pip, from PyPI: 10 to 20 s with pip's cache warm (~/.cache/pip, kept between runs: CI
# should keep it too), about a minute cold. Past this the install is stopped and the test
# fails, saying so.
INSTALL_TIMEOUT = 600
START_TIMEOUT = 60
# What the clean install takes of this environment: where packages come from and how to
# reach them (a mirror, a proxy, a CA), and pip's cache. Nothing else of the environment.
PASSED_ON = (
    *("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CERT", "PIP_CACHE_DIR"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "XDG_CACHE_HOME"),
)
# pip never waits for input (a prompt for an index's password would hang the test), shows
# no progress bars, and gives up on a silent connection after 30 s (5 retries).
PIP_SETTINGS = {"PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off", "PIP_DEFAULT_TIMEOUT": "30"}


def build_stage() -> list[tuple[str, str]]:
    """The instructions of the Containerfile's first stage (up to the second FROM)."""
    instructions = containerfile_instructions()
    froms = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(froms) == 2, "a build stage and a run stage"
    return instructions[froms[0] + 1 : froms[1]]


def copy_sources(stage: list[tuple[str, str]], workdir: Path) -> None:
    """The stage's COPY lines, from the checkout into `workdir` (its WORKDIR)."""
    for keyword, rest in stage:
        if keyword != "COPY":
            continue
        *sources, destination = shlex.split(rest)
        for source in sources:
            target = workdir / destination
            if destination.endswith("/") or len(sources) > 1:
                target = target / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /opt/sdksign, made by the Containerfile's build stage without a container:
    the virtual environment's folder."""
    folder = tmp_path_factory.mktemp("image")
    stage = build_stage()
    (workdir_line,) = [rest for keyword, rest in stage if keyword == "WORKDIR"]
    workdir = folder / workdir_line.strip("/")
    workdir.mkdir(parents=True)
    copy_sources(stage, workdir)
    (run_line,) = [rest for keyword, rest in stage if keyword == "RUN"]
    venv = folder / IMAGE_VENV.strip("/")
    command = [
        {IMAGE_VENV: str(venv), workdir_line: str(workdir)}.get(word, word)
        for word in shlex.split(run_line)
    ]
    assert command[:2] == ["sh", "deploy/image/install.sh"], command
    run_install(command, workdir, folder / "install.log")
    return venv


def install_environment() -> dict[str, str]:
    """PATH and HOME (pip's cache), PASSED_ON where set, and PIP_SETTINGS."""
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/nonexistent")}
    environment.update({name: os.environ[name] for name in PASSED_ON if name in os.environ})
    return {**environment, **PIP_SETTINGS}


def run_install(command: list[str], workdir: Path, log_path: Path) -> None:
    """Run the install step, its output to `log_path` (a file: pip's own children cannot
    hold a pipe open past the timeout); after INSTALL_TIMEOUT seconds, its whole process
    group is killed and the test fails with the output's end."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=install_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(
                f"deploy/image/install.sh did not finish within {INSTALL_TIMEOUT} s (pip from "
                f"PyPI, or the index {PASSED_ON[0]} names: is it reachable?); the end of its "
                f"output:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
    assert returncode == 0, log_path.read_text(errors="replace")


def image_environment(venv: Path, tmp: Path) -> dict[str, str]:
    """The run stage's ENV (its /opt/sdksign and /tmp here), and the Deployment's env."""
    environment = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    for keyword, rest in containerfile_instructions():
        if keyword == "ENV":
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition("=")
                value = value.replace("$PATH", environment["PATH"]).replace(IMAGE_VENV, str(venv))
                environment[name] = str(tmp) if value == "/tmp" else value  # noqa: S108 (the emptyDir)
    for variable in container("sdksign").get("env", []):
        environment[variable["name"]] = variable["value"]
    return environment


def loopback_args(config: Path) -> list[str]:
    """The Deployment's args: its config file here, both listeners on loopback, any free port."""
    replaced = {
        "/etc/sdksign/sdksign.toml": str(config),
        "0.0.0.0:50051": "127.0.0.1:0",
        "0.0.0.0:9464": "127.0.0.1:0",
    }
    args = server_args()
    assert set(replaced) <= set(args), args
    return [replaced.get(arg, arg) for arg in args]


@pytest.fixture
def started(installed: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The ENTRYPOINT with the Deployment's args, in the installed environment alone (no
    checkout on its path, its working folder empty): the process and its stderr's file."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    environment = image_environment(installed, tmp_path / "tmp")
    program, *rest = entrypoint()
    found = shutil.which(program, path=environment["PATH"])  # as the image's PATH finds it
    assert found == str(installed / "bin" / program), found
    stderr = tmp_path / "server.stderr"
    with stderr.open("wb") as log:
        process = subprocess.Popen(
            [found, *rest, *loopback_args(write_config(tmp_path / "etc"))],
            cwd=tmp_path / "cwd",
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        yield process, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def listening(process: subprocess.Popen[bytes], stderr: Path, workers: int) -> dict[str, object]:
    """Wait until each worker logs "listening"; the first such line."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        lines = [line for line in log_lines(stderr.read_text()) if line["event"] == "listening"]
        if len(lines) >= workers:
            return lines[0]
        assert process.poll() is None, stderr.read_text()
        time.sleep(0.1)
    raise AssertionError(f"not listening: {stderr.read_text()}")


async def health(target: str, service: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def ready(admin: str) -> int:
    """GET /healthz/ready on the admin listener: its status code."""
    try:
        with urllib.request.urlopen(f"http://{admin}/healthz/ready", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def until_not_serving(target: str, service: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    status = await health(target, service)
    while status == "SERVING" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = await health(target, service)
    return status


async def test_the_image_recipe_serves_with_the_deployment_args_and_stops_on_sigterm(
    started: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    process, stderr = started
    args = server_args()
    line = listening(process, stderr, workers=int(args[args.index("--workers") + 1]))
    target, admin = str(line["address"]), str(line["admin_address"])
    probes = container("sdksign")
    for probe in ("readinessProbe", "livenessProbe"):
        assert await health(target, probes[probe]["grpc"]["service"]) == "SERVING"
    assert ready(admin) == 200
    async with AsyncClient(target, timeout=5) as client:  # a browser through the gateway
        signed = await client.sign_meeting("94843468909", Role.PARTICIPANT)
    assert signed.app == "meeting"

    process.send_signal(signal.SIGTERM)  # as kubelet does, once preStop has slept
    readiness = probes["readinessProbe"]["grpc"]["service"]
    assert await until_not_serving(target, readiness, seconds=5) == "NOT_SERVING"
    assert ready(admin) == 503  # still answering: the drain
    pre_stop = probes["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = pod_spec("sdksign")["terminationGracePeriodSeconds"] - pre_stop
    assert await asyncio.to_thread(process.wait, budget) == 0  # before kubelet's SIGKILL
    logs = stderr.read_text()
    for key in secret_keys():
        assert (tmp_path / "etc" / "secrets" / key).read_text() not in logs
    assert [e for e in log_lines(logs) if e["event"] == "stopped"]


def test_an_install_that_hangs_is_stopped_and_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled pip (here: a shell whose child holds the output open) is killed with its
    children at INSTALL_TIMEOUT, and the test fails with a message, not a hang."""
    monkeypatch.setattr(f"{__name__}.INSTALL_TIMEOUT", 1)
    pid_file = tmp_path / "child.pid"
    command = ["sh", "-c", f"echo collecting; sleep 60 & echo $! > {pid_file}; wait"]
    with pytest.raises(pytest.fail.Exception, match=r"within 1 s .*\n.*collecting"):
        run_install(command, tmp_path, tmp_path / "install.log")
    child = int(pid_file.read_text())
    assert gone_within(child, seconds=10)  # killed: SIGKILL takes effect when it is next run


def gone_within(pid: int, seconds: float) -> bool:
    """Whether `pid` exits (or is a zombie) within `seconds`. A process sent SIGKILL on a
    busy machine can still show as running until the scheduler next runs it."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + seconds
    while True:
        try:
            if stat.read_text().split(") ")[1].startswith("Z"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_the_install_takes_only_the_package_sources_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the checkout: never seen by the install
    environment = install_environment()
    assert environment["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert "PYTHONPATH" not in environment and environment["PIP_NO_INPUT"] == "1"
