"""Debian's Prometheus (make test installs the package) on a free loopback port, configured
by deploy/prometheus/prometheus.yml (its alerting rules loaded) but scraping given targets
every second; and its HTTP API's PromQL queries."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.deploy.promql import SCRAPE_CONFIG

PROMETHEUS = Path("/usr/bin/prometheus")


@dataclass
class Prometheus:
    """A running Prometheus: its HTTP API at `url`."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/`path`: its `data`, once Prometheus says success."""
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: each series' labels (`metric`) and `value` (a float)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in data["result"]]

    def wait_for(self, what: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"timed out; Prometheus' log:\n{self.log}"
            time.sleep(0.2)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_config(targets: Sequence[str]) -> str:
    """deploy/prometheus/prometheus.yml with its job `sdksign` scraping `targets` every
    second, and its rules (alerts.yaml, named by their full path) evaluated every second."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(SCRAPE_CONFIG.parent / name) for name in config["rule_files"]]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "sdksign"
    job["static_configs"] = [{"targets": list(targets)}]
    return yaml.safe_dump(config)


@contextmanager
def running_prometheus(folder: Path, targets: Sequence[str]) -> Iterator[Prometheus]:
    """Prometheus in `folder` (its configuration, data and log) on a free loopback port,
    scraping `targets`; stopped at the end."""
    assert PROMETHEUS.exists(), "prometheus not found: make test installs Debian's"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(scrape_config(targets))
    address = f"127.0.0.1:{free_port()}"
    command = [
        str(PROMETHEUS),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={address}",
        "--log.level=warn",
    ]
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    prometheus = Prometheus(process, f"http://{address}", log_path)
    try:
        prometheus.wait_for(lambda: _ready(prometheus.url))
        yield prometheus
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
