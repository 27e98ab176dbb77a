"""Verify: the wrappers a pasted token arrives in, peeled off one at a time.

Pure. People paste a token the way they found it: inside JSON quotes, after `Bearer `,
as `signature=...`, as a JSON member or a whole response body, URL-encoded. unwrap()
takes these off, outermost first, and says for each what it was and what to strip, so
that Verify can name it and still diagnose the token inside. A message names a
parameter or JSON field, never a value.

Nothing here runs for a token that starts as JWTs do, ends as base64url does and holds
no '%' (maybe_wrapped() is False): the valid-token path pays those three tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

# A JWT's header segment is base64url of '{"', whatever the signer.
_JWT_START = "eyJ"
# What a token can end with: base64url, its padding, or the dot of an empty signature.
_TOKEN_END = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.")
MAX_LAYERS = 6
# The parameter or field names a token goes by (lower case, without '_' and '-'), preferred
# over a value that merely looks like a token.
TOKEN_NAMES = frozenset(
    ["signature", "token", "jwt", "sdkjwt", "sdktoken", "sdksignature", "accesstoken", "sig"]
)
_QUOTES = {
    '"': "double quotes (a JSON string?)",
    "'": "single quotes",
    "`": "backticks (Markdown code?)",
}
_STRAY = "\"'`,;"
_BEARER = re.compile(r"(authorization\s*:\s*)?bearer\s+(.*)", re.I | re.S)
_PARAMETER = re.compile(r"[A-Za-z_][\w\-\[\]]{0,63}")
_MEMBER = re.compile(r'"[^"\\]{1,64}"\s*:')
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

# Said of the outermost wrapper only.
AS_SENT = (
    " (the SDK takes the text as it is, so as sent the token is invalid; the rest of this "
    "diagnosis is of the token inside)"
)


def maybe_wrapped(text: str) -> bool:
    """False for text that starts and ends as a bare token does, with no URL escape ('%')
    inside (no wrapper to look for)."""
    return not text.startswith(_JWT_START) or text[-1] not in _TOKEN_END or "%" in text


def unwrap(text: str) -> tuple[str, list[str]]:
    """The token inside `text` (white space trimmed), and for each wrapper taken off, outermost
    first, a message naming it and what to strip."""
    layers: list[str] = []
    for _ in range(MAX_LAYERS):
        peeled = _peel(text)
        if peeled is None:
            break
        inner, message = peeled
        if inner.strip() != inner:
            inner = inner.strip()
            message += "; leave out the white space around the token too"
        layers.append(message)
        text = inner
    return text, layers


def _peel(text: str) -> tuple[str, str] | None:
    """The text inside the outermost wrapper of `text`, and the message naming it; None: none."""
    for peel in _PEELERS:
        peeled = peel(text)
        if peeled is not None and peeled[0] and peeled[0] != text:
            return peeled
    return None


def _json_object(text: str) -> tuple[str, str] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return _named(
        _token_field(value) if isinstance(value, dict) else None,
        "the token is the {name} field of a JSON object (a response body?); send only that "
        "field's value",
    )


def _json_member(text: str) -> tuple[str, str] | None:
    """`"signature": "eyJ..."`, as copied out of a JSON body (a trailing comma too)."""
    if not _MEMBER.match(text):
        return None
    try:
        value = json.loads("{" + text.rstrip(",;") + "}")
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((name, token),) = value.items()
    if not isinstance(token, str):
        return None
    return token, (
        f'the token is written as the JSON member {_name(name)}: "…"; send only its value, '
        "without the name and the quotes"
    )


def _quoted(text: str) -> tuple[str, str] | None:
    if len(text) < 2 or text[0] != text[-1] or text[0] not in _QUOTES:
        return None
    inner = text[1:-1]
    if text[0] == '"':
        try:
            decoded = json.loads(text)  # a JSON string's escapes (\/, \n) undone
            inner = decoded if isinstance(decoded, str) else inner
        except ValueError:
            pass
    return inner, f"the token is wrapped in {_QUOTES[text[0]]}; send what is between them"


def _stray(text: str) -> tuple[str, str] | None:
    """A quote or comma left at one end, as when a copy from JSON starts or stops a character off."""
    inner = text.strip(_STRAY)
    if inner == text:
        return None
    return inner, (
        "the token has a quote or comma at its start or end (copied from JSON or code?); "
        "send it without them"
    )


def _bearer(text: str) -> tuple[str, str] | None:
    match = _BEARER.fullmatch(text)
    if match is None:
        return None
    if match[1]:
        return match[2], (
            "the token is an HTTP header line, 'Authorization: Bearer …'; send only what "
            "follows 'Bearer '"
        )
    return match[2], (
        "the token follows 'Bearer ' (an Authorization header's value); send it without 'Bearer '"
    )


def _url(text: str) -> tuple[str, str] | None:
    if not text.lower().startswith(("https://", "http://")):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return _named(
        _parameter_of(parts.query) or _parameter_of(parts.fragment),
        "the token is in a URL, as its parameter {name}; send only its value",
    )


def _parameter(text: str) -> tuple[str, str] | None:
    """`signature=eyJ...`, alone or among other parameters of a query string or form body."""
    return _named(
        _parameter_of(text.lstrip("?&")),
        "the token is given as the parameter {name}=… (a query string or form body?); send "
        "only its value",
    )


def _parameter_of(query: str) -> tuple[str, str] | None:
    """The name and value of the parameter of `query` holding the token, if one does.

    A name is an identifier; a value must not start with '=' or '.' (which is how the
    padding of a segment looks: "eyJ...=.eyJ..." is a token, not a parameter)."""
    pairs = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and _PARAMETER.fullmatch(name) and value and value[0] not in "=.":
            pairs.append((name, value))
    return _choose(pairs)


def _url_encoded(text: str) -> tuple[str, str] | None:
    escape = _ESCAPE.search(text)
    if escape is None:
        return None
    return unquote(text), f"the token is URL-encoded ({escape[0]} and the like); send it decoded"


def _token_field(value: dict[str, object]) -> tuple[str, str] | None:
    return _choose([(k, v) for k, v in value.items() if isinstance(v, str) and v])


def _choose(pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The pair named as tokens are, else the one value with a JWT's two dots; None: neither."""
    for name, value in pairs:
        if name.lower().replace("_", "").replace("-", "") in TOKEN_NAMES:
            return name, value
    dotted = [pair for pair in pairs if pair[1].count(".") == 2]
    return dotted[0] if len(dotted) == 1 else None


def _named(found: tuple[str, str] | None, message: str) -> tuple[str, str] | None:
    """The value of `found` (a name and the value holding the token), and `message` naming it
    where it says {name}; None when nothing was found."""
    if found is None:
        return None
    name, token = found
    return token, message.replace("{name}", _name(name))


def _name(name: str) -> str:
    """A parameter or field name as a message shows it: quoted, cut short."""
    return json.dumps(name if len(name) <= 40 else name[:40] + "…")


# Outermost first: a JSON member starts with a quote, a JSON object may hold one.
_PEELERS: tuple[Callable[[str], tuple[str, str] | None], ...] = (
    _json_object,
    _json_member,
    _quoted,
    _bearer,
    _url,
    _parameter,
    _url_encoded,
    _stray,
)
