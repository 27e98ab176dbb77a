"""What a log line may carry: every token, with whatever is glued to it, replaced by its
fingerprint, and no field longer than MAX_FIELD_CHARS (redact_and_bound, a structlog
processor).

A caller's values reach a line only in their field's shape (zoom.rules.shown: the app,
the meeting number, the Zoom user...) or as their length and fingerprint; this is the net
under that, for every other field and every line.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from ..zoom.jwt import b64decode_lenient, fingerprint

# A string value longer than this is cut to it on the log line, with a marker; a list keeps
# this many items, its strings cut the same way.
MAX_FIELD_CHARS = 256
MAX_FIELD_ITEMS = 16
# A traceback is longer, and comes from the code.
MAX_EXCEPTION_CHARS = 8192


def redact_and_bound(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: in every string value (and every list's strings), first each whole token
    is replaced by its fingerprint, then the string is cut to MAX_FIELD_CHARS; a list is cut
    to MAX_FIELD_ITEMS. A token that the cut goes through was already replaced whole.

    A token is three runs of base64 characters (url-safe or standard, padded or not)
    joined by dots, whose first run decodes to text that starts like a JSON object
    (JSON white space, "{", then '"', white space or "}"), whatever its first characters
    are: `eyJ` for `{"`, `eyAi` for `{ "alg"`, `IHsi` for ` {"`. Its replacement runs to
    the end of its dotted run, so a token glued after it or put inside it goes too. A run
    followed by a dot and a signature's worth of url-safe characters is replaced the same
    way: a payload and signature whose header was cut off (every header is alike).

    One pass over the line, as cheap as can be: a string without a dot, as most are,
    costs one `in` and one len(); a dotted one seen before without a token, one set lookup.
    And bounded: past what the cut keeps, nothing is looked at.
    """
    for key, value in event.items():
        kind = value.__class__  # the usual cases first, tested faster than by isinstance
        if kind is str:
            if ("." in value and value not in _NO_TOKEN) or len(value) > MAX_FIELD_CHARS:
                event[key] = _cleaned(value, _limit(key))
        elif kind in _PLAIN:
            continue
        elif isinstance(value, str):
            event[key] = _cleaned(value, _limit(key))
        elif isinstance(value, list | tuple):
            event[key] = _cleaned_items(value)
    return event


# Values with nothing in them to redact or cut.
_PLAIN = frozenset({int, float, bool, type(None)})


def _limit(key: str) -> int:
    return MAX_EXCEPTION_CHARS if key == "exception" else MAX_FIELD_CHARS


