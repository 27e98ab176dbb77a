"""The `sdksign` command: sign and verify tokens, or serve them.

`sign` and `verify` need only the client's dependencies (grpcio, protobuf,
googleapis-common-protos); `serve` imports the server (sdksign.server, the server
extra) when it runs, and without that extra says how to install it. The entry point,
sdksign.cli, quiets gRPC's own log lines before this module imports grpc.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc

from . import _claims, _flags
from ._addresses import each_address
from ._client import BEARER, DEFAULT_TARGET, DEFAULT_TIMEOUT, Client
from ._errors import SdkSignError
from ._exits import EXIT_STATUSES, Exit, exit_status, hint, in_flags, tries_each_address
from ._types import Role, meeting_request, video_request

DESCRIPTION = "Mint role-scoped Zoom SDK tokens (JWTs) and explain every problem in any such token."
EXAMPLES = f"""examples:
  sdksign serve                                   # development apps on 127.0.0.1:50051
  sdksign serve --config sdksign.toml --workers 4
  sdksign sign --meeting-number 94843468909 --role host --ttl 7200   # a web Meeting SDK token
  sdksign sign                                    # a native (desktop/mobile) Meeting SDK token
  sdksign sign --session math-101 --role participant --ttl 1h        # a Video SDK token
  sdksign sign --session s --role participant --audio-webrtc-mode 1 --geo-regions US,DE
  sdksign verify "$TOKEN" --expect-meeting 94843468909
  sdksign verify - < token.txt

{EXIT_STATUSES}"""
# The modules of the server extra: without one of them, `serve` says how to install it.
SERVER_EXTRA = (
    *("grpc_health", "grpc_reflection", "grpc_status"),
    *("structlog", "orjson", "msgspec", "prometheus_client"),
)
# How long each address may take to answer when tried alone, after a failed call (seconds).
EACH_ADDRESS_TIMEOUT = 3.0


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
        advice = _hint(exc, args)
        if advice:
            print(f"{name}: {advice}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return 130


def _hint(error: SdkSignError, args: argparse.Namespace) -> str | None:
    """What may help after `error`, each of the target's addresses tried alone if need be."""
    said: list[str] = []
    if tries_each_address(error):
        wait = min(args.timeout, EACH_ADDRESS_TIMEOUT)
        said = each_address(args.target, _credentials(args), wait)
    return hint(error, args.target, _uses_tls(args), args.timeout, said)


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
        ("grants", _grants_options, _grants_command, "list or remove Zoom users' grants"),
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
        "--admin-listen",
        type=_flags.admin_listen,
        metavar="HOST:PORT",
        help="where to serve GET /metrics, /healthz/live and /healthz/ready over HTTP, port 0 "
        "for any free one (default: the config's [server] admin_listen, else 127.0.0.1:9464); "
        "beyond loopback it takes TLS (the server's certificate) or --insecure",
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
        "$SDKSIGN_WORKERS, else one per core, at most the container's CPU limit); 1 serves "
        "from this process",
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
    sign.add_argument(
        "--start-as",
        default="",
        metavar="USER",
        help="with --role host: the Zoom user (email or user ID) to start the meeting as; "
        "the host's ZAK is printed on a second line (with --json: as zak)",
    )
    sign.add_argument(
        "--on-behalf-of",
        default="",
        metavar="USER",
        help="the Zoom user (email or user ID) who granted the app, to join on behalf of "
        "(meetings outside the app's account); the OBF token is printed on its own line "
        "(with --json: as obf_token)",
    )
    sign.add_argument("--json", action="store_true", help="print token, sdk key and times as JSON")
    _claims.add_claim_options(sign)
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
        type=_flags.target,
        default=os.environ.get("SDKSIGN_TARGET") or DEFAULT_TARGET,
        help=f"the server, HOST:PORT, no scheme (default: $SDKSIGN_TARGET or {DEFAULT_TARGET})",
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
    command.add_argument(
        "--timeout",
        type=_flags.timeout,
        default=DEFAULT_TIMEOUT,
        help=f"how long to wait for the answer, retries included: seconds or a duration, 1 to "
        f"{_flags.MAX_TIMEOUT} (default {DEFAULT_TIMEOUT:g})",
    )


def _serve_command(args: argparse.Namespace) -> int:
    """`sdksign serve`: the server's own code, imported now (it needs the server extra)."""
    try:
        from sdksign.server.runtime.cli import serve_command
    except ImportError as exc:
        missing = exc.name or ""
        if not any(missing == m or missing.startswith(f"{m}.") for m in SERVER_EXTRA):
            raise
        raise UsageError(
            f"needs the server extra (no module {missing!r}): pip install 'sdksign[server]'"
        ) from None
    return serve_command(args)


def _client(args: argparse.Namespace) -> Client:
    """A client for `args.target` with the TLS files, bearer token and timeout of the options."""
    credentials = _credentials(args)
    bearer = _bearer(args)
    try:
        return Client(
            args.target, credentials=credentials, bearer_token=bearer, timeout=args.timeout
        )
    except ValueError:
        raise UsageError(
            "the bearer token (--bearer-file or $SDKSIGN_BEARER_TOKEN) must be one line"
        ) from None


