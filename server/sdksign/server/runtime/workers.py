"""Several worker processes on one port.

Each worker is a spawned process running the ordinary single-process `serve()`;
they all listen on the same port with SO_REUSEPORT, and the kernel spreads new
connections among them. The parent only supervises: it holds the port (bound,
not listening) so that port 0 means one port for all, forwards SIGTERM, SIGINT
and SIGHUP to every worker, and replaces a worker that dies; the replacement reads the
configuration again, as a SIGHUP would, before it serves. A worker whose parent dies
stops by itself, draining as on SIGTERM.

The parent also watches them: each worker's event loop beats in shared memory
(observe.admin's heartbeat); one silent for SILENT_AFTER seconds is out of readiness, and
for KILL_AFTER seconds is killed (SIGKILL: a stuck or stopped process obeys nothing else)
and started again. A dead worker is started again after a growing delay; the parent gives
up only on a crash loop (runtime.restarts).

The parent also serves the admin listener (observe.admin) for all of them: the workers write
their metrics to files in a folder of the parent's (observe.metricdir.multiprocess_dir), and
each sets its state (starting, serving, draining) in a byte of shared memory, which
/healthz/ready reads.
"""

from __future__ import annotations

import contextlib
import errno
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import structlog

from ..config import Config
from ..observe import metricdir, metrics
from ..observe.admin import (
    SERVING,
    STARTING,
    AdminError,
    AdminServer,
    States,
    WorkerReadiness,
    WorkerStates,
)
from ..observe.exposition import ServerState, registry
from ..observe.stderr import original_stderr
from .refresh import log_warnings, read_again, vault_read_again
from .restarts import CRASH_LIMIT, CRASH_WINDOW, KILL_AFTER, Restarts
from .serve import ListenError, reloaded

log = structlog.get_logger("sdksign")

# How long the parent waits past the grace period before it kills a worker that has not stopped.
STOP_MARGIN = 5.0
# How often the parent looks at its workers' deaths, heartbeats and restarts due, in seconds.
WATCH_INTERVAL = 0.25


# Where the kernel tells a process its CPU limit (cgroup v2's cpu.max; v1's cfs files under cpu/).
CGROUP = Path("/sys/fs/cgroup")


def default_workers(cgroup: Path = CGROUP) -> int:
    """One worker per core this process may run on, and no more than its CPU limit allows
    (a container's: `docker run --cpus 2`, a Kubernetes limit), rounded up."""
    cores = len(os.sched_getaffinity(0))
    limit = cpu_limit(cgroup)
    return cores if limit is None else max(1, min(cores, math.ceil(limit)))


def cpu_limit(cgroup: Path = CGROUP) -> float | None:
    """The CPUs this process's cgroup may use (quota / period); None when unlimited or not
    known. cgroup v2's cpu.max ("max 100000" or "200000 100000") when it exists, else v1's
    cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except FileNotFoundError:
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text()
        except OSError:
            return None
    except (OSError, ValueError):
        return None
    try:
        cpus = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max": no limit
        return None
    return cpus if cpus > 0 else None


def reserve_port(listen: str) -> tuple[socket.socket, str]:
    """Hold HOST:PORT for the workers; return the socket and the address with the real port.

    A port where anything already listens is refused, even a server that also uses
    SO_REUSEPORT: two independent servers never share a port by accident.
    """
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (ValueError, socket.gaierror, IndexError) as exc:
        raise ListenError(f"cannot listen on {listen!r}: not HOST:PORT ({exc})") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            address = probe.getsockname()
        held = socket.socket(family, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(address)
    except OSError as exc:
        reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenError(f"cannot listen on {listen!r}: {reason}") from None
    bound_host = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
    return held, f"{bound_host}:{address[1]}"


def serve_workers(
    config: Config, listen: str, workers: int, admin_listen: str, give_way: bool = False
) -> int:
    """Run `workers` worker processes until SIGTERM or SIGINT, and the admin listener on
    `admin_listen` for all of them until they have stopped (`give_way`: as AdminServer);
    return the exit status."""
    with contextlib.ExitStack() as stack:  # closed in reverse: the admin listener first
        held, address = reserve_port(listen)
        stack.callback(held.close)
        folder = _metrics_folder(stack)  # before any worker starts: they write there
        context = multiprocessing.get_context("spawn")
        states = WorkerStates(
            context.Array("b", workers, lock=False), context.Array("d", workers, lock=False)
        )
        state = ServerState(states.not_ready)
        supervisor = _Supervisor(config, address, context, _Watch(states, state, folder))
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, supervisor.forward)
        admin = stack.enter_context(
            AdminServer(
                admin_listen, registry(state, folder), states.not_ready, config.tls, give_way
            )
        )
        admin.start()
        log.info(
            "starting workers",
            workers=workers,
            address=address,
            admin_address=admin.address,
            # The default admin address was another server's: this one's is on a free port.
            **({"admin_default_in_use": admin.taken} if admin.taken else {}),
            metrics_folder=str(folder),
        )
        supervisor.start_all(workers, admin.address)
        try:
            status = supervisor.replace_until_stopped()
        finally:
            supervisor.stop_all()
    log.info("stopped", workers=workers)
    return status


def _metrics_folder(stack: contextlib.ExitStack) -> Path:
    """The workers' metrics folder (metricdir.multiprocess_dir), deleted with `stack` when it
    is this process's own."""
    try:
        folder, own = metricdir.multiprocess_dir()
    except metricdir.FolderError as exc:
        raise AdminError(str(exc)) from None
    if own:
        stack.callback(metricdir.remove_dir, folder)
    return folder


