"""N replicas of `sdksign serve` on consecutive loopback ports behind one Envoy: what
`make fleet` serves, what tests/gateway/test_fleet.py and `make soak` kill replicas of.

    with Fleet(replicas=2) as fleet:
        ...  # fleet.gateway_port, fleet.kill_replica(0), fleet.host_health(), fleet.stats()

The Envoy configuration is gateway/envoy.yaml itself, with its one endpoint repeated for each
replica, its ports replaced and an admin listener added on loopback: the gateway's settings
have one home. Every replica gets the same apps (the same ZOOM_MEETING_SDK_KEY/SECRET and
ZOOM_VIDEO_SDK_KEY/SECRET), so a token minted by one verifies on any other.

Each replica runs in its own session (process group), so kill_replica() kills its parent and
its workers together, as a crashed machine would. Replicas and Envoy get SIGTERM when the
process that started them dies (Linux), so nothing outlives a killed test run.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.envoy import GATEWAY_CONFIG, render_config, start_envoy, stop_envoy, wait_ready
from harness.process import free_port, free_port_block
from harness.server import START_TIMEOUT, STOP_TIMEOUT, ServerProcess, start_server

CLUSTER = "sdksign"


def shared_apps_env() -> dict[str, str]:
    """Zoom's sample variables with fresh random secrets, the same for every replica."""
    suffix = secrets.token_hex(4)
    return {
        "ZOOM_MEETING_SDK_KEY": f"dev_meeting_fleet_{suffix}",
        "ZOOM_MEETING_SDK_SECRET": secrets.token_urlsafe(32),
        "ZOOM_VIDEO_SDK_KEY": f"dev_video_fleet_{suffix}",
        "ZOOM_VIDEO_SDK_SECRET": secrets.token_urlsafe(32),
    }


@dataclass
class Replica:
    """One `sdksign serve` process group on its own port."""

    index: int
    port: int
    log_path: Path
    server: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.server is None else self.server.process

    @property
    def pids(self) -> list[int]:
        """The parent, then each worker (from the server's `listening` lines)."""
        return [] if self.server is None else self.server.pids

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.process.poll() is None


