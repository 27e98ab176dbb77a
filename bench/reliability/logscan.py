"""The last check: no line any server (or gateway) logged in the run holds a whole token (three
base64url segments whose first decodes to JSON), a token's payload or signature whatever
separators surround it, any configured secret, or any token the stand-in of Zoom's API
handed out."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from pathlib import Path

from sdksign.server import fingerprint

from .common import Row, Soak

# A whole run of base64 characters (either alphabet, padded or not) and dots. Matched whole,
# so the scan is linear: a pattern that needs a dot would be tried again at each character
# of a long dotless run (a 64 KiB body the fuzz sends took most of a minute a line).
_RUN = re.compile(r"[A-Za-z0-9_\-+/=.]+")
# An HS256 signature in base64url: 32 bytes, 43 characters.
SIGNATURE_CHARS = 43


def whole_tokens(line: str) -> Iterator[str]:
    """What in `line` could give back a live token: three consecutive dotted segments whose
    first decodes to JSON (a token), and any segment followed by a dot and a signature's
    worth of base64url characters (what is left of a token whose header was cut off or
    glued to something else: the header is the same in every token, so a payload and its
    signature are a live token).

    This is the oracle of `make soak`'s log scan and of the redactor's property tests
    (tests/unit/test_redact.py): it is written apart from the redactor, on purpose."""
    for run in _RUN.finditer(line):
        parts = run.group().split(".")
        for i in range(len(parts) - 1):
            if not parts[i]:
                continue
            if _signature_sized(parts[i + 1]):
                yield ".".join(parts[i : i + 2])
            elif i + 2 < len(parts) and parts[i + 1] and _decodes_to_json(parts[i]):
                yield ".".join(parts[i : i + 3])


# A whole run of base64url characters, and of either base64 alphabet: matched whole, as _RUN.
_URLSAFE_RUN = re.compile(r"[A-Za-z0-9_-]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9_\-+/]+")
# A payload glued after a separator's last characters ("2E" of "%2E", "u002e" of "\\u002e")
# starts this far into its run at most.
_GLUE = 8
_JSON_START = re.compile(rb"[ \t\n\r]*\{[ \t\n\r]*[\"}]")


def token_pieces(line: str) -> Iterator[str]:
    """What in `line` could be a token's signature or payload, whatever surrounds it: the
    dots of its token written as ",", "%2E" or "\\u002e", put apart by white space, or
    glued to other characters.

    A signature is 43 base64url characters, a token's payload longer still (its JSON has
    the SDK key and two times): so any run of SIGNATURE_CHARS or more base64url characters
    is one, or a run of either base64 alphabet that long whose start (within a separator's
    leftover characters) decodes to a JSON object: a payload in standard base64. Nothing a
    log line shows of its own is a run that long (the server shows a caller's value only in
    a shape that has none: zoom.rules). One pass over the line's runs: linear in its length.
    """
    for run in _URLSAFE_RUN.finditer(line):
        if run.end() - run.start() >= SIGNATURE_CHARS:
            yield run.group()
    for run in _BASE64_RUN.finditer(line):
        text = run.group()
        if len(text) >= SIGNATURE_CHARS and ("+" in text or "/" in text) and _json_at_start(text):
            yield text


def _json_at_start(run: str) -> bool:
    """Whether `run` decodes, from one of its first _GLUE characters, to a JSON object's start."""
    for at in range(_GLUE):
        window = run[at : at + 12].replace("+", "-").replace("/", "_")
        try:
            if _JSON_START.match(base64.urlsafe_b64decode(window)):
                return True
        except (ValueError, binascii.Error):
            continue
    return False


def _signature_sized(segment: str) -> bool:
    return len(re.match(r"[A-Za-z0-9_-]*", segment).group()) >= SIGNATURE_CHARS  # type: ignore[union-attr]


def _decodes_to_json(segment: str) -> bool:
    segment = segment.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return False
    return True


class Secrets:
    """Finds any of many secrets in a line in about the line's length, not the line's length
    times the secrets' count: the Zoom scenarios add every token the stand-in handed out
    (tens of thousands), and a 30 MB log times 30,000 secrets would take hours. Each secret
    of PREFIX or more characters is looked up by its first PREFIX characters at each place
    in the line's runs of characters secrets are made of; shorter ones are searched for."""

    PREFIX = 12

    def __init__(self, secrets: dict[str, str]) -> None:
        self.short = [(name, s) for name, s in secrets.items() if 0 < len(s) < self.PREFIX]
        self.by_prefix: dict[str, list[tuple[str, str]]] = {}
        for name, s in secrets.items():
            if len(s) >= self.PREFIX:
                self.by_prefix.setdefault(s[: self.PREFIX], []).append((name, s))
        alphabet = "".join(sorted({c for s in secrets.values() for c in s})) or "x"
        self.runs = re.compile(f"[{re.escape(alphabet)}]{{{self.PREFIX},}}")

    def first_in(self, line: str) -> str | None:
        """The name of a secret `line` holds, if any."""
        for name, s in self.short:
            if s in line:
                return name
        for run in self.runs.finditer(line):
            text = run.group()
            for at in range(len(text) - self.PREFIX + 1):
                for name, s in self.by_prefix.get(text[at : at + self.PREFIX], ()):
                    if text.startswith(s, at):
                        return name
        return None


def scan_logs(soak: Soak, row: Row) -> None:
    lines = token_lines = secret_lines = 0
    first_token = first_secret = ""
    secrets = Secrets({**soak.secrets, **soak.handed_out})
    for path in soak.logs:
        for number, line in _numbered_lines(path):
            lines += 1
            token = next(whole_tokens(line), None) or next(token_pieces(line), None)
            if token is not None:
                token_lines += 1
                first_token = first_token or f"{path.name}:{number}, token {fingerprint(token)}"
            secret = secrets.first_in(line)
            if secret is not None:
                secret_lines += 1
                shown = secret if secret in soak.handed_out else f"${secret}"
                first_secret = first_secret or f"{path.name}:{number}, {shown}"
    row.note(
        f"{lines:,} lines in {len(soak.logs)} log files; "
        f"{len(soak.secrets) + len(soak.handed_out):,} secrets and handed-out tokens looked for"
    )
    if token_lines:
        row.miss(f"{token_lines:,} lines hold a whole token (first: {first_token})")
    if secret_lines:
        row.miss(f"{secret_lines:,} lines hold a configured secret (first: {first_secret})")


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        return
    with path.open(errors="replace") as file:
        yield from enumerate(file, start=1)
