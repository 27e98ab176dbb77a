"""The `sdksign` command: sign and verify tokens, or serve them.

`sign` and `verify` need only the client's dependencies (grpcio and protobuf);
`serve` imports the server (sdksign.server, the server extra) when it runs, and
without that extra says how to install it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc

from . import _flags
from ._client import DEFAULT_TARGET, Client
from ._errors import SdkSignError
from ._exits import EXIT_STATUSES, Exit, exit_status, hint, in_flags
from ._types import Role

DESCRIPTION = "Mint role-scoped Zoom SDK tokens (JWTs) and explain every problem in any such token."
EXAMPLES = f"""examples:
  sdksign serve                                   # development apps on 127.0.0.1:50051
  sdksign serve --config sdksign.toml --workers 4
  sdksign sign --meeting-number 94843468909 --role host --ttl 7200   # a web Meeting SDK token
  sdksign sign                                    # a native (desktop/mobile) Meeting SDK token
  sdksign sign --session math-101 --role participant --ttl 1h        # a Video SDK token
  sdksign verify "$TOKEN" --expect-meeting 94843468909
  sdksign verify - < token.txt

{EXIT_STATUSES}"""
# The modules of the server extra: without one of them, `serve` says how to install it.
SERVER_EXTRA = (
    *("grpc_health", "grpc_reflection", "grpc_status", "google.rpc"),
    *("structlog", "orjson", "msgspec"),
)


class UsageError(Exception):
    """The command cannot run as asked (exit status 2); the message says why."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    name = f"sdksign {args.command}"
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return Exit.USAGE
    except SdkSignError as exc:
        print(f"{name}: {exc.code.name}: {in_flags(exc.message)}", file=sys.stderr)
        tls = bool(args.tls or args.ca_file or args.cert_file)
        advice = hint(exc, args.target, tls)
        if advice:
            print(f"{name}: {advice}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return 130


def sdksign_version() -> str:
    try:
        return version("sdksign")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdksign",
        description=f"sdksign {sdksign_version()}: {DESCRIPTION}",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _version_option(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, options, run, summary in (
        ("serve", _serve_options, _serve_command, "run the gRPC server (needs sdksign[server])"),
        ("sign", _sign_options, _sign_command, "mint a token and print it"),
        ("verify", _verify_options, _verify_command, "diagnose a token (exit status 1: invalid)"),
    ):
        command = commands.add_parser(
            name,
            help=summary,
            description=f"sdksign {name} ({sdksign_version()}): {summary}",
            epilog=EXIT_STATUSES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _version_option(command)
        options(command)
        command.set_defaults(run=run)
    return parser


def _version_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"sdksign {sdksign_version()}")


def _serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--listen",
        type=_flags.listen,
        help="HOST:PORT to listen on, port 0 to 65535 (default: the config's, else 127.0.0.1:50051)",
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
        type=_flags.workers,
        default=os.environ.get("SDKSIGN_WORKERS") or None,
        help=f"worker processes sharing the port, 1 to {_flags.MAX_WORKERS} (default: "
        "$SDKSIGN_WORKERS, else one per core); 1 serves from this process",
    )
    serve.add_argument(
        "--drain",
        type=_flags.drain,
        help="how long to keep serving after SIGTERM, health NOT_SERVING, before the listener "
        "closes: seconds or a duration, 0 to 1h (default: the config's [server] drain, else 5; "
        "Ctrl-C skips it)",
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
    sign.add_argument(
        "--ttl",
        type=_flags.ttl,
        help="lifetime: seconds or a duration, e.g. 7200, 30m, 2h, 1h30m (30m to 48h; default 2h)",
    )
    sign.add_argument("--json", action="store_true", help="print token, sdk key and times as JSON")
    _connection_options(sign)


def _verify_options(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("token", help="the token, or - to read it from standard input")
    _target_option(verify)
    verify.add_argument("--app", help="check against this configured app only")
    verify.add_argument("--expect-meeting", help="the meeting number the token must be for")
    verify.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    _connection_options(verify)


def _target_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--target",
        default=os.environ.get("SDKSIGN_TARGET", DEFAULT_TARGET),
        help=f"the server, HOST:PORT (default: $SDKSIGN_TARGET or {DEFAULT_TARGET})",
    )


def _connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--bearer-file",
        type=Path,
        help="file holding this caller's bearer token (default: $SDKSIGN_BEARER_TOKEN)",
    )
    command.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system's CAs"
    )
    command.add_argument("--ca-file", type=Path, help="CA certificate (PEM): connect with TLS")
    command.add_argument("--cert-file", type=Path, help="client certificate (PEM), for mTLS")
    command.add_argument("--key-file", type=Path, help="client certificate's key (PEM), for mTLS")


def _serve_command(args: argparse.Namespace) -> int:
    """`sdksign serve`: the server's own code, imported now (it needs the server extra)."""
    try:
        from sdksign.server._cli import serve_command
    except ImportError as exc:
        missing = exc.name or ""
        if not any(missing == m or missing.startswith(f"{m}.") for m in SERVER_EXTRA):
            raise
        raise UsageError(
            f"needs the server extra (no module {missing!r}): pip install 'sdksign[server]'"
        ) from None
    return serve_command(args)


def _client(args: argparse.Namespace) -> Client:
    """A client for `args.target` with the TLS files and bearer token the options name."""
    if (args.cert_file is None) != (args.key_file is None):
        raise UsageError("give --cert-file and --key-file together")
    try:
        bearer = os.environ.get("SDKSIGN_BEARER_TOKEN") or None
        if args.bearer_file is not None:
            bearer = args.bearer_file.read_text(encoding="utf-8").strip()
        credentials = None
        if args.tls or args.ca_file or args.cert_file:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=args.ca_file.read_bytes() if args.ca_file else None,
                private_key=args.key_file.read_bytes() if args.key_file else None,
                certificate_chain=args.cert_file.read_bytes() if args.cert_file else None,
            )
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError("--bearer-file is not UTF-8 text") from None
    try:
        return Client(args.target, credentials=credentials, bearer_token=bearer)
    except ValueError:
        raise UsageError(
            "the bearer token (--bearer-file or $SDKSIGN_BEARER_TOKEN) must be one line"
        ) from None


def _sign_command(args: argparse.Namespace) -> int:
    role = Role[args.role.upper()] if args.role else None
    if args.session is not None and role is None:
        raise UsageError("--role is required with --session")
    with _client(args) as client:
        if args.session is not None and role is not None:
            signed = client.sign_video(args.session, role, app=args.app, ttl=args.ttl)
        else:
            signed = client.sign_meeting(args.meeting_number, role, app=args.app, ttl=args.ttl)
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
    return Exit.OK


def _verify_command(args: argparse.Namespace) -> int:
    token = sys.stdin.read().strip() if args.token == "-" else args.token  # noqa: S105
    with _client(args) as client:
        result = client.verify(token, app=args.app, expected_meeting_number=args.expect_meeting)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": result.valid,
                    "kind": result.kind,
                    "app": result.app,
                    "problems": [p.__dict__ for p in result.problems],
                    "signature": result.signature,
                    "secret_fingerprint": result.secret_fingerprint,
                    "tried_secret_fingerprints": list(result.tried_secret_fingerprints),
                    "header": result.header,
                    "claims": result.claims,
                },
                indent=2,
            )
        )
    else:
        print(result.explain())
    return Exit.OK if result.valid else Exit.INVALID
