"""Serving: build the grpc.aio server, listen, and stop gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from dataclasses import replace

import grpc
import structlog
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from sdksign.client._limits import MAX_MESSAGE_BYTES
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import zoom_sample_pb2 as zs

from ..config import Config, ConfigError, Tls, exposure_problems
from ..observe import metricfiles, metrics, tracing
from ..observe.admin import DRAINING, HEARTBEAT_INTERVAL, SERVING, Readiness
from .deadlines import RequestDeadlines
from .memory import give_back_memory
from .refresh import Refresher, log_warnings
from .rpc import UnknownMethods, add_service
from .service import SignatureService, ZoomSampleService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SignatureService"].full_name
SAMPLE_SERVICE_NAME = zs.DESCRIPTOR.services_by_name["ZoomSampleService"].full_name
# What server reflection lists (grpcurl list).
REFLECTED = (SERVICE_NAME, SAMPLE_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)

# One process (a worker) runs at most this many calls at once; more are refused at once with
# RESOURCE_EXHAUSTED by grpc.aio, before our code runs (so neither logged nor counted). A
# call whose answer a client never reads (an HTTP/2 window of 0) stays until its connection
# closes, holding about 25 KiB, and up to MAX_METADATA_BYTES more with the largest metadata:
# this bounds what such clients can hold, 50 MiB or so, about 100 MiB by count at most.
MAX_CONCURRENT_CALLS = 2_000
MAX_CONNECTIONS = 1_000

# A call's metadata (its request headers), as gRPC counts it: each entry's name and value
# plus 32 bytes. gRPC's defaults refuse it over a soft 8 KiB at random and over a hard 16 KiB
# always (RESOURCE_EXHAUSTED); here one limit, so that a size is always taken or always
# refused. The gateway lets through at most 16 KiB of names and values in at most 100 headers
# (gateway/envoy.yaml's script), to which Envoy adds a few (te, a timeout, a longer :path on
# the JSON route): 16,384 + 100 x 32 + those, measured 19,276 bytes at the script's limit,
# which 24 KiB holds with room to spare. A call holds its metadata while it lives: 2,000
# calls a process (MAX_CONCURRENT_CALLS) hold at most 48 MiB of it.
MAX_METADATA_BYTES = 24 * 1024

# How connections are kept honest: nothing a client opens (and leaves) holds memory for long.
# Streams that never bring their request are ended by runtime.deadlines.REQUEST_READ_TIMEOUT.
CONNECTION_OPTIONS: list[tuple[str, int]] = [
    # Requests are small (a token's length is bounded): gRPC refuses any over MAX_MESSAGE_BYTES.
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Request metadata up to MAX_METADATA_BYTES is taken, anything more refused, every time.
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    # A connection that has not finished its TLS and HTTP/2 handshake in 10 s is closed.
    ("grpc.server_handshake_timeout_ms", 10_000),
    # One connection carries at most this many calls at once (Envoy opens more as needed).
    ("grpc.max_concurrent_streams", 1_000),
    # One process takes at most this many connections; more are closed as they come.
    ("grpc.max_allowed_incoming_connections", MAX_CONNECTIONS),
    # A connection without a call for 5 minutes is closed (GOAWAY; clients reconnect at will).
    ("grpc.max_connection_idle_ms", 300_000),
    # Every connection is closed gracefully after about 30 minutes, with 30 s for its calls,
    # so that clients spread again over replicas that came and went.
    ("grpc.max_connection_age_ms", 1_800_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    # Idle connections are pinged every minute; one that does not answer in 20 s is closed.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients (Envoy's connection_keepalive among them) may ping every 10 s without a call.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]

log = structlog.get_logger("sdksign")


class ListenError(Exception):
    """The listen address cannot be bound."""


def build_server(
    config: Config,
    reuse_port: bool = False,
    service: SignatureService | None = None,
    deadlines: RequestDeadlines | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A server with SignatureService, per-service health and reflection (not yet listening).

    `reuse_port` lets several worker processes listen on one port; without it a port
    that is taken fails loudly. `service` is the servicer to use (default: a new one);
    `deadlines` what bounds its calls' requests and answers (default: a new one), told
    when the server stops.
    """
    server = grpc.aio.server(
        options=[*CONNECTION_OPTIONS, ("grpc.so_reuseport", int(reuse_port))],
        maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
    )
    signatures = service or SignatureService(config)
    health_servicer = health.aio.HealthServicer()
    deadlines = RequestDeadlines() if deadlines is None else deadlines
    for servicer, descriptor in (
        (signatures, pb.DESCRIPTOR.services_by_name["SignatureService"]),
        (health_servicer, health_pb2.DESCRIPTOR.services_by_name["Health"]),
        (ZoomSampleService(signatures), zs.DESCRIPTOR.services_by_name["ZoomSampleService"]),
        (
            reflection.aio.ReflectionServicer(REFLECTED),
            reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
        ),
    ):
        add_service(server, servicer, descriptor, deadlines)
    server.add_generic_rpc_handlers((UnknownMethods(),))  # last: only what no service has
    return server, health_servicer


