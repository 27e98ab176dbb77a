"""The `sdksign` command's flag values: read, bounded, and refused with what is allowed.

Each reader is an argparse `type`: argparse names the flag ("argument --ttl: ..."),
the message says what was given and what the flag takes.
"""

from __future__ import annotations

import argparse

from ._durations import LONGEST_DURATION, duration_seconds, span
from ._limits import MAX_DRAIN, MAX_TTL, MIN_TTL

MAX_WORKERS = 256
MAX_PORT = 65535
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


def listen(text: str) -> str:
    """--listen: HOST:PORT, the port from 0 (any free one) to MAX_PORT."""
    problem = listen_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def listen_problem(address: str) -> str | None:
    """What is wrong with `address` as a HOST:PORT to listen on; None when nothing is."""
    host, colon, port = address.rpartition(":")
    form = "write HOST:PORT, e.g. 127.0.0.1:50051 (port 0: any free port)"
    if not colon or address.endswith("]") or not port:
        return f"{_shown(address)} has no port: {form}"
    if not host:
        return f"{_shown(address)} has no host: {form}, or 0.0.0.0:50051 for every interface"
    if not (port.isascii() and port.isdigit()):
        return f"{_shown(address)}: the port {_shown(port)} is not a number from 0 to {MAX_PORT}"
    digits = port.lstrip("0") or "0"
    if len(digits) > len(str(MAX_PORT)) or int(digits) > MAX_PORT:
        return f"{_shown(address)}: the port {port[:_SHOWN]} is out of range: ports are 0 to {MAX_PORT}"
    return None


def _shown(text: str) -> str:
    """repr(text), cut short: a message stays one short line whatever was given."""
    return repr(text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...")
