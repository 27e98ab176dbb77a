"""The values of the OTLP exporter's headers: credentials, often, never shown anywhere.

OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS are read as the SDK
reads them: comma-separated name=value pairs, each URL-decoded (a piece without a name
before its "=" is taken for a value: the SDK quotes it when it refuses it). `hidden`
takes every value out of a text (a log line, an error) in each form it may take there:
as configured, decoded, escaped as repr() shows it, and each of its white-space-separated
pieces of MIN_PIECE characters or more (a base64 credential wrapped over lines). `control_character` finds a
value no HTTP or gRPC header can carry (CR, LF, NUL...), to refuse it at the start.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from urllib.parse import unquote

HIDDEN = "<hidden>"
# A piece of a value is hidden on its own when at least this long ("Basic" is not; "Bearer"
# is, which hides a word too many, never too few).
MIN_PIECE = 6
# The variables whose values the trace exporter reads, the first non-empty one winning.
READ = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
# A header's name as the SDK reads it (an HTTP token); before the first "=" of a piece.
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What no header value can hold: the C0 controls but tab, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _pairs(value: str) -> Iterator[tuple[str, str, str]]:
    """Each header in a variable's `value`: its name ("" when none), its value as written
    and its value decoded."""
    for piece in value.split(","):
        name, _, written = piece.partition("=")
        if not _NAME.fullmatch(name.strip()):  # "Bearer abc==": all of it is a value
            name, written = "", piece
        if written := written.strip():
            yield unquote(name).strip().lower(), written, unquote(written).strip()


def _forms(environ: Mapping[str, str]) -> list[str]:
    """Every form of every header value of every OTEL_*HEADERS variable, longest first."""
    found: set[str] = set()
    for variable, value in environ.items():
        if not (variable.startswith("OTEL_") and variable.endswith("HEADERS")):
            continue
        for _name, written, decoded in _pairs(value):
            found.update((written, decoded, repr(decoded)[1:-1]))
            found.update(piece for piece in decoded.split() if len(piece) >= MIN_PIECE)
    found.discard("")
    return sorted(found, key=len, reverse=True)


def hidden(text: str, environ: Mapping[str, str]) -> str:
    """`text` with each OTLP header value in `environ` replaced by HIDDEN."""
    for form in _forms(environ):
        text = text.replace(form, HIDDEN)
    return text


def control_character(environ: Mapping[str, str]) -> str | None:
    """Why the headers the trace exporter reads cannot be sent (one line, naming the
    variable and the header, never its value), or None."""
    variable = next((name for name in READ if environ.get(name)), None)
    if variable is None:
        return None
    for name, written, decoded in _pairs(environ[variable]):
        if _CONTROL.search(written) or _CONTROL.search(decoded):
            header = f"header {name!r}" if name else "a header without a name"
            return (
                f"{variable}: the value of {header} holds a control character (CR, LF, "
                "NUL...), which no HTTP or gRPC header can carry (the value is not shown)"
            )
    return None