def add_port(server: grpc.aio.Server, listen: str, tls: Tls | None = None) -> int:
    """Add `listen` (HOST:PORT, port 0 for any free one) to the server's ports, with TLS if
    given; return the port. The socket is bound here and listens once the server starts."""
    try:
        if tls is None:
            port: int = server.add_insecure_port(listen)
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.private_key, tls.certificate_chain)],
                root_certificates=tls.client_ca,
                require_client_auth=tls.client_ca is not None,
            )
            port = server.add_secure_port(listen, credentials)
    except RuntimeError:
        port = 0
    if not port:
        raise ListenError(f"cannot listen on {listen!r}: address in use, or not HOST:PORT")
    return port


def run(
    config: Config, listen: str, reuse_port: bool = False, admin: Readiness | None = None
) -> None:
    """Serve on uvloop's event loop where it is installed (it is with the server extra on
    Linux and macOS), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config, listen, reuse_port, admin))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, listen, reuse_port, admin))


async def serve(
    config: Config, listen: str, reuse_port: bool = False, admin: Readiness | None = None
) -> None:
    """Serve until SIGTERM or SIGINT: health turns NOT_SERVING, the drain period passes
    (SIGTERM only), then the listener closes and calls in flight get the grace period.

    `admin` hears of the state (serving, then draining from the first signal on), for
    the admin listener's /healthz/ready.
    """
    metricfiles.report()  # a metrics file gone to memory before the log was set up
    tracing.configure(config)  # here, in the process that serves: each worker its exporters
    service = SignatureService(config)
    deadlines = RequestDeadlines()
    server, health_servicer = build_server(config, reuse_port, service, deadlines)
    port = add_port(server, listen, config.tls)
    await service.start()
    await server.start()
    for name in ("", SERVICE_NAME, SAMPLE_SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    metrics.config_served(config)
    keeping = [asyncio.create_task(give_back_memory(), name="sdksign-memory")]
    if admin is not None:
        admin.set(SERVING)
        keeping.append(asyncio.create_task(beat(admin), name="sdksign-heartbeat"))
    host = listen.rsplit(":", 1)[0]
    log.info(
        "listening",
        address=f"{host}:{port}",
        pid=os.getpid(),
        tls="mutual" if config.tls and config.tls.client_ca else "on" if config.tls else "off",
        **({} if admin is None else {"admin_address": admin.address}),
        # The default admin address was another server's: this one's is on a free port.
        **({"admin_default_in_use": admin.taken} if admin is not None and admin.taken else {}),
        **describe(config),
    )

    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopping, signals, signum, admin)
    refresher = Refresher(service, functools.partial(reload, service, listen))
    loop.add_signal_handler(signal.SIGHUP, refresher.sighup)
    refresher.start()
    # A worker starts with SIGHUP blocked (runtime.workers): one that came meanwhile is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    first = await signals.get()
    await refresher.stop()  # no reload or refresh from now on; none is waited for
    await health_servicer.enter_graceful_shutdown()
    await drain(signals, first, service.config.drain)
    grace = service.config.shutdown_grace
    log.info("shutting down", grace_seconds=grace)
    deadlines.stopping(grace)  # answers still waiting when the grace ends: CANCELLED
    await server.stop(grace)
    await deadlines.stopped()
    await service.aclose()
    for task in keeping:
        task.cancel()
    tracing.shutdown()  # the last spans sent
    log.info("stopped")


async def beat(admin: Readiness) -> None:
    """Prove to the admin listener (and a worker's parent) that the event loop runs: a beat
    every HEARTBEAT_INTERVAL. A loop that stops beating is taken out of readiness, and a
    worker's parent kills it (observe.admin, runtime.restarts)."""
    while True:
        admin.beat()
        await asyncio.sleep(HEARTBEAT_INTERVAL)


def _stopping(
    signals: asyncio.Queue[signal.Signals], signum: signal.Signals, admin: Readiness | None
) -> None:
    """The SIGTERM and SIGINT handler: not ready from now on (the admin listener says so at
    once), and the signal to serve()."""
    if admin is not None:
        admin.set(DRAINING)
    signals.put_nowait(signum)


async def drain(
    signals: asyncio.Queue[signal.Signals], first: signal.Signals, seconds: float
) -> None:
    """Keep serving for `seconds` after SIGTERM, health already NOT_SERVING, so that load
    balancers and Kubernetes see it and send elsewhere before the listener closes.

    SIGINT (Ctrl-C in a terminal) skips the drain; a second SIGTERM or SIGINT cuts it short.
    """
    if first == signal.SIGINT or seconds <= 0:
        return
    log.info("draining", signal=first.name, drain_seconds=seconds, health="NOT_SERVING")
    try:
        second = await asyncio.wait_for(signals.get(), seconds)
    except TimeoutError:
        return
    log.info("drain cut short", signal=second.name)


def describe(config: Config) -> dict[str, object]:
    """What a log line says of a configuration: apps with their secrets' fingerprints, callers."""
    return {
        "config": config.source,
        "apps": [
            f"{a.name} ({a.kind}, sdk key {a.sdk_key}, secrets {', '.join(a.secret_fingerprints)})"
            for a in config.apps
        ],
        "callers": [c.name for c in config.policy.callers],
        "anonymous": sorted(config.policy.anonymous.roles) if config.policy.anonymous else None,
        "rate_limits": _rate_limits(config),
        **_host_starts(config),
    }


def _host_starts(config: Config) -> dict[str, str]:
    """Which apps start meetings (have [apps.s2s]), through which Zoom API: nothing if none."""
    apps = [app.name for app in config.apps if app.s2s is not None]
    if not apps:
        return {}
    zoom = config.zoom
    return {"host_starts": f"{', '.join(apps)} via {zoom.api_url} (timeout {zoom.timeout:g} s)"}


def _rate_limits(config: Config) -> str:
    store = config.rate_limits
    if store is None:
        return "per worker"
    return f"{store.address} (timeout {store.timeout:g} s, on_store_error {store.on_store_error})"


# Set once, at start, by the file or the command line: how this process listens, logs,
# traces and stops (the workers' parent counts on drain and grace). A reload keeps these, and
# --insecure, and takes the rest (apps, callers, clock_skew) from the file.
START_ONLY = (
    "listen",
    "admin_listen",
    "log_level",
    "drain",
    "shutdown_grace",
    "trace_meeting_numbers",
)


def reload(service: SignatureService, listen: str, read: Config | ConfigError) -> None:
    """SIGHUP: serve what was read again, only if all of it is valid.

    `read` is what was read (by runtime.refresh, in a thread, since it may wait on Vault; this
    reads nothing, so that the loop never waits on Vault), or why it could not be.
    Calls in flight keep the configuration they started with.
    """
    new = reloaded(service.config, read, listen)
    metrics.reload_done(new)
    if new is None:
        return
    service.config = new
    log.info("configuration reloaded", **describe(new))
    log_warnings(new)


_PREVIOUS = "still serving the previous configuration"


# A logger that says nothing: for reloaded() judged by the workers' parent, whose workers say it.
_SILENT = structlog.wrap_logger(structlog.ReturnLogger(), processors=[])


def reloaded(
    old: Config,
    read: Config | ConfigError,
    listen: str,
    then: str = _PREVIOUS,
    quiet: bool = False,
) -> Config | None:
    """What a reload from `old` may serve: `read` with START_ONLY settings, --insecure and
    what flags gave kept from `old` (a warning names the file's START_ONLY changes that a
    flag did not override). None, after an error line ending in `then`, when `read` is an
    error, changes TLS (whose files are read at start only: a change needs a restart), or
    would expose the service. `quiet`: no line at all.
    """
    say = _SILENT if quiet else log
    if isinstance(read, ConfigError):
        say.error(f"reload refused: {then}", error=str(read))
        return None
    kept = {name: getattr(old, name) for name in START_ONLY}
    new = replace(read, insecure=old.insecure, flags=old.flags, **kept)
    changed = [name for name, value in kept.items() if getattr(read, name) != value]
    if differ := [name for name in changed if name not in old.flags]:  # a flag's: not the file's
        say.warning("reload keeps the settings fixed at start; a restart changes them", keep=differ)
    if new.tls != old.tls:
        say.error(f"reload refused: the TLS settings changed, and they take a restart; {then}")
        return None
    problems = exposure_problems(new, listen)
    if problems and not new.insecure:
        say.error(
            f"reload refused: the new configuration would expose the service; {then}",
            problems=problems,
        )
        return None
    return new
