"""Prometheus metrics: every name and label the service exports is defined here.

A label's value comes only from the configuration (app and caller names, secret
fingerprints) or from the API's and the code's enums (gRPC methods and codes, roles,
problem codes, refusal rules): never from what a request sent, so that no meeting
number, session name, token or secret is ever one, and no caller can grow the number
of series.

runtime.rpc counts each call as it starts (call_started) and once more as it ends
(record_call), from its status code and, for unary calls, the log fields its servicer
bound: the same facts as its audit line. Streaming calls (health's Watch, reflection)
are counted by code and duration only, under their own grpc_type (method_served).

With several workers each worker process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode: the variable is set by
the parent before it starts them, multiprocess_dir) and the parent, which serves the
admin endpoint, adds them up (registry). What only the serving parent knows (ready,
worker restarts, the build) comes from ServerState, read as the endpoint is scraped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from .log import call_fields

if TYPE_CHECKING:
    from ..config.model import Config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = structlog.get_logger("sdksign")


def _unusable_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when it is set to what is not a folder: taken out of the
    environment, since prometheus-client (imported next) would fail on its first value with
    a traceback; multiprocess_dir makes that folder, or says in one line why it cannot."""
    given = os.environ.get(MULTIPROC_ENV)
    if given is None or os.path.isdir(given):
        return None
    del os.environ[MULTIPROC_ENV]
    return given


_UNUSABLE_DIR = _unusable_dir()

# prometheus-client reads PROMETHEUS_MULTIPROC_DIR as it is imported: only after the check.
# (Every other module takes what it needs of it from here.)
from prometheus_client import (  # noqa: E402
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import values as prometheus_values  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402

from .metricfiles import ReservedFile  # noqa: E402

# No `_created` series beside every counter and histogram: nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]
# Whether this process writes its values to files (a worker), as prometheus-client decided
# when it was imported.
_MULTIPROCESS: bool = getattr(prometheus_values.ValueClass, "_multiprocess", False)
if _MULTIPROCESS:
    # The file-backed value asks for the process id before every write, to notice a fork:
    # a system call each time, seven on a Sign (bench/compare.py: about 30 µs of CPU here).
    # Workers are spawned, never forked, so the id read once is the id for good.
    _PID = os.getpid()
    prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: _PID)  # type: ignore[no-untyped-call]
    # Its files with their disk space taken before they are written: on a full filesystem a
    # worker goes on uncounted, where a write to a sparse file's page would kill it (SIGBUS).
    prometheus_values.MmapedDict = ReservedFile  # type: ignore[attr-defined]

# --- gRPC's conventional server metrics (the names of go-grpc-prometheus and its dashboards) --

_GRPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")
STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    (*_GRPC_LABELS, "grpc_code"),
)
# Sign and Verify take well under a millisecond; a call waiting on Vault or a store, longer.
HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its answer, in seconds.",
    _GRPC_LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# --- what the calls did ------------------------------------------------------------------------

TOKENS_ISSUED = Counter(
    "sdksign_tokens_issued_total",
    "Tokens minted by Sign, by app, kind (meeting or video), role and caller.",
    ("app", "kind", "role", "caller"),
)
TOKEN_LIFETIME = Histogram(
    "sdksign_token_lifetime_seconds",
    "Lifetime (exp - iat) of the tokens minted, in seconds.",
    ("app",),
    buckets=(1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800),
)
REFUSALS = Counter(
    "sdksign_refusals_total",
    "Calls refused by the caller policy or the rate limit, by caller and the rule that refused.",
    ("caller", "rule"),
)
VERIFY_RESULTS = Counter(
    "sdksign_verify_results_total",
    "Tokens checked by Verify, by the app whose key they carry and whether they are valid.",
    ("app", "valid"),
)
VERIFY_PROBLEMS = Counter(
    "sdksign_verify_problems_total",
    "Problems Verify found in tokens, by problem code.",
    ("code",),
)

# --- configuration and secrets -------------------------------------------------------------

