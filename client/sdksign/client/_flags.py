"""The `sdksign` command's flag values: read, bounded, and refused with what is allowed.

Each reader is an argparse `type`: argparse names the flag ("argument --ttl: ..."),
the message says what was given and what the flag takes.
"""

from __future__ import annotations

import argparse
import re

from ._durations import LONGEST_DURATION, duration_seconds, span
from ._limits import MAX_DRAIN, MAX_TTL, MIN_TTL

MAX_WORKERS = 256
MAX_PORT = 65535
# The default ports of the gRPC listener and the admin listener, in the examples of messages.
GRPC_PORT = 50051
ADMIN_PORT = 9464
# The longest --timeout, in seconds: a call that needs longer is not coming back.
MAX_TIMEOUT = 600
# How much of a refused value a message shows.
_SHOWN = 40


def ttl(text: str) -> int:
    """--ttl: a token's lifetime, MIN_TTL to MAX_TTL seconds."""
    return _seconds(text, MIN_TTL, MAX_TTL, "7200, 30m, 2h, 1h30m")


def drain(text: str) -> int:
    """--drain: how long to keep serving after SIGTERM, 0 to MAX_DRAIN seconds."""
    return _seconds(text, 0, MAX_DRAIN, "0, 30, 30s, 5m")


def _seconds(text: str, low: int, high: int, examples: str) -> int:
    """Whole seconds ("7200") or a duration ("2h", "1h30m") from `low` to `high`."""
    if text.isascii() and text.isdigit() and len(text) <= LONGEST_DURATION:
        seconds: int | None = int(text)
    else:
        seconds = duration_seconds(text)
    allowed = (
        f"seconds from {low} to {high} ({span(low)} to {span(high)}) or a duration, e.g. {examples}"
    )
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a duration: write {allowed}")
    if not low <= seconds <= high:
        given = "" if text.isdigit() else f" ({seconds} s)"
        raise argparse.ArgumentTypeError(f"{_shown(text)}{given} is out of range: write {allowed}")
    return seconds


def workers(text: str) -> int:
    """--workers: a whole number from 1 to MAX_WORKERS."""
    count = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_WORKERS}, not {_shown(text)}"
        )
    return count


def timeout(text: str) -> int:
    """--timeout: how long a call may take, 1 to MAX_TIMEOUT seconds."""
    return _seconds(text, 1, MAX_TIMEOUT, "5, 30s, 2m")


def listen(text: str) -> str:
    """--listen: HOST:PORT, the port from 0 (any free one) to MAX_PORT."""
    return _listen(text, GRPC_PORT)


def admin_listen(text: str) -> str:
    """--admin-listen: as --listen, its messages' examples on the admin port."""
    return _listen(text, ADMIN_PORT)


def _listen(text: str, example_port: int) -> str:
    problem = listen_problem(text, example_port)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def target(text: str) -> str:
    """--target: the server's HOST:PORT, the port from 1 to MAX_PORT."""
    problem = _address_problem(text, 1, "localhost:50051")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def listen_problem(address: str, example_port: int = GRPC_PORT) -> str | None:
    """What is wrong with `address` as a HOST:PORT to listen on; None when nothing is (the
    examples of what is right on `example_port`)."""
    problem = _address_problem(address, 0, f"127.0.0.1:{example_port} (port 0: any free port)")
    if problem and " has no host: " in problem:
        return f"{problem}, or 0.0.0.0:{example_port} for every interface"
    return problem


def _address_problem(address: str, lowest_port: int, example: str) -> str | None:
    """What is wrong with `address` as HOST:PORT, ports `lowest_port` to MAX_PORT (`example`
    shows one that is right)."""
    host, colon, port = address.rpartition(":")
    form = f"write HOST:PORT, e.g. {example}"
    if "://" in address:
        return f"{_shown(address)} has a scheme: write HOST:PORT, without a scheme, e.g. {example}"
    if not colon or address.endswith("]") or not port:
        return f"{_shown(address)} has no port: {form}"
    if not host:
        return f"{_shown(address)} has no host: {form}"
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"{_shown(address)}: an IPv6 address goes in brackets: write [::1]:PORT"
    if not (port.isascii() and port.isdigit()):
        return f"{_shown(address)}: the port {_shown(port)} is not a number from {lowest_port} to {MAX_PORT}"
    digits = port.lstrip("0") or "0"
    if len(digits) > len(str(MAX_PORT)) or not lowest_port <= int(digits) <= MAX_PORT:
        return (
            f"{_shown(address)}: the port {port[:_SHOWN]} is out of range: ports are "
            f"{lowest_port} to {MAX_PORT}"
        )
    return None


# A PEM block's label: "CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"...
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_KEY_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY")


def pem_problem(flag: str, path: object, data: bytes) -> str | None:
    """What is wrong with `data`, read from `path`, as --ca-file or --cert-file (a PEM
    certificate) or --key-file (an unencrypted PEM private key); None when nothing is."""
    labels = _PEM_LABEL.findall(data)
    if flag == "--key-file":
        if any(label in _KEY_LABELS for label in labels):
            return None
        if b"ENCRYPTED PRIVATE KEY" in labels:
            return (
                f"{flag}: {path} is an encrypted key: gRPC takes it unencrypted "
                f"(openssl pkey -in {path} -out plain.key)"
            )
        wanted = "a PEM private key"
    else:
        if b"CERTIFICATE" in labels:
            return None
        wanted = "a PEM certificate"
    if not labels:
        begin = "PRIVATE KEY" if flag == "--key-file" else "CERTIFICATE"
        return f"{flag}: {path} holds no PEM (-----BEGIN {begin}-----)"
    return f"{flag}: {path} holds a {labels[0].decode()}, not {wanted}"


def _shown(text: str) -> str:
    """repr(text), cut short: a message stays one short line whatever was given."""
    return repr(text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...")