def _cleaned(text: str, limit: int) -> str:
    """`text` with its tokens replaced, then cut to `limit` characters."""
    text = _redacted(text, limit)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def _cleaned_items(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    kept = [
        _cleaned(item, MAX_FIELD_CHARS) if isinstance(item, str) else item
        for item in items[:MAX_FIELD_ITEMS]
    ]
    if len(items) > MAX_FIELD_ITEMS:
        kept.append(f"…(+{len(items) - MAX_FIELD_ITEMS} items)")
    return kept


# A run of base64 characters (either alphabet, padded or not), a dot, another run, a dot, a
# third run: what any JWT looks like in text. The first run starts where no base64 character
# goes before it; possessive quantifiers keep each try linear in the text's length.
_B64 = r"[A-Za-z0-9_\-+/]"
_JWT_SHAPE = re.compile(rf"(?<!{_B64})({_B64}++)=*+\.{_B64}*+=*+\.{_B64}*+=*+")
# Base64 of JSON white space (" ", tab, newline, return) starts with I, C or D; of "{" then
# '"' or white space, with ey or ew; of "{}", with e3. A token may be glued to the end of
# other base64 characters ("Bearer" + token, "/verify/" + token): the first few of these
# near the start of the run are tried.
_HEADER_START = re.compile(r"[ICD]|e[wy3]")
# A run (url-safe, maybe empty), a dot and at least a signature's worth of url-safe
# characters (an HS256 signature is 43): what is left of a token whose header was cut off,
# whose header sits too deep in what was glued before it to be tried, or whose signature
# was put apart from the rest (h.p, then other text, then .s).
_SIGNATURE = 43
_SIGNED = re.compile(rf"(?<![A-Za-z0-9_\-])([A-Za-z0-9_\-]*+=*+\.)[A-Za-z0-9_\-]{{{_SIGNATURE}}}")
# The rest of a dotted run of base64 characters, from a token's start.
_RUN = re.compile(r"[A-Za-z0-9_\-+/=.]*+")
_HEADER_TRIES = 4
_GLUE = 64
# How much of a header is decoded to see whether it starts like a JSON object: 48 bytes.
_WINDOW = 64
_JSON_SPACE = b" \t\n\r"
# Strings already searched and found to hold no token (the method, the peers of open
# connections): most audit lines look each of their dotted values up here, and no further.
_NO_TOKEN: set[str] = set()
_NO_TOKEN_SIZE = 1024
_NO_TOKEN_LENGTH = 128


def _redacted(text: str, keep: int) -> str:
    """`text` with each token in it replaced by `<token FINGERPRINT>`, up to `keep`
    characters of the result: what comes after is left as it is, for the caller to cut.

    A token's replacement runs from where it starts to the end of its dotted run: whatever
    is glued after it (a second token, a letter and a token, the rest of a token it was put
    into) goes with it, so no payload and signature of a glued token are left behind."""
    if "." not in text or text in _NO_TOKEN:
        return text
    pieces: list[str] = []
    end = length = 0  # in text, and in the result so far
    found = _token_start(text, end, keep)
    while found is not None:
        start, stop = found[0], _run_end(text, *found)
        pieces += (text[end:start], f"<token {fingerprint(text[start:stop])}>")
        length += len(pieces[-2]) + len(pieces[-1])
        end = stop
        found = _token_start(text, end, end + keep - length) if length < keep else None
    if not pieces and len(text) <= _NO_TOKEN_LENGTH:
        _remember_no_token(text)
    pieces.append(text[end:])
    return "".join(pieces)


def _token_start(text: str, pos: int, limit: int) -> tuple[int, int] | None:
    """Where the first token at or after `pos` starts, if before `limit`, and where it ends
    at least: a header (a run that starts like a JSON object, then two dotted runs), or,
    for a token whose header was cut off or glued too deep into other characters to be
    tried, a run then a signature-sized run."""
    header = _header_after(text, pos, limit)
    signed = _SIGNED.search(text, pos, limit + _SIGNATURE)
    if signed is None or (header is not None and header[0] < signed.end(1)):
        return header
    return signed.span()


def _header_after(text: str, pos: int, limit: int) -> tuple[int, int] | None:
    match = _JWT_SHAPE.search(text, pos)
    while match and match.start() < limit:
        start = _header_start(match[1])
        if start is not None:
            return match.start() + start, match.end()
        # the next try starts at the second run, which may be a header
        match = _JWT_SHAPE.search(text, match.end(1))
    return None


def _run_end(text: str, start: int, least: int) -> int:
    """The end of the dotted run of base64 characters that starts at `start`, less any
    dots it ends with past `least` (a sentence's full stop)."""
    end = _RUN.match(text, start).end()  # type: ignore[union-attr]  # matches "" at least
    while end > least and text[end - 1] == ".":
        end -= 1
    return end


def _remember_no_token(text: str) -> None:
    if len(_NO_TOKEN) >= _NO_TOKEN_SIZE:
        _NO_TOKEN.clear()
    _NO_TOKEN.add(text)


def _header_start(run: str) -> int | None:
    """Where in `run` (base64 characters) a JWT header begins, if near its start."""
    for tries, candidate in enumerate(_HEADER_START.finditer(run, 0, _GLUE + 2)):
        if tries == _HEADER_TRIES:
            break
        if _starts_like_json_object(run[candidate.start() : candidate.start() + _WINDOW]):
            return candidate.start()
    return None


def _starts_like_json_object(segment: str) -> bool:
    """Whether `segment` (base64) decodes to JSON white space, "{", then '"' or "}"."""
    try:  # a length of 4n + 1 is no base64: its last character is left out
        text = b64decode_lenient(segment[: len(segment) - (len(segment) % 4 == 1)])
    except ValueError:
        return False
    text = text.lstrip(_JSON_SPACE)
    return text[:1] == b"{" and text[1:].lstrip(_JSON_SPACE)[:1] in (b'"', b"}")
