"""Prometheus metrics: every name and label the service exports is defined here.

A label's value comes only from the configuration (app and caller names, secret
fingerprints) or from the API's and the code's enums (gRPC methods and codes, roles,
problem codes, refusal rules): never from what a request sent, so that no meeting
number, session name, token or secret is ever one, and no caller can grow the number
of series.

setup() makes the metrics once per process, in the mode PROMETHEUS_MULTIPROC_DIR asks for
(metricdir.in_files): a process that serves calls it first thing. Each call is counted as
it starts (call_started) and once more as it ends (record_call), from its status code and,
for unary calls, the log fields its servicer bound: the same facts as its audit line.
Streaming calls (health's Watch, reflection) are counted by code and duration only, under
their own grpc_type (method_served).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from .context import call_fields
from .metricdir import in_files
from .metricfiles import set_mode

if TYPE_CHECKING:
    from ..config import Config
    from ..zoomapi.grantstore import Census as GrantCensus

log = structlog.get_logger("sdksign")

# The backends' errors, by kind: a bounded set of label values.
ERROR_KINDS = ("timeout", "connection", "auth", "other")
# Zoom's API (host starts): its endpoints, and what each request to them came to.
ZOOM_ENDPOINTS = (
    "oauth_token",
    "user_token",
    # user grants (zoomapi.userauth): the token endpoint by grant, revoke, users/me, OBF
    "user_oauth",
    "user_oauth_code",
    "user_oauth_refresh",
    "user_oauth_revoke",
    "user_me",
    "user_obf",
)
# Users' grants (zoomapi.grants): their states, a refresh's outcomes, an OBF request's.
GRANT_STATES = ("ok", "broken")
GRANT_REFRESH_OUTCOMES = ("ok", "refused", "failed")
OBF_OUTCOMES = ("ok", "no_grant", "broken", "failed")
ZOOM_OUTCOMES = (
    "ok",
    "rate_limited",  # 429
    "not_found",  # 404: no such user
    "token_expired",  # 401 code 124: a new access token and one retry follow
    "refused",  # another 4xx: credentials, scopes, a request Zoom will not take
    "server_error",  # 5xx
    "timeout",  # no answer within [zoom] timeout
    "unreachable",  # no connection
    "bad_answer",  # an answer that is not what Zoom documents
)
# The gauges whose zeros /metrics leaves out (Metrics.secret_info, .secret_created).
ZEROS_LEFT_OUT = frozenset(
    {"sdksign_app_secret_info", "sdksign_app_secret_created_timestamp_seconds"}
)

# The parent's own counters (exposition.ServerState: counted once, in the process that serves
# /metrics), without their _total.
WORKER_RESTARTS = "sdksign_worker_restarts"
WATCHDOG_KILLS = "sdksign_worker_watchdog_kills"

# The buckets of a call's duration, in seconds: from half a millisecond, for calls answered
# from memory, to ten seconds, for calls that wait on Vault or a rate limit store.
_DURATIONS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric this process writes, made by setup() once prometheus-client's mode is set
    (a metric's values go to memory or to files as the mode was when it was made)."""

    def __init__(self, multiprocess: bool) -> None:
        # Whether the values go to files (several workers): a gauge's removed label set
        # then stays in the file, so its 0 is shown instead, and left out (ZEROS_LEFT_OUT).
        self.multiprocess = multiprocess

        # --- gRPC's conventional server metrics (go-grpc-prometheus' names and dashboards) --
        grpc_labels = ("grpc_service", "grpc_method", "grpc_type")
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", grpc_labels
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*grpc_labels, "grpc_code"),
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its answer, in seconds.",
            grpc_labels,
            buckets=_DURATIONS,
        )

        # --- what the calls did -----------------------------------------------------------
        self.tokens_issued = Counter(
            "sdksign_tokens_issued_total",
            "Tokens minted by Sign, by app, kind (meeting or video), role and caller.",
            ("app", "kind", "role", "caller"),
        )
        self.token_lifetime = Histogram(
            "sdksign_token_lifetime_seconds",
            "Lifetime (exp - iat) of the tokens minted, in seconds.",
            ("app",),
            buckets=(1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800),
        )
        self.refusals = Counter(
            "sdksign_refusals_total",
            "Calls refused by the caller policy or the rate limit, by caller and the rule that refused.",
            ("caller", "rule"),
        )
        self.verify_results = Counter(
            "sdksign_verify_results_total",
            "Tokens checked by Verify, by the app whose key they carry and whether they are valid.",
            ("app", "valid"),
        )
        self.verify_problems = Counter(
            "sdksign_verify_problems_total",
            "Problems Verify found in tokens, by problem code.",
            ("code",),
        )

        # --- configuration and secrets ----------------------------------------------------
        self.config_reloads = Counter(
            "sdksign_config_reloads_total",
            "Configuration reloads (SIGHUP), by result: success or failure; each worker counts its own.",
            ("result",),
        )
        self.config_last_reload = Gauge(
            "sdksign_config_last_reload_success_timestamp_seconds",
            "When the configuration served was last loaded (at start, or by a reload), epoch seconds.",
            multiprocess_mode="max",
        )
        # Both set to 0, then let go of, when a secret stops being served (_replace).
        self.secret_info = Gauge(
            "sdksign_app_secret_info",
            "The secrets each app serves, by fingerprint; active: the one that signs.",
            ("app", "fingerprint", "active"),
            multiprocess_mode="livemax",
        )
        self.secret_created = Gauge(
            "sdksign_app_secret_created_timestamp_seconds",
            "When each secret served was made, epoch seconds: a Vault version's created_time, a "
            "secret_file's modification time (none for secrets from the environment).",
            ("app", "fingerprint"),
            multiprocess_mode="livemax",
        )

        # --- the backends' errors (bounded kinds: ERROR_KINDS) ------------------------------
        self.store_errors = Counter(
            "sdksign_rate_limit_store_errors_total",
            "Failed requests to the rate limit store, by kind: timeout, connection, auth, other.",
            ("error",),
        )
        self.vault_errors = Counter(
            "sdksign_vault_errors_total",
            "Failed reads from Vault, by kind: timeout, connection, auth, other.",
            ("error",),
        )

        self.zoom_requests = Counter(
            "sdksign_zoom_api_requests_total",
            "Requests to Zoom's API for host starts, by endpoint (oauth_token, user_token) and "
            "outcome (ok, rate_limited, not_found, token_expired, refused, server_error, "
            "timeout, unreachable, bad_answer).",
            ("endpoint", "outcome"),
        )
        # --- user grants (zoomapi.grants) ----------------------------------------------------
        self.grants = Gauge(
            "sdksign_grants",
            "Users' grants in the grant store, by state (ok, broken: Zoom refused its refresh "
            "token and the user must authorize again), as this worker last counted them.",
            ("state",),
            multiprocess_mode="livemax",
        )
        self.grants_old_key = Gauge(
            "sdksign_grants_sealed_with_old_key",
            "Users' grants in the grant store holding a token sealed with a previous grant key "
            "(it still opens them; at 0 on every replica the previous key may be dropped), as "
            "this worker last counted them.",
            multiprocess_mode="livemax",
        )
        self.grant_refreshes = Counter(
            "sdksign_grant_refreshes_total",
            "Refreshes of users' grants this worker made, by outcome (ok, refused: the grant "
            "is now broken, failed: Zoom or the store did not answer; nothing changed).",
            ("outcome",),
        )
        self.obf_requests = Counter(
            "sdksign_obf_requests_total",
            "OBF tokens asked for by Signs with on_behalf_of, by outcome (ok, no_grant, "
            "broken: a grant Zoom refused, failed: anything else, Zoom refusing the OBF token "
            "included).",
            ("outcome",),
        )
        self.zoom_request_seconds = Histogram(
            "sdksign_zoom_api_request_seconds",
            "Time one request to Zoom's API took, answered or not, in seconds.",
            ("endpoint",),
            buckets=_DURATIONS,
        )

        # --- the process itself -------------------------------------------------------------
        self.native_log_overflows = Counter(
            "sdksign_native_log_overflows_total",
            "Times the pipe that carries gRPC core's own log lines (GRPC_TRACE) was found full: "
            "lines written meanwhile were dropped, never waited for.",
        )

        # Every series that can be known in advance exists from the start, at 0: a rate()
        # over it needs no first event, and an alert on it no `or vector(0)`.
        for kind in ERROR_KINDS:
            self.store_errors.labels(kind)
            self.vault_errors.labels(kind)
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        for endpoint in ZOOM_ENDPOINTS:
            self.zoom_request_seconds.labels(endpoint)
            for outcome in ZOOM_OUTCOMES:
                self.zoom_requests.labels(endpoint, outcome)
        for outcome in GRANT_REFRESH_OUTCOMES:
            self.grant_refreshes.labels(outcome)
        for outcome in OBF_OUTCOMES:
            self.obf_requests.labels(outcome)
        for state in GRANT_STATES:
            self.grants.labels(state)


