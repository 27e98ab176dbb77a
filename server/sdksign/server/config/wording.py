"""How a refusal shows what it refuses, in one short line and never with a secret.

A value is cut short, a file name keeps its end, an entry of [[apps]] or [[callers]] is
named by its name, and a name that may be a secret written in the wrong place is not
shown at all.
"""

from __future__ import annotations

import re
from pathlib import Path

# How much of a refused value a message shows.
_SHOWN = 60
_SHOWN_FILE = 200
# Said in place of a name that may be a secret pasted where the name of a variable or a file
# belongs: such a name names nothing that exists, and a message must not echo it.
NOT_SHOWN = "not shown: it may be a secret written there by mistake"


def show(value: object) -> str:
    """repr(value), cut short: a message stays one short line whatever the value."""
    try:
        text = repr(value)
    except ValueError:  # an integer of more digits than Python prints
        return "a number of thousands of digits"
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def show_file(file: Path) -> str:
    """A file's name for a message, quoted; a long one keeps its end, where its name is."""
    text = repr(str(file))
    return text if len(text) <= _SHOWN_FILE else f"...{text[-_SHOWN_FILE:]}"


def show_named_file(file: Path, missing: bool) -> str:
    """show_file(file), unless the file is `missing` and its name has no folder and no
    extension, or looks like a secret (a Vault token has a dot): then a secret pasted
    where the file's name belongs is not shown."""
    name = file.name
    if missing and (not re.search(r"[./]", name) or may_be_secret(name)):
        return f"(the file named there; {NOT_SHOWN})"
    return show_file(file)


def named(array: str, index: int, name: str) -> str:
    """apps[0] ('web'): an entry of [[apps]] or [[callers]] by its index and its name."""
    return f"{array}[{index}] ({show(name)})"


# A secret (Zoom's Client Secret, a Vault token, token_urlsafe()) changes between upper case,
# lower case, digits and punctuation every few characters; a name (meeting, zoom-prod,
# ZoomMeetingSdk2024) a few times in all. Shorter pieces are taken for names.
_SECRET_LEAST = 16
_CHARACTER_CLASS = re.compile(r"[A-Z]+|[a-z]+|[0-9]+")
_PIECES = re.compile(r"[^/#\s]+")


def may_be_secret(text: str) -> bool:
    """Whether a piece of `text` (between slashes, '#' or white space) looks like a secret
    rather than a name: 16 characters or more, changing character class at least once in
    four characters."""
    for piece in _PIECES.findall(text):
        if len(piece) >= _SECRET_LEAST and len(_CHARACTER_CLASS.findall(piece)) * 4 > len(piece):
            return True
    return False


def show_name(text: str, what: str = "the name written there") -> str:
    """`text` (a name: a Vault path, a field, a user) quoted for a message, or said not to be
    shown when a piece of it looks like a secret written there by mistake."""
    return f"({what}; {NOT_SHOWN})" if may_be_secret(text) else show(text)
