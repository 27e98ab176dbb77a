"""What /metrics shows: this process's metrics, or with several workers their files added
up (registry), with what only the serving process knows (ServerState), encoded as the
scraper asks (exposition).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from .metrics import WATCHDOG_KILLS, WORKER_RESTARTS, ZEROS_LEFT_OUT, setup


def package_version() -> str:
    """sdksign's version ("unknown" when run from a checkout that is not installed)."""
    try:
        return version("sdksign")
    except PackageNotFoundError:
        return "unknown"


def build_labels() -> tuple[str, str, str]:
    """sdksign's version, Python's and grpcio's."""
    return package_version(), platform.python_version(), grpc.__version__


class ServerState:
    """The metrics of the process that serves the admin endpoint (the workers' parent, or the
    one process): read when scraped, never written to a worker's file, so counted once.

    `not_ready` says why /healthz/ready is not 200 (None: it is).
    """

    def __init__(self, not_ready: Callable[[], str | None]) -> None:
        self.not_ready = not_ready
        self.worker_restarts = 0
        self.watchdog_kills = 0
        self._build = build_labels()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sdksign_ready",
            "1 when /healthz/ready answers 200, else 0.",
            value=0.0 if self.not_ready() else 1.0,
        )
        yield CounterMetricFamily(
            WORKER_RESTARTS,
            "Worker processes that died and were started again.",
            value=self.worker_restarts,
        )
        yield CounterMetricFamily(
            WATCHDOG_KILLS,
            "Worker processes killed by their parent because their event loop was silent.",
            value=self.watchdog_kills,
        )
        build = GaugeMetricFamily(
            "sdksign_build_info",
            "The versions running: sdksign, Python, grpcio (always 1).",
            labels=("version", "python", "grpcio"),
        )
        build.add_metric(self._build, 1.0)
        yield build


class _ZerosLeftOut:
    """The families of `source`, less the zeros of the secrets no longer served."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        for family in self._source.collect():
            if family.name in ZEROS_LEFT_OUT:
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


def registry(state: ServerState, multiprocess: Path | None = None) -> CollectorRegistry:
    """What /metrics shows: this process's metrics (made now if they are not yet: setup), or
    with several workers their files in `multiprocess`; and `state`'s."""
    shown = CollectorRegistry(auto_describe=False)
    if multiprocess is None:
        setup()
    source: Any = REGISTRY if multiprocess is None else _Files(multiprocess)
    shown.register(_ZerosLeftOut(source))
    shown.register(state)
    return shown


class _Files:
    """The metrics the workers wrote to `path`, added up (prometheus-client's collector)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        # A worker's file is empty for an instant as it is made, before prometheus-client
        # sizes it: it holds nothing yet, and read it would fail the whole scrape.
        files = [str(file) for file in self._path.glob("*.db") if _written(file)]
        metrics: Iterable[Metric] = MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        return metrics


def _written(file: Path) -> bool:
    """Whether `file` holds anything (a live gauge's, removed meanwhile, does not)."""
    try:
        return file.stat().st_size > 0
    except FileNotFoundError:
        return False


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """What /metrics answers to a request that accepts `accept`: the body and its type
    (Prometheus' text format, or OpenMetrics when asked for)."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
