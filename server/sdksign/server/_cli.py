"""The `sdksign` command: serve, sign and verify."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ._config import (
    Config,
    ConfigError,
    config_warnings,
    exposure_problems,
    load_config,
    parse_duration,
)

if TYPE_CHECKING:
    from sdksign.client import Client

TARGET_HELP = "the server, HOST:PORT (default: $SDKSIGN_TARGET or localhost:50051)"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve_command(args)
        if args.command == "sign":
            return _sign_command(args)
        return _verify_command(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdksign", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_options(commands.add_parser("serve", help="run the gRPC server"))
    _sign_options(commands.add_parser("sign", help="mint a token and print it"))
    _verify_options(
        commands.add_parser("verify", help="diagnose a token (exit status 1 when it is invalid)")
    )
    return parser


def _serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--listen", help="HOST:PORT to listen on (default: the config's, else 127.0.0.1:50051)"
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("SDKSIGN_CONFIG") or None,
        help="TOML file with [[apps]] (default: $SDKSIGN_CONFIG; without one, Zoom's sample "
        "variables ZOOM_MEETING_SDK_KEY/SECRET and ZOOM_VIDEO_SDK_KEY/SECRET, else development apps)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=os.environ.get("SDKSIGN_WORKERS") or None,
        help="worker processes sharing the port (default: $SDKSIGN_WORKERS, else one per core); "
        "1 serves from this process",
    )
    serve.add_argument(
        "--drain",
        type=_seconds,
        help="seconds to keep serving after SIGTERM, health NOT_SERVING, before the listener "
        "closes (default: the config's [server] drain, else 5; Ctrl-C skips it)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve beyond loopback without TLS or without a caller policy (refused otherwise)",
    )


def _sign_options(sign: argparse.ArgumentParser) -> None:
    _target_option(sign)
    sign.add_argument(
        "--app", default="", help="the configured app (default: the only one of the kind)"
    )
    what = sign.add_mutually_exclusive_group()
    what.add_argument("--meeting-number", help="meeting number, for a web Meeting SDK token")
    what.add_argument("--session", help="session name, for a Video SDK token")
    sign.add_argument(
        "--role", choices=["participant", "host"], help="required for web and video tokens"
    )
    sign.add_argument("--ttl", help="lifetime, e.g. 7200, 30m, 2h (1800 s to 48 h; default 2h)")
    sign.add_argument("--json", action="store_true", help="print token, sdk key and times as JSON")
    _connection_options(sign)


def _verify_options(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("token", help="the token, or - to read it from standard input")
    _target_option(verify)
    verify.add_argument("--app", help="check against this configured app only")
    verify.add_argument("--expect-meeting", help="the meeting number the token must be for")
    verify.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    _connection_options(verify)


def _serve_command(args: argparse.Namespace) -> int:
    """`sdksign serve`: the configuration checked, then one server process or several workers."""
    try:
        from ._logging import configure_logging
        from ._serve import ListenError, run
        from ._workers import default_workers, serve_workers
    except ImportError as exc:
        return _fail(
            f"sdksign serve: the server extra is not installed ({exc.name}): pip install 'sdksign[server]'"
        )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"sdksign: configuration error: {exc}")
    listen = args.listen or config.listen
    if args.drain is not None:
        config = replace(config, drain=args.drain)
    problems = exposure_problems(config, listen)
    if problems and not args.insecure:
        return _fail(
            f"sdksign: refusing to serve on {listen}, beyond loopback, with "
            f"{' and '.join(problems)}: configure them, listen on 127.0.0.1, or pass --insecure"
        )
    # grpc core's own lines come out as JSON lines too (each worker captures its own).
    configure_logging(config.log_level, native_stderr=True)
    if config.development:
        _warn_development(config)
    if problems:
        config = replace(config, insecure=True)
        _warn_insecure(listen, problems)
    for warning in config_warnings(config):
        print(f"sdksign: WARNING: {warning}", file=sys.stderr, flush=True)
    workers = args.workers or default_workers()
    try:
        if workers == 1:
            run(config, listen)
            return 0
        return serve_workers(config, listen, workers)
    except ListenError as exc:
        return _fail(f"sdksign: {exc}")


def _fail(message: str) -> int:
    """`message` on stderr; the exit status of a command that could not do its work (2)."""
    print(message, file=sys.stderr)
    return 2


MAX_WORKERS = 256


def _seconds(text: str) -> int:
    """--drain: a duration (seconds, or '30s', '1m')."""
    try:
        return parse_duration(int(text) if text.isdigit() else text, "")
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"must be seconds or a duration like '30s', not {text!r}"
        ) from None


def _worker_count(text: str) -> int:
    """--workers: a whole number from 1 to MAX_WORKERS."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_WORKERS}, not {text!r}"
        )
    return count