def _uses_tls(args: argparse.Namespace) -> bool:
    """Whether the options ask for TLS: --tls, --ca-file or --cert-file."""
    return bool(args.tls or args.ca_file or args.cert_file)


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS channel credentials from --tls, --ca-file, --cert-file and --key-file; None for
    plaintext. A file that is not PEM of its kind is refused naming its flag."""
    if (args.cert_file is None) != (args.key_file is None):
        raise UsageError("give --cert-file and --key-file together")
    if not _uses_tls(args):
        return None
    pem: dict[str, bytes] = {}
    for flag, path in (
        ("--ca-file", args.ca_file),
        ("--cert-file", args.cert_file),
        ("--key-file", args.key_file),
    ):
        if path is not None:
            pem[flag] = _read(path)
            problem = _flags.pem_problem(flag, path, pem[flag])
            if problem:
                raise UsageError(problem)
    return grpc.ssl_channel_credentials(
        root_certificates=pem.get("--ca-file"),
        private_key=pem.get("--key-file"),
        certificate_chain=pem.get("--cert-file"),
    )


def _bearer(args: argparse.Namespace) -> str | None:
    """The bearer token of --bearer-file, else of $SDKSIGN_BEARER_TOKEN; a leading "Bearer "
    (which the client adds itself) is left out, with a note."""
    bearer = os.environ.get("SDKSIGN_BEARER_TOKEN", "").strip() or None
    if args.bearer_file is not None:
        try:
            bearer = _read(args.bearer_file).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UsageError("--bearer-file is not UTF-8 text") from None
    if bearer is not None and bearer[: len(BEARER)].lower() == BEARER.lower():
        print(
            f"sdksign {args.command}: note: the bearer token starts with {BEARER!r}, which "
            "sdksign adds itself: sending what follows it",
            file=sys.stderr,
        )
        bearer = bearer[len(BEARER) :].strip()
    return bearer


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None


def _sign_command(args: argparse.Namespace) -> int:
    role = Role[args.role.upper()] if args.role else None
    for flag, given, kind in (
        ("--session", args.session, "a Video SDK token"),
        ("--meeting-number", args.meeting_number, "a web Meeting SDK token"),
    ):
        if given is not None and role is None:
            raise UsageError(f"--role is required with {flag} ({kind}): participant or host")
    if args.session is not None and role is not None:
        request = video_request(args.session, role, app=args.app, ttl=args.ttl)
    else:
        request = meeting_request(
            args.meeting_number,
            role,
            app=args.app,
            ttl=args.ttl,
            start_as=args.start_as,
            on_behalf_of=args.on_behalf_of,
        )
    try:
        _claims.set_claims(request, args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _client(args) as client:
        signed = client.sign(request)
    if args.json:
        answer = {
            "token": signed.token,
            "sdk_key": signed.sdk_key,
            "app": signed.app,
            "issued_at": signed.issued_at.isoformat(),
            "expires_at": signed.expires_at.isoformat(),
        }
        answer |= {"zak": signed.zak} if signed.zak else {}
        answer |= {"obf_token": signed.obf_token} if signed.obf_token else {}
        print(json.dumps(answer))
    else:
        print(signed.token)
        if signed.zak:
            print(signed.zak)
        if signed.obf_token:
            print(signed.obf_token)
    return Exit.OK


def _grants_options(grants: argparse.ArgumentParser) -> None:
    grants.add_argument("action", choices=("list", "remove"), help="list, or remove one user's")
    grants.add_argument(
        "user", nargs="?", default="", help="remove: the user's email or Zoom user ID"
    )
    grants.add_argument("--app", default="", help="the meeting app (default: the only one)")
    grants.add_argument("--json", action="store_true", help="print the grants as JSON lines")
    _target_option(grants)
    _connection_options(grants)


def _grants_command(args: argparse.Namespace) -> int:
    if args.action == "remove" and not args.user:
        raise UsageError("grants remove needs the user: an email or a Zoom user ID")
    if args.action == "list" and args.user:
        raise UsageError("grants list takes no user (--app names the app)")
    with _client(args) as client:
        if args.action == "remove":
            grants = [client.remove_grant(args.user, app=args.app)]
        else:
            grants, token = [], ""
            while True:  # every page
                page = client.list_grants(app=args.app, page_token=token)
                grants += page.grants
                token = page.next_page_token
                if not token:
                    break
    for grant in grants:
        if args.json:
            shown = grant.__dict__ | {"created_at": grant.created_at.isoformat()}
            print(json.dumps(shown))
        else:
            state = "broken: must authorize again" if grant.broken else "ok"
            removed = "removed " if args.action == "remove" else ""
            print(f"{removed}{grant.user_id}\t{grant.email}\t{grant.app}\t{state}")
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