CONFIG_RELOADS = Counter(
    "sdksign_config_reloads_total",
    "Configuration reloads (SIGHUP), by result: success or failure; each worker counts its own.",
    ("result",),
)
CONFIG_LAST_RELOAD = Gauge(
    "sdksign_config_last_reload_success_timestamp_seconds",
    "When the configuration served was last loaded (at start, or by a reload), epoch seconds.",
    multiprocess_mode="max",
)
# Both set to 0, then let go of, when a secret stops being served: with several workers a
# value stays in the worker's file, and the exposition leaves out their zeros (registry).
SECRET_INFO = Gauge(
    "sdksign_app_secret_info",
    "The secrets each app serves, by fingerprint; active: the one that signs.",
    ("app", "fingerprint", "active"),
    multiprocess_mode="livemax",
)
SECRET_CREATED = Gauge(
    "sdksign_app_secret_created_timestamp_seconds",
    "When each secret served was made, epoch seconds: a Vault version's created_time, a "
    "secret_file's modification time (none for secrets from the environment).",
    ("app", "fingerprint"),
    multiprocess_mode="livemax",
)
_ZEROS_LEFT_OUT = frozenset(
    {"sdksign_app_secret_info", "sdksign_app_secret_created_timestamp_seconds"}
)

# --- the backends' errors (bounded kinds: ERROR_KINDS) --------------------------------------

ERROR_KINDS = ("timeout", "connection", "auth", "other")
STORE_ERRORS = Counter(
    "sdksign_rate_limit_store_errors_total",
    "Failed requests to the rate limit store, by kind: timeout, connection, auth, other.",
    ("error",),
)
VAULT_ERRORS = Counter(
    "sdksign_vault_errors_total",
    "Failed reads from Vault, by kind: timeout, connection, auth, other.",
    ("error",),
)

# Every series that can be known in advance exists from the start, at 0: a rate() over it
# needs no first event, and an alert on it no `or vector(0)`.
for _kind in ERROR_KINDS:
    STORE_ERRORS.labels(_kind)
    VAULT_ERRORS.labels(_kind)
for _result in ("success", "failure"):
    CONFIG_RELOADS.labels(_result)


# --- one call --------------------------------------------------------------------------------

# The labelled children of each method, of each (method, code) seen, and of each label set
# of the calls' facts: made once (labels() costs a few microseconds), then looked up.
_started: dict[str, Any] = {}
# Each method's grpc_type other than "unary" ("server_stream", "client_stream", "bidi_stream"),
# as runtime.rpc.add_service registers it (method_served).
_stream_types: dict[str, str] = {}
_calls: dict[tuple[str, str], tuple[Any, Any]] = {}
_children: dict[tuple[object, ...], Any] = {}
# What a refusal's status code is, when its rule was not bound (RESOURCE_EXHAUSTED's is).
REFUSAL_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED"})
# A label whose value is not known: a caller not identified, a token of no configured app.
UNKNOWN = "unknown"


def method_served(full_method: str, client_streaming: bool, server_streaming: bool) -> None:
    """`full_method` ("/package.Service/Method") is served, streaming as said: its grpc_type."""
    stream_type = _STREAM_TYPES.get((client_streaming, server_streaming))
    if stream_type is not None:
        _stream_types[full_method] = stream_type