# This process's metrics, once made (setup).
_made: Metrics | None = None
_making = threading.Lock()


def setup() -> Metrics:
    """This process's metrics, made on the first call: call it first thing in a process that
    serves, before anything is counted (reading the configuration counts Vault's errors).

    prometheus-client's mode is set then, from PROMETHEUS_MULTIPROC_DIR as it is at that
    moment (metricdir.in_files): set, each value goes to a file in that folder; unset, to
    memory. A process that never calls it (a test building a server) gets its metrics at
    its first count, in the mode of that moment.
    """
    global _made
    with _making:
        if _made is None:
            multiprocess = in_files()
            set_mode(multiprocess)
            # No `_created` series beside every counter and histogram: nothing here reads them.
            disable_created_metrics()  # type: ignore[no-untyped-call]
            _made = Metrics(multiprocess)
        return _made


# --- one call --------------------------------------------------------------------------------

# The labelled children of each method, of each (method, code) seen, and of each label set
# of the calls' facts: made once, then looked up (labels() checks and converts its values,
# and takes a lock, each time).
_started: dict[str, Any] = {}
# Each method's grpc_type other than "unary" ("server_stream", "client_stream", "bidi_stream"),
# as method_served was told.
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
            metric = (_made or setup()).started
            started = _started[full_method] = metric.labels(*_grpc_labels(full_method))
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
    made = _made or setup()
    labels = _grpc_labels(full_method)
    children = (made.handled.labels(*labels, code), made.handling.labels(*labels))
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
    made = _made or setup()
    app = fields["app"]
    role = fields["role"] or "none"
    _child(made.tokens_issued, app, fields["kind"], role, fields["caller"]).inc()
    _child(made.token_lifetime, app).observe(fields["ttl"])


