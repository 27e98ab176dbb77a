"""One distribution, unique import names, and a client that needs only grpcio and protobuf."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.conftest import ROOT


def test_wheel_holds_only_the_sdksign_package(tmp_path: Path) -> None:
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
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sdksign-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(
            archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"sdksign"}  # no bare `server` or `client` in site-packages
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert packages == {"sdksign/client", "sdksign/server", "sdksign/v1"}
    base = sorted(
        r.split(">")[0].split("<")[0]
        for r in metadata.get_all("Requires-Dist")
        if "extra ==" not in r
    )
    assert base == ["grpcio", "protobuf"]


def test_the_client_imports_nothing_from_the_server_side() -> None:
    probe = (
        "import sys; import sdksign.client, sdksign.v1.signature_service_pb2_grpc; "
        # (grpcio itself imports the grpc_health and grpc_reflection names when they are installed)
        "server_side = ('structlog', 'grpc_status', 'google.rpc', 'sdksign.server'); "
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
