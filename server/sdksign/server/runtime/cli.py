"""`sdksign serve`: the server's side of the command (sdksign.client._cli parses it).

The client's command imports this module when `serve` runs, so that `sign` and `verify`
need only the client's dependencies.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from sdksign.client._exits import Exit
from sdksign.client._flags import ADMIN_PORT, GRPC_PORT, listen_problem

from ..config import (
    DEFAULT_ADMIN_LISTEN,
    Config,
    ConfigError,
    admin_exposure_problems,
    config_warnings,
    exposure_problems,
    load_config,
)
from ..observe import metrics
from ..observe.admin import AdminError, alone
from ..observe.log import configure_logging
from ..observe.tracing import problem as tracing_problem
from .serve import ListenError, run
from .workers import default_workers, serve_workers


def serve_command(args: argparse.Namespace) -> int:
    """`sdksign serve`: the configuration checked, then one server process or several workers.

    `args` are sdksign.client._cli's, --listen, --admin-listen, --drain and --workers read and
    bounded there.
    """
    # This process's metrics, in memory: made before serve_workers sets PROMETHEUS_MULTIPROC_DIR
    # for the workers, and before the configuration's read counts a Vault error.
    metrics.setup()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"sdksign: configuration error: {exc}")
    listen = args.listen or config.listen
    admin_listen = args.admin_listen or config.admin_listen
    # Only the default gives way to a free port when another server has it (make run).
    give_way = args.admin_listen is None and not config.admin_listen_set
    if args.drain is not None:
        config = replace(config, drain=args.drain, flags=frozenset({"drain"}))
    if refusal := _refusal(args, config, listen, admin_listen):
        return _fail(refusal)
    problems = exposure_problems(config, listen)
    if why := tracing_problem():  # OTEL_TRACES_EXPORTER asks for what cannot be made
        return _fail(f"sdksign: configuration error: {why}")
    # grpc core's own lines come out as JSON lines too (each worker captures its own).
    configure_logging(config.log_level, native_stderr=True)
    config = _warned(config, listen, admin_listen, problems)
    workers = args.workers or default_workers()
    try:
        if workers == 1:
            with alone(admin_listen, config.tls, give_way) as admin:
                run(config, listen, admin=admin)
            return Exit.OK
        return serve_workers(config, listen, workers, admin_listen, give_way)
    except (ListenError, AdminError) as exc:
        return _fail(f"sdksign: {exc}")


def _warned(config: Config, listen: str, admin_listen: str, problems: list[str]) -> Config:
    """Says, on stderr, what the operator should know before serving: development apps, a
    listener beyond loopback without TLS or a policy (then served as --insecure asked), an
    exposed admin listener, and the configuration's own warnings."""
    if config.development:
        _warn_development(config)
    if problems:
        config = replace(config, insecure=True)
        _warn_insecure(listen, problems)
    if admin_exposure_problems(config, admin_listen):
        _warn_insecure_admin(admin_listen)
    for warning in config_warnings(config):
        print(f"sdksign: WARNING: {warning}", file=sys.stderr, flush=True)
    return config


def _refusal(
    args: argparse.Namespace, config: Config, listen: str, admin_listen: str
) -> str | None:
    """Why the server must not start on `listen` and `admin_listen` (None: it may): an
    address in the file that is not HOST:PORT, both on one port, or one beyond loopback
    that is not safe there (no TLS, no caller policy) without --insecure."""
    for key, given, address, example_port in (
        ("listen", args.listen, listen, GRPC_PORT),
        ("admin_listen", args.admin_listen, admin_listen, ADMIN_PORT),
    ):
        if given is None and (problem := listen_problem(address, example_port)):
            return f"sdksign: configuration error: [server] {key}: {problem}"
    if (port := admin_listen.rpartition(":")[2]) == listen.rpartition(":")[2] and port != "0":
        return (
            f"sdksign: configuration error: the admin listener ({admin_listen}) is on the gRPC "
            f"listener's port ({listen}): give --admin-listen or [server] admin_listen a port "
            "of its own"
        )
    if args.insecure:
        return None
    if problems := exposure_problems(config, listen):
        return (
            f"sdksign: refusing to serve on {listen}, beyond loopback, with "
            f"{' and '.join(problems)}: configure them, listen on 127.0.0.1, or pass --insecure"
        )
    if problems := admin_exposure_problems(config, admin_listen):
        return (
            f"sdksign: refusing to serve metrics and health on {admin_listen}, beyond loopback, "
            f"with {problems[0]}: configure it (the admin listener serves the same certificate), "
            f"use --admin-listen {DEFAULT_ADMIN_LISTEN}, or pass --insecure"
        )
    return None


def _fail(message: str) -> int:
    """`message` on stderr; the exit status of a command that could not do its work."""
    print(message, file=sys.stderr)
    return Exit.USAGE


def _warn_development(config: Config) -> None:
    keys = ", ".join(f"{a.name}: {a.sdk_key}" for a in config.apps)
    print(
        f"sdksign: WARNING: no configuration given, so serving development apps ({keys}) whose "
        f"random secrets are kept in {config.source}. For development only: Zoom does not know "
        "these keys. Use --config or ZOOM_MEETING_SDK_KEY/ZOOM_MEETING_SDK_SECRET for real apps.",
        file=sys.stderr,
        flush=True,
    )


def _warn_insecure_admin(admin_listen: str) -> None:
    print(
        f"sdksign: WARNING: --insecure: serving metrics and health on {admin_listen} without "
        "TLS: anyone who can reach this port can read them (app and caller names, counts).",
        file=sys.stderr,
        flush=True,
    )


def _warn_insecure(listen: str, problems: list[str]) -> None:
    print(
        f"sdksign: WARNING: --insecure: serving on {listen} with {' and '.join(problems)}. "
        "Anyone who can reach this port can mint the tokens the policy allows anonymous "
        "callers; tokens and credentials cross the network in clear text without TLS.",
        file=sys.stderr,
        flush=True,
    )
