"""How a refusal shows what it refuses, in one short line and never with a secret.

A value is cut short, a file name keeps its end, an entry of [[apps]] or [[callers]] is
named by its name, and a name that may be a secret written in the wrong place is not
shown at all.
"""

from __future__ import annotations

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


def named(array: str, index: int, name: str) -> str:
    """apps[0] ('web'): an entry of [[apps]] or [[callers]] by its index and its name."""
    return f"{array}[{index}] ({show(name)})"
