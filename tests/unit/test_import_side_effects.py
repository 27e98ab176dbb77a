"""Importing the server's modules only defines things: no environment variable changed, no
library patched, no thread started, no metric made, fd 2 left alone; whatever the metrics
folder variable says. A fresh Python each time: this process has imported them already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHILD = """
import atexit, importlib, json, os, pkgutil, sys, threading
import logging, multiprocessing.util  # the standard library's own atexit hooks, at import
import prometheus_client
import prometheus_client.metrics as prometheus_metrics
import prometheus_client.values as prometheus_values


def state():
    return {
        "environ": dict(os.environ),
        "threads": threading.active_count(),
        "ValueClass": repr(prometheus_values.ValueClass),
        "MmapedDict": repr(prometheus_values.MmapedDict),
        "created series": prometheus_metrics._use_created,
        "metrics": sorted(prometheus_client.REGISTRY._names_to_collectors),
        "atexit": atexit._ncallbacks(),
        "sys.stderr": repr(sys.stderr),
        "fd 2": os.fstat(2).st_ino,
    }


before = state()
import sdksign.server as package
names = [
    module.name
    for module in pkgutil.walk_packages(package.__path__, "sdksign.server.")
    if module.name != "sdksign.server.__main__"  # runs the command: not to be imported
]
for name in names:
    importlib.import_module(name)
after = state()
print(json.dumps({
    "modules": len(names),
    "changed": {key: [before[key], after[key]] for key in before if before[key] != after[key]},
}))
"""


@pytest.mark.parametrize("setting", ["a folder", "unset", "a file"])
def test_importing_every_module_changes_nothing(tmp_path: Path, setting: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if setting == "a folder":
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    elif setting == "a file":
        (tmp_path / "file").write_text("")
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "file")
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["modules"] > 30
    assert found["changed"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == (["file"] if setting == "a file" else [])