class Fleet:
    """N replicas behind one Envoy; a context manager that stops every process it started.

    replicas, workers: how many `sdksign serve --workers W` processes.
    gateway_port, base_port, admin_port: Envoy's listener, the first replica's port (the
      others follow it), Envoy's admin; None picks free ones.
    config: a TOML file for the replicas (`--config`); env: variables added to theirs
      (default: shared_apps_env(), the same apps for all).
    workdir: where the config and logs go (default: a temporary directory, removed at stop).
    envoy_config: the gateway configuration to render (default: gateway/envoy.yaml).
    """

    def __init__(
        self,
        replicas: int = 2,
        workers: int = 1,
        *,
        gateway_port: int | None = None,
        base_port: int | None = None,
        admin_port: int | None = None,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        envoy_config: Path = GATEWAY_CONFIG,
    ) -> None:
        if replicas < 1 or workers < 1:
            raise ValueError("replicas and workers: at least 1")
        self.workers = workers
        self.config = config
        self.env = dict(env) if env is not None else shared_apps_env()
        self.envoy_config = envoy_config
        self._gateway_port, self._base_port, self._admin_port = gateway_port, base_port, admin_port
        self._count = replicas
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = workdir
        self.replicas: list[Replica] = []
        self.envoy: subprocess.Popen[bytes] | None = None
        self.gateway_port = self.admin_port = 0

    # -- lifecycle --

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the replicas, then Envoy; return once Envoy sees every replica healthy."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sdksign-fleet-")
            self.workdir = Path(self._tmp.name)
        base = self._base_port or free_port_block(self._count)
        self.replicas = [
            Replica(i, base + i, self.workdir / f"replica-{i}.log") for i in range(self._count)
        ]
        for replica in self.replicas:  # all at once, then each waited for
            self._spawn_replica(replica)
        for replica in self.replicas:
            assert replica.server is not None
            replica.server.wait_listening(self.workers, START_TIMEOUT)
        self.start_gateway()

    def start_gateway(self) -> None:
        """(Re)start Envoy alone: a fresh gateway, with no traffic and no health history."""
        self.stop_gateway()
        assert self.workdir is not None
        self.gateway_port = self._gateway_port or free_port()
        self.admin_port = self._admin_port or free_port()
        rendered = self.workdir / "envoy.yaml"
        rendered.write_text(
            render_config(
                self.envoy_config.read_text(),
                self.gateway_port,
                [r.port for r in self.replicas],
                self.admin_port,
            )
        )
        log_path = self.workdir / "envoy.log"
        self.envoy = start_envoy(rendered, log_path)
        wait_ready(self.envoy, log_path, lambda: self.admin("/ready").strip() == "LIVE")
        self.wait_healthy()

    def stop_gateway(self) -> None:
        if self.envoy is not None:
            stop_envoy(self.envoy)
            self.envoy = None

    def stop(self) -> None:
        """Stop the replicas as Ctrl-C does (SIGINT: calls in flight finish, no drain period),
        and Envoy; SIGKILL whatever is left after STOP_TIMEOUT."""
        for replica in self.replicas:
            if replica.running:
                assert replica.server is not None
                replica.server.process.send_signal(signal.SIGINT)
        self.stop_gateway()
        for replica in self.replicas:
            if replica.server is not None:
                replica.server.stop(signal.SIGINT, STOP_TIMEOUT)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self.workdir = None, None

    # -- replicas --

    def _spawn_replica(self, replica: Replica) -> None:
        """`sdksign serve` on the replica's port, not waited for."""
        args = ["--workers", str(self.workers)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        assert self.workdir is not None
        replica.server = start_server(
            self.workdir,
            args,
            self.env,
            workers=0,
            listen=replica.address,
            log_path=replica.log_path,
        )

    def kill_replica(self, index: int) -> None:
        """SIGKILL replica `index`'s parent and workers at once (its whole process group)."""
        server = self.replicas[index].server
        assert server is not None
        server.kill()

    def drain_replica(self, index: int) -> None:
        """SIGTERM replica `index`: it reports NOT_SERVING, drains, then stops (not waited for)."""
        server = self.replicas[index].server
        assert server is not None
        server.process.send_signal(signal.SIGTERM)

    def start_replica(self, index: int) -> None:
        """Start replica `index` again on its port (after kill_replica or a drain)."""
        replica = self.replicas[index]
        if replica.server is not None:
            replica.server.stop(signal.SIGINT, STOP_TIMEOUT)
        self._spawn_replica(replica)
        assert replica.server is not None
        replica.server.wait_listening(self.workers, START_TIMEOUT)

    # -- Envoy's view, from its admin interface --

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def host_health(self) -> dict[int, list[str]]:
        """Replica port → the reasons Envoy has for not sending to it (empty: healthy)."""
        status = json.loads(self.admin("/clusters?format=json"))
        cluster = next(c for c in status["cluster_statuses"] if c["name"] == CLUSTER)
        health: dict[int, list[str]] = {}
        for host in cluster.get("host_statuses", []):
            port = int(host["address"]["socket_address"]["port_value"])
            flags = host.get("health_status", {})
            reasons = [name for name, value in flags.items() if value is True]
            if flags.get("eds_health_status", "HEALTHY") != "HEALTHY":
                reasons.append(str(flags["eds_health_status"]))
            health[port] = reasons
        return health

    def wait_healthy(self, timeout: float = 10.0) -> float:
        """Until Envoy sees every running replica healthy; return the seconds it took."""
        return self.wait_for(
            lambda health: all(not health[r.port] for r in self.replicas if r.running),
            timeout,
            "every running replica healthy",
        )

    def wait_unhealthy(self, index: int, timeout: float = 10.0) -> float:
        """Until Envoy no longer sends to replica `index`; return the seconds it took."""
        port = self.replicas[index].port
        return self.wait_for(lambda health: bool(health[port]), timeout, f"{port} unhealthy")

    def wait_for(
        self, condition: Callable[[dict[int, list[str]]], bool], timeout: float, what: str
    ) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if condition(self.host_health()):
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"envoy: not {what} after {timeout} s: {self.host_health()}")

    def stats(self) -> dict[str, int]:
        """Envoy's counters and gauges of the replicas' cluster, without the cluster prefix."""
        prefix = f"cluster.{CLUSTER}."
        answer = json.loads(self.admin(f"/stats?format=json&filter=^cluster\\.{CLUSTER}\\."))
        return {
            s["name"].removeprefix(prefix): int(s["value"]) for s in answer["stats"] if "value" in s
        }