class _Watch:
    """What the admin listener shows of the workers: their states, the parent's own metrics
    (restarts), and the folder of their metrics' files."""

    def __init__(self, states: WorkerStates, state: ServerState, folder: Path) -> None:
        self.states = states
        self.state = state
        self.folder = folder

    def gone(self, process: BaseProcess) -> None:
        """`process` has stopped: its live gauges go (its counts stay)."""
        if process.pid is not None:
            metricdir.worker_gone(self.folder, process.pid)


class _Supervisor:
    """The parent's side of the workers: it starts them, forwards signals to them, replaces
    one that dies, and at the end waits for all of them to stop."""

    def __init__(self, config: Config, address: str, context: SpawnContext, watch: _Watch) -> None:
        self._config = config
        self._address = address
        self._context = context
        self._watch = watch
        self._admin_address = ""
        self._processes: dict[int, tuple[BaseProcess, float]] = {}  # index: (process, started)
        self._stopping = False
        self._starting = False
        self._reload_asked = False  # a SIGHUP came while the workers were being started
        self._reads = 0  # the SIGHUPs forwarded, each read again here too (_read_again)
        self._judged = 0  # the last of them whose read was taken
        self._judging = threading.Lock()
        self._launching = False  # a worker is being started and recorded (start)
        self._deferred: list[int] = []  # the signals handled meanwhile, for after it
        self._restarts = Restarts()
        self._killed: set[int] = set()  # the pids killed as silent

    def start_all(self, workers: int, admin_address: str) -> None:
        """Start workers 0 to `workers` - 1; a SIGHUP meanwhile is forwarded to all of them
        once they all exist. `admin_address`: for their "listening" lines."""
        self._admin_address = admin_address
        self._starting = True
        for index in range(workers):
            if not self.start(index):  # SIGTERM or SIGINT already: no more workers
                break
        self._starting = False
        if self._reload_asked:
            self.forward(signal.SIGHUP, None)

    def start(self, index: int) -> bool:
        """Start worker `index` (again, when it has died); False, and no worker, once SIGTERM
        or SIGINT has come.

        A signal handled while the worker is being started and recorded waits (forward) until
        it is recorded, then goes to it too: sent at once, it would miss the new worker,
        which would serve on until killed past the grace period.
        """
        states = self._watch.states.states
        process = self._context.Process(
            target=_worker_main,
            args=(self._config, self._address, index, index in self._processes),
            kwargs={
                "states": states,
                "heartbeats": self._watch.states.heartbeats,
                "admin_address": self._admin_address,
            },
            name=f"sdksign-worker-{index}",
        )
        self._launching = True
        try:
            if self._stopping:
                return False
            states[index] = STARTING
            self._watch.states.waiting.pop(index, None)
            self._launch(process)
            self._processes[index] = (process, time.monotonic())
        finally:
            self._launching = False
            while self._deferred:
                self.forward(self._deferred.pop(0), None)
        return True

    def _launch(self, process: BaseProcess) -> None:
        # The worker is born with SIGHUP blocked, so that a reload asked for while it starts
        # waits for its handler (serve() unblocks it) instead of killing it.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            with original_stderr():  # the worker writes to the real stderr, not this one's pipe
                process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler: `signum` to every running worker; SIGTERM and SIGINT also stop
        the replacing. A SIGHUP while start_all runs waits for its end; any signal while a
        worker is being started, for it to be recorded (start)."""
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True
            self._watch.states.stopping = True  # /healthz/ready: 503 from now on
        elif self._starting:
            self._reload_asked = True
            return
        if self._launching:  # sent once the worker being started is recorded (start)
            self._deferred.append(signum)
            return
        for process, _ in self._processes.values():  # first: the log line may not get out
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)
        log.info(
            "forwarded signal", signal=signal.Signals(signum).name, workers=len(self._processes)
        )
        if signum == signal.SIGHUP:
            self._reads += 1
            threading.Thread(
                target=self._read_again, args=(self._reads,), name="sdksign-read", daemon=True
            ).start()

    def replace_until_stopped(self) -> int:
        """Watch the workers until SIGTERM or SIGINT: start again each that dies (after its
        delay, runtime.restarts), kill each whose event loop is silent (_watchdog). Return the
        exit status: 1 when the workers are in a crash loop, which stops them all."""
        while not self._stopping:
            alive = [p.sentinel for p, _ in self._processes.values() if p.exitcode is None]
            if alive:
                wait(alive, timeout=WATCH_INTERVAL)
            else:  # all dead, waiting for their delay
                time.sleep(WATCH_INTERVAL)
            if self._stopping:
                break
            now = time.monotonic()
            if not self._reap(now):
                self.forward(signal.SIGTERM, None)
                return 1
            self._watchdog(now)
            for index, due in list(self._watch.states.waiting.items()):
                if due <= now and self.start(index):
                    self._watch.state.worker_restarts += 1
        return 0

    def _reap(self, now: float) -> bool:
        """Each worker found dead: logged, and its start again set (WorkerStates.waiting);
        False when the workers are in a crash loop."""
        waiting = self._watch.states.waiting
        for index, (process, started) in list(self._processes.items()):
            if process.exitcode is None or index in waiting:
                continue
            self._watch.gone(process)
            serving = self._others_serving(index)
            delay = self._restarts.died(index, now, serving)
            log.error(
                "worker exited",
                worker=index,
                exit_code=process.exitcode,
                lived_seconds=round(now - started, 1),
                **({} if delay is None else {"restart_in_seconds": delay}),
            )
            if delay is None:
                log.error(
                    "workers keep dying: stopping",
                    deaths=self._restarts.recent(now),
                    window_seconds=CRASH_WINDOW,
                    limit=CRASH_LIMIT,
                )
                return False
            if not serving:  # the port has no server: no one waits for a delay
                for other in waiting:
                    waiting[other] = min(waiting[other], now)
            waiting[index] = now + delay
        return True

    def _others_serving(self, index: int) -> bool:
        states = self._watch.states.states
        return any(
            other != index and process.exitcode is None and states[other] == SERVING
            for other, (process, _) in self._processes.items()
        )

    def _watchdog(self, now: float) -> None:
        """Kill every serving or draining worker whose event loop has been silent for
        KILL_AFTER seconds (it is already out of readiness): it is then replaced as any
        dead worker is."""
        for index, (process, _) in self._processes.items():
            if process.exitcode is not None or process.pid in self._killed:
                continue
            silent = self._watch.states.silent_for(index, now)
            if silent is None or silent < KILL_AFTER:
                continue
            if process.pid is not None:
                self._killed.add(process.pid)
            self._watch.state.watchdog_kills += 1
            process.kill()  # first: the log line may not get out
            log.error(
                "worker silent: killed",
                worker=index,
                pid=process.pid,
                silent_seconds=round(silent, 1),
            )

    def _read_again(self, number: int) -> None:
        """After SIGHUP `number`, what the workers now serve, judged as they judge it (quietly:
        they say it): the configuration a replacement falls back on when its own read fails,
        so that it serves what the others do, not the start's (a secret rotated out since).
        In a thread of its own, as the workers read: Vault may be slow, and neither replacing
        workers nor stopping waits for it. A read is never taken over a later one's."""
        new = reloaded(self._config, read_again(self._config), self._address, quiet=True)
        with self._judging:
            if new is not None and number > self._judged:
                self._judged = number
                self._config = new

    def stop_all(self) -> None:
        """Wait for the workers to drain and stop (STOP_MARGIN past the grace period), then
        kill those still running; meanwhile the watchdog goes on, so that a worker stuck in
        its drain is killed as soon as it is found silent."""
        config = self._config
        deadline = time.monotonic() + config.drain + config.shutdown_grace + STOP_MARGIN
        processes = [process for process, _ in self._processes.values()]
        while (alive := [p for p in processes if p.exitcode is None]) and (
            left := deadline - time.monotonic()
        ) > 0:
            wait([p.sentinel for p in alive], timeout=min(WATCH_INTERVAL, left))
            self._watchdog(time.monotonic())
        for index, (process, _) in self._processes.items():
            if process.exitcode is None:
                log.error("worker did not stop in time: killing it", worker=index)
                process.kill()
                process.join()
            self._watch.gone(process)