def _warn_development(config: Config) -> None:
    keys = ", ".join(f"{a.name}: {a.sdk_key}" for a in config.apps)
    print(
        f"sdksign: WARNING: no configuration given, so serving development apps ({keys}) whose "
        f"random secrets are kept in {config.source}. For development only: Zoom does not know "
        "these keys. Use --config or ZOOM_MEETING_SDK_KEY/ZOOM_MEETING_SDK_SECRET for real apps.",
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


def _target_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--target", default=os.environ.get("SDKSIGN_TARGET", "localhost:50051"), help=TARGET_HELP
    )


def _connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--bearer-file",
        type=Path,
        help="file holding this caller's bearer token (default: $SDKSIGN_BEARER_TOKEN)",
    )
    command.add_argument("--ca-file", type=Path, help="CA certificate (PEM): connect with TLS")
    command.add_argument("--cert-file", type=Path, help="client certificate (PEM), for mTLS")
    command.add_argument("--key-file", type=Path, help="client certificate's key (PEM), for mTLS")


def _client(args: argparse.Namespace) -> Client:
    """A client for `args.target` with the TLS files and bearer token the options name."""
    import grpc

    from sdksign.client import Client

    if (args.cert_file is None) != (args.key_file is None):
        raise SystemExit("sdksign: give --cert-file and --key-file together")
    try:
        bearer = os.environ.get("SDKSIGN_BEARER_TOKEN") or None
        if args.bearer_file is not None:
            bearer = args.bearer_file.read_text(encoding="utf-8").strip()
        credentials = None
        if args.ca_file or args.cert_file:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=args.ca_file.read_bytes() if args.ca_file else None,
                private_key=args.key_file.read_bytes() if args.key_file else None,
                certificate_chain=args.cert_file.read_bytes() if args.cert_file else None,
            )
    except OSError as exc:
        raise SystemExit(f"sdksign: cannot read {exc.filename}: {exc.strerror}") from None
    return Client(args.target, credentials=credentials, bearer_token=bearer)


def _sign_command(args: argparse.Namespace) -> int:
    import json

    from sdksign.client import Role, SdkSignError

    role = Role[args.role.upper()] if args.role else None
    try:
        ttl = parse_duration(args.ttl, "--ttl") if args.ttl else None
    except ConfigError as exc:
        print(f"sdksign sign: {exc}", file=sys.stderr)
        return 2
    try:
        with _client(args) as client:
            if args.session is not None:
                if role is None:
                    print("sdksign sign: --role is required with --session", file=sys.stderr)
                    return 2
                signed = client.sign_video(args.session, role, app=args.app, ttl=ttl)
            else:
                signed = client.sign_meeting(args.meeting_number, role, app=args.app, ttl=ttl)
    except SdkSignError as exc:
        print(f"sdksign sign: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "token": signed.token,
                    "sdk_key": signed.sdk_key,
                    "app": signed.app,
                    "issued_at": signed.issued_at.isoformat(),
                    "expires_at": signed.expires_at.isoformat(),
                }
            )
        )
    else:
        print(signed.token)
    return 0


def _verify_command(args: argparse.Namespace) -> int:
    import json

    from sdksign.client import SdkSignError

    token = sys.stdin.read().strip() if args.token == "-" else args.token  # noqa: S105
    try:
        with _client(args) as client:
            result = client.verify(token, app=args.app, expected_meeting_number=args.expect_meeting)
    except SdkSignError as exc:
        print(f"sdksign verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "valid": result.valid,
                    "kind": result.kind,
                    "app": result.app,
                    "problems": [p.__dict__ for p in result.problems],
                    "header": result.header,
                    "claims": result.claims,
                },
                indent=2,
            )
        )
    else:
        print(result.explain())
    return 0 if result.valid else 1