def _refused(fields: dict[str, Any]) -> None:
    # The caller's name from the configuration (never the request's app, which a refused
    # call sent as it liked); the rule as the code that refused named it.
    caller, rule = fields.get("caller") or UNKNOWN, fields.get("rule") or UNKNOWN
    _child((_made or setup()).refusals, caller, rule).inc()


def _verified(fields: dict[str, Any]) -> None:
    made = _made or setup()
    app = fields.get("app") or UNKNOWN  # the configured app whose key the token carries
    _child(made.verify_results, app, "true" if fields["valid"] else "false").inc()
    for code in fields.get("problems", ()):
        _child(made.verify_problems, str(code)).inc()


# --- configuration, secrets, backends -------------------------------------------------------


def config_served(config: Config) -> None:
    """`config` is served from now on (at start, or after a reload): its time and secrets."""
    (_made or setup()).config_last_reload.set(time.time())
    secrets_served(config)


def reload_done(config: Config | None) -> None:
    """A SIGHUP reload ended: serving `config`, or (None) refused and serving the old one."""
    (_made or setup()).config_reloads.labels("failure" if config is None else "success").inc()
    if config is not None:
        config_served(config)


# The label sets of the secrets shown now: those no longer served are let go of.
_shown_secrets: set[tuple[str, ...]] = set()
_shown_created: set[tuple[str, ...]] = set()


def secrets_served(config: Config) -> None:
    """Show the secrets of `config`'s apps (and no others) by fingerprint, with their age."""
    made = _made or setup()
    info: set[tuple[str, ...]] = set()
    created: dict[tuple[str, ...], float] = {}
    for app in config.apps:
        when_made = (*app.secrets_created, *([None] * len(app.secrets)))
        for index, fingerprint in enumerate(app.secret_fingerprints):
            info.add((app.name, fingerprint, "true" if index == 0 else "false"))
            if (when := when_made[index]) is not None:
                created[(app.name, fingerprint)] = when
    _replace(made, made.secret_info, _shown_secrets, dict.fromkeys(info, 1.0))
    _replace(made, made.secret_created, _shown_created, created)


def _replace(
    made: Metrics,
    gauge: Gauge,
    shown: set[tuple[str, ...]],
    values: dict[tuple[str, ...], float],
) -> None:
    for labels in shown - values.keys():
        gauge.labels(*labels).set(0)
        if not made.multiprocess:  # there the value stays in the file: its 0 is left out instead
            gauge.remove(*labels)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    shown.clear()
    shown.update(values)


def store_error(kind: str) -> None:
    """One failed request to the rate limit store (`kind`: one of ERROR_KINDS)."""
    (_made or setup()).store_errors.labels(kind).inc()


def vault_error(kind: str) -> None:
    """One failed read from Vault (`kind`: one of ERROR_KINDS)."""
    (_made or setup()).vault_errors.labels(kind).inc()


def native_log_overflow() -> None:
    """The pipe of gRPC core's log lines was found full (observe.stderr): lines were dropped."""
    (_made or setup()).native_log_overflows.inc()


def zoom_request(endpoint: str, outcome: str, seconds: float) -> None:
    """One request to Zoom's API (`endpoint`: one of ZOOM_ENDPOINTS; `outcome`: one of
    ZOOM_OUTCOMES) and how long it took; never raises into the call (see _failed)."""
    try:
        made = _made or setup()
        _child(made.zoom_requests, endpoint, outcome).inc()
        _child(made.zoom_request_seconds, endpoint).observe(seconds)
    except Exception:
        _failed("zoom_request")


def grant_refresh(outcome: str) -> None:
    """One refresh of a user's grant (`outcome`: one of GRANT_REFRESH_OUTCOMES)."""
    try:
        _child((_made or setup()).grant_refreshes, outcome).inc()
    except Exception:
        _failed("grant_refresh")


def obf_request(outcome: str) -> None:
    """One OBF token asked for (`outcome`: one of OBF_OUTCOMES)."""
    try:
        _child((_made or setup()).obf_requests, outcome).inc()
    except Exception:
        _failed("obf_request")


def grants_counted(census: GrantCensus) -> None:
    """The grant store's grants by state (GRANT_STATES), and those sealed with an old key,
    as last counted."""
    try:
        made = _made or setup()
        for state in GRANT_STATES:
            made.grants.labels(state).set(census.states.get(state, 0))
        made.grants_old_key.set(census.old_key)
    except Exception:
        _failed("grants_counted")