def _worker_main(
    config: Config,
    address: str,
    index: int,
    replacement: bool,
    *,
    states: States,
    heartbeats: States,
    admin_address: str,
) -> None:
    """A worker process: its metrics, in files in the parent's folder; logging that names
    the worker; then the ordinary server, which sets its state in its byte of `states` (the
    parent's WorkerStates).

    A replacement reads its configuration again first (replacement_config): the
    other workers may have reloaded it, or read rotated Vault secrets, since the start.
    """
    from ..observe.log import configure_logging
    from .serve import run

    metrics.setup()  # before anything is counted: PROMETHEUS_MULTIPROC_DIR is the parent's folder
    configure_logging(config.log_level, worker=index, native_stderr=True)
    _stop_with_parent(os.getppid())
    if replacement:
        config = replacement_config(config, address)
    admin = WorkerReadiness(states, heartbeats, index, admin_address)
    try:
        run(config, address, reuse_port=True, admin=admin)
    except ListenError as exc:
        log.error("cannot listen", error=str(exc))
        raise SystemExit(2) from None


# How a replacement worker's refusal of the configuration read again ends.
_STARTED_WITH = (
    "this replacement worker serves the last configuration the workers took (at the start "
    "or on a SIGHUP), Vault read again"
)


def replacement_config(given: Config, address: str) -> Config:
    """What a replacement worker serves: the configuration read again as a SIGHUP reload
    reads it (the file, then Vault), with the same rules (START_ONLY settings and
    --insecure kept from `given`, TLS unchanged, not exposed on `address`).

    When that read fails or is refused (a line says why), `given`, the last configuration
    the workers took (_Supervisor._read_again), with its Vault secrets read again; counted as
    a failed reload, as a SIGHUP's
    would be (SdksignConfigReloadFailed).
    """
    new = reloaded(given, read_again(given), address, then=_STARTED_WITH)
    if new is None:
        metrics.reload_done(None)
        return vault_read_again(given)
    log.info("configuration read again before serving")
    log_warnings(new)
    return new


# How often a worker checks that its parent is still there.
PARENT_CHECK_INTERVAL = 0.25


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this worker (a drain, as any SIGTERM) as soon as its parent is gone.

    A parent killed with SIGKILL forwards nothing; without this its workers would
    go on serving unsupervised, holding the port. Once the parent has died the
    worker's parent id changes (to init or a subreaper), which a thread polls for.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_INTERVAL)
        os.kill(os.getpid(), signal.SIGTERM)  # first: the log line may not get out
        log.error("parent gone: stopping", parent=parent)

    threading.Thread(target=watch, name="sdksign-parent-watch", daemon=True).start()
