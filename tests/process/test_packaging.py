"""One distribution, unique import names, and a client that needs only grpcio, protobuf and
googleapis-common-protos (google.rpc: the refused fields of an error)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built from this checkout, as pip builds it."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(folder),
            str(ROOT),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    (built,) = folder.glob("sdksign-*.whl")
    return built


def test_wheel_holds_only_the_sdksign_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(
            archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"sdksign"}  # no bare `server` or `client` in site-packages
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert {"/".join(p.split("/")[:2]) for p in packages} == {
        "sdksign/cli",
        "sdksign/client",
        "sdksign/server",
        "sdksign/v1",
    }
    rooms = {"access", "config", "observe", "runtime", "tokens", "zoom", "zoomapi"}
    assert {p.split("/")[2] for p in packages if p.count("/") == 2} == rooms
    base = sorted(
        r.split(">")[0].split("<")[0]
        for r in metadata.get_all("Requires-Dist", [])
        if "extra ==" not in r
    )
    assert base == ["googleapis-common-protos", "grpcio", "protobuf"]


def test_the_client_imports_nothing_from_the_server_side() -> None:
    probe = (
        "import sys; import sdksign.client, sdksign.v1.signature_service_pb2_grpc; "
        # (grpcio itself imports the grpc_health and grpc_reflection names when they are installed)
        "server_side = ('structlog', 'grpc_status', 'msgspec', 'sdksign.server'); "
        "print([m for m in server_side if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'client'}"},
    )
    assert done.stdout.strip() == "[]"


# --- a client-only install: `pip install path/to/sdksign`, without the server extra ------------


def requirement_names(requires: list[str] | None) -> list[str]:
    """The names of the requirements that hold without an extra."""
    return [re.match(r"[\w.-]+", r)[0] for r in requires or () if "extra ==" not in r]  # type: ignore[index]


def client_dependencies() -> list[metadata.Distribution]:
    """sdksign's own requirements (no extra) and theirs, as this environment installed them."""
    found: dict[str, metadata.Distribution] = {}
    wanted = requirement_names(metadata.requires("sdksign"))
    while wanted:
        distribution = metadata.distribution(wanted.pop())
        name = distribution.metadata["Name"].lower().replace("_", "-")
        if name not in found:
            found[name] = distribution
            wanted += requirement_names(distribution.requires)
    return list(found.values())


def link_into(site: Path, distribution: metadata.Distribution) -> None:
    """Link a distribution's packages, modules and metadata into `site` (a namespace package
    such as protobuf's `google` is linked a level down, so that nothing else comes with it)."""
    roots = set()
    for file in distribution.files or ():
        top = file.parts[0]
        if top in ("..", "__pycache__"):
            continue
        source = Path(str(distribution.locate_file(top)))
        namespace = source.is_dir() and not (source / "__init__.py").exists()
        roots.add(Path(*file.parts[:2]) if namespace and "." not in top else Path(top))
    for root in roots:
        (site / root).parent.mkdir(parents=True, exist_ok=True)
        (site / root).symlink_to(Path(str(distribution.locate_file(root))))


@pytest.fixture(scope="module")
def client_only(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the client's dependencies alone (linked from this one: nothing is
    downloaded) and sdksign, installed from the wheel by pip, which checks its requirements
    against them and writes the `sdksign` command from the entry point."""
    venv = tmp_path_factory.mktemp("client-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for distribution in client_dependencies():
        link_into(Path(site), distribution)
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    installed = subprocess.run(
        [*pip, "install", "--no-index", "--no-cache-dir", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    return venv


def test_a_client_only_install_signs_and_verifies(
    client_only: Path, server_process: ServerProcess
) -> None:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60
        )

    probe = "import importlib.util as u; print([m for m in SERVER if u.find_spec(m)])"
    server_side = ("structlog", "orjson", "msgspec", "grpc_status", "grpc_health")
    absent = run(client_only / "bin" / "python", "-c", f"SERVER = {server_side!r}; {probe}")
    assert absent.stdout.strip() == "[]", absent.stderr  # the server extra really is missing

    sdksign = client_only / "bin" / "sdksign"
    version = metadata.version("sdksign")
    assert run(sdksign, "--version").stdout == f"sdksign {version}\n"
    shown = run(sdksign, "--help")
    assert shown.returncode == 0 and "sdksign sign" in shown.stdout and not shown.stderr
    target = ("--target", server_process.target)
    signed = run(sdksign, "sign", *target, "--meeting-number", "94843468909", "--role", "host")
    assert signed.returncode == 0, signed.stderr
    verified = run(sdksign, "verify", *target, signed.stdout.strip())
    assert verified.returncode == 0 and verified.stdout.startswith("valid"), verified.stderr
    refused = run(sdksign, "sign", *target, "--meeting-number", "12-34", "--role", "host")
    assert refused.returncode == 3 and "--meeting-number: " in refused.stderr, refused.stderr

    python = client_only / "bin" / "python"
    for serve in (run(sdksign, "serve"), run(python, "-m", "sdksign.server", "serve")):
        assert serve.returncode == 2
        (line,) = serve.stderr.splitlines()
        assert line.startswith("sdksign serve: needs the server extra (no module ")
        assert line.endswith(": pip install 'sdksign[server]'")
    as_module = run(python, "-m", "sdksign.server", "verify", *target, signed.stdout.strip())
    assert as_module.returncode == 0 and as_module.stdout.startswith("valid"), as_module.stderr


VIOLATIONS = """
import sys
from sdksign.client import Client, Role, SdkSignError
with Client(sys.argv[1], retries=0) as client:
    try:
        client.sign_meeting("12-34", Role.HOST)
    except SdkSignError as error:
        print(error.code.name, [(v.field, v.description[:30]) for v in error.violations])
"""


def test_a_client_only_install_reads_the_refused_fields(
    client_only: Path, server_process: ServerProcess
) -> None:
    """SdkSignError.violations, as the README promises, without the server extra."""
    done = subprocess.run(
        [client_only / "bin" / "python", "-c", VIOLATIONS, server_process.target],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    code, _, violations = done.stdout.strip().partition(" ")
    assert code == "INVALID_ARGUMENT"
    assert "('meeting.meeting_number', " in violations, violations