# grpc_type by (client streaming, server streaming); neither: "unary".
_STREAM_TYPES = {
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def call_started(full_method: str) -> None:
    """Count an RPC that starts (`full_method`: "/package.Service/Method"); never raises
    into the call (see _failed)."""
    try:
        started = _started.get(full_method)
        if started is None:
            started = _started[full_method] = STARTED.labels(*_grpc_labels(full_method))
        started.inc()
    except Exception:
        _failed("call_started")


def record_call(full_method: str, code: str, seconds: float) -> None:
    """Count one finished RPC (`full_method`: "/package.Service/Method") and what the call's
    log fields say of it (tokens issued, refusals, Verify results); never raises into the
    call (see _failed)."""
    try:
        _record_call(full_method, code, seconds)
    except Exception:
        _failed("record_call")


# The counting steps whose failure was logged: once each per process, not once a call.
_failures_logged: set[str] = set()


def _failed(step: str) -> None:
    """A metric write failed (a worker's metrics file that cannot grow: a full /tmp): the call
    is answered and logged all the same, uncounted; the first failure of each step is logged."""
    if step not in _failures_logged:
        _failures_logged.add(step)
        log.exception(f"metrics failed: calls go on uncounted by {step} (said once)")


def _record_call(full_method: str, code: str, seconds: float) -> None:
    children = _calls.get((full_method, code)) or _call_children(full_method, code)
    children[0].inc()
    children[1].observe(seconds)
    fields = call_fields()
    if not fields:  # health checks, reflection: nothing bound
        return
    if code == "OK":
        if "valid" in fields:
            _verified(fields)
        elif "ttl" in fields:
            _issued(fields)
    elif code in REFUSAL_CODES:
        _refused(fields)


def _grpc_labels(full_method: str) -> tuple[str, str, str]:
    service, _, method = full_method[1:].rpartition("/")
    return service, method, _stream_types.get(full_method, "unary")


def _call_children(full_method: str, code: str) -> tuple[Any, Any]:
    labels = _grpc_labels(full_method)
    children = (HANDLED.labels(*labels, code), HANDLING.labels(*labels))
    _calls[(full_method, code)] = children
    return children


def _child(metric: Any, *labels: object) -> Any:
    """`metric`'s child of `labels` (made on first use)."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _issued(fields: dict[str, Any]) -> None:
    app = fields["app"]
    _child(TOKENS_ISSUED, app, fields["kind"], fields["role"] or "none", fields["caller"]).inc()
    _child(TOKEN_LIFETIME, app).observe(fields["ttl"])


def _refused(fields: dict[str, Any]) -> None:
    # The caller's name from the configuration (never the request's app, which a refused
    # call sent as it liked); the rule from the code (access.policy, access.ratelimit, access.ratestore).
    _child(REFUSALS, fields.get("caller") or UNKNOWN, fields.get("rule") or UNKNOWN).inc()


def _verified(fields: dict[str, Any]) -> None:
    app = fields.get("app") or UNKNOWN  # the configured app whose key the token carries
    _child(VERIFY_RESULTS, app, "true" if fields["valid"] else "false").inc()
    for code in fields.get("problems", ()):
        _child(VERIFY_PROBLEMS, str(code)).inc()


# --- configuration, secrets, backends -------------------------------------------------------


def config_served(config: Config) -> None:
    """`config` is served from now on (at start, or after a reload): its time and secrets."""
    CONFIG_LAST_RELOAD.set(time.time())
    secrets_served(config)


def reload_done(config: Config | None) -> None:
    """A SIGHUP reload ended: serving `config`, or (None) refused and serving the old one."""
    CONFIG_RELOADS.labels("failure" if config is None else "success").inc()
    if config is not None:
        config_served(config)


# The label sets of the secrets shown now: those no longer served are let go of.
_shown_secrets: set[tuple[str, ...]] = set()
_shown_created: set[tuple[str, ...]] = set()


def secrets_served(config: Config) -> None:
    """Show the secrets of `config`'s apps (and no others) by fingerprint, with their age."""
    info: set[tuple[str, ...]] = set()
    created: dict[tuple[str, ...], float] = {}
    for app in config.apps:
        made = (*app.secrets_created, *([None] * len(app.secrets)))
        for index, fingerprint in enumerate(app.secret_fingerprints):
            info.add((app.name, fingerprint, "true" if index == 0 else "false"))
            if (when := made[index]) is not None:
                created[(app.name, fingerprint)] = when
    _replace(SECRET_INFO, _shown_secrets, dict.fromkeys(info, 1.0))
    _replace(SECRET_CREATED, _shown_created, created)


def _replace(
    gauge: Gauge, shown: set[tuple[str, ...]], values: dict[tuple[str, ...], float]
) -> None:
    for labels in shown - values.keys():
        gauge.labels(*labels).set(0)
        if not _MULTIPROCESS:  # there the value stays in the file: its 0 is left out instead
            gauge.remove(*labels)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    shown.clear()
    shown.update(values)


def store_error(kind: str) -> None:
    """One failed request to the rate limit store (`kind`: one of ERROR_KINDS)."""
    STORE_ERRORS.labels(kind).inc()


def vault_error(kind: str) -> None:
    """One failed read from Vault (`kind`: one of ERROR_KINDS)."""
    VAULT_ERRORS.labels(kind).inc()


# --- what the serving process itself knows ----------------------------------------------------


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
        self._build = build_labels()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sdksign_ready",
            "1 when /healthz/ready answers 200, else 0.",
            value=0.0 if self.not_ready() else 1.0,
        )
        yield CounterMetricFamily(
            "sdksign_worker_restarts",
            "Worker processes that died and were started again.",
            value=self.worker_restarts,
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
            if family.name in _ZEROS_LEFT_OUT:
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


def registry(state: ServerState, multiprocess: Path | None = None) -> CollectorRegistry:
    """What /metrics shows: this process's metrics (the workers' files in `multiprocess`,
    with several), and `state`'s."""
    shown = CollectorRegistry(auto_describe=False)
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


# --- the workers' files -----------------------------------------------------------------------


class FolderError(Exception):
    """The workers' metrics folder cannot be made or emptied; the message is one line."""


def multiprocess_dir() -> tuple[Path, bool]:
    """The folder where the workers write their metrics, set in PROMETHEUS_MULTIPROC_DIR for
    the workers to come; and whether it is this process's own, to delete at the end.

    The operator's own PROMETHEUS_MULTIPROC_DIR, if set, made if need be, checked that a
    file can be made and removed there, and emptied of the files of earlier runs (*.db);
    else a new temporary folder. FolderError when neither can be.
    """
    given = os.environ.get(MULTIPROC_ENV) or _UNUSABLE_DIR
    try:
        if not given:
            _remove_orphans(Path(tempfile.gettempdir()))
            path = Path(tempfile.mkdtemp(prefix=f"{_OWN_PREFIX}{os.getpid()}-"))
            os.environ[MULTIPROC_ENV] = str(path)
            return path, True
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        # A file made and removed: a folder that is there but takes none (not this user's,
        # /proc/1) is refused here, not by the workers' first counts.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sdksign-probe-"):
            pass
        _lock(path, given)
        for file in path.glob("*.db"):
            file.unlink()
    except OSError as exc:
        where = f"{MULTIPROC_ENV} {given!r}" if given else tempfile.gettempdir()
        raise FolderError(
            f"cannot keep the workers' metrics in {where}: {exc.strerror or exc} "
            f"(set {MULTIPROC_ENV} to a folder this user may write)"
        ) from None
    os.environ[MULTIPROC_ENV] = str(path)
    return path, False


# The operator's folders this process uses, each with its lock's open file (held until exit).
_LOCKS: dict[Path, int] = {}


def _lock(path: Path, given: str) -> None:
    """Take `path`'s lock for the rest of this process (FolderError when another server holds
    it): two servers' workers in one folder would count into each other's files, and each
    would empty the other's at its start."""
    if path.resolve() in _LOCKS:
        return
    held = os.open(path / ".sdksign.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(held)
        raise FolderError(
            f"cannot keep the workers' metrics in {MULTIPROC_ENV} {given!r}: another sdksign "
            "server uses it (give each server a folder of its own)"
        ) from None
    _LOCKS[path.resolve()] = held


# The temporary folders of multiprocess_dir: the prefix, then the pid of the server's parent.
_OWN_PREFIX = "sdksign-metrics-"
_OWN_FOLDER = re.compile(rf"{_OWN_PREFIX}(\d+)-\w+")


def _remove_orphans(temporary: Path) -> None:
    """Delete the folders of this user's servers whose parent is gone without deleting its
    own (killed with SIGKILL): a folder of ours whose pid no longer runs, or is this
    process's own (made by an earlier run with the same pid: PID 1 in a container whose
    /tmp outlives a restart; this process makes its folder after this sweep)."""
    for folder in temporary.glob(f"{_OWN_PREFIX}*"):
        match = _OWN_FOLDER.fullmatch(folder.name)
        with contextlib.suppress(OSError):
            if match and folder.stat().st_uid == os.getuid() and _gone(int(match[1])):
                shutil.rmtree(folder)


def _gone(pid: int) -> bool:
    """Whether the server whose folder is named with `pid` has ended."""
    return pid == os.getpid() or not _runs(pid)


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def worker_gone(path: Path, pid: int) -> None:
    """A worker has stopped: its live gauges (secrets) go; its counts stay."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove_dir(path: Path) -> None:
    """Delete this process's own metrics folder (at its end)."""
    shutil.rmtree(path, ignore_errors=True)
