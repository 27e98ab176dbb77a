"""Credentials from where the file says they are: an app's secret, the store's password or
Vault's token, from an environment variable or a file (never written in the file itself).

No message ever holds a credential: a name that may be one pasted in the wrong place is
not shown, and a file's text is never quoted.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from .files import MAX_SECRET_BYTES, read_bounded, reason
from .wording import NOT_SHOWN, show, show_file, show_named_file

# A secret pasted where the name of its variable or file belongs names nothing that exists:
# such a name is shown only when it looks like a name, so that the secret is not echoed.
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def one_of(where: str, given: Mapping[str, object], *, required: bool = True) -> None:
    """Refuse more than one of the keys `given` (their values as written; None: absent), and
    none of them when one is `required`."""
    count = sum(value is not None for value in given.values())
    if count > 1 or (count == 0 and required):
        *first, last = given
        how = "exactly" if required else "at most"
        raise ConfigError(f"{where}: give {how} one of {', '.join(first)} and {last}")


def utf8(text: str) -> bytes | None:
    """`text` in UTF-8; None when it cannot be (os.environ keeps undecodable bytes as surrogates)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def secret_from_env(name: str, environ: Mapping[str, str], where: str) -> bytes:
    """The secret in the environment variable `name`, which `where` names."""
    secret = environ.get(name, "")
    if not secret:
        raise ConfigError(f"{where}: {_variable(name)} is empty or not set")
    encoded = utf8(secret)
    if encoded is None:
        raise ConfigError(f"{where}: environment variable {show(name)} is not UTF-8 text")
    return encoded


def _variable(name: str) -> str:
    """How a message names the unset environment variable `name`: quoted when it is an
    UPPER_CASE name, as variable names are and Zoom's secrets are not."""
    if _VARIABLE_NAME.fullmatch(name):
        return f"environment variable {show(name)}"
    return f"the environment variable named there ({NOT_SHOWN})"


def secret_from_file(path: Path, key: str, where: str) -> bytes:
    """The secret in the file at `path`, which the `key` of `where` names."""
    try:
        return file_text(path, f"{where}: {key} {show_file(path)}", "secret").encode()
    except OSError as exc:
        shown = show_named_file(path, exc.errno in (errno.ENOENT, errno.ENAMETOOLONG))
        raise ConfigError(f"{where}: {key} {shown}: {reason(exc)}") from None


def file_text(path: Path, shown: str, what: str) -> str:
    """The text in `path`, a file that holds a secret (`what`), stripped; `shown` begins
    the ConfigError when it is not UTF-8 or is empty. OSError when it cannot be read."""
    try:
        text = read_bounded(path, MAX_SECRET_BYTES).decode().strip()
    except UnicodeDecodeError:
        # Never the decoder's message: it quotes a byte of the secret.
        raise ConfigError(f"{shown} is not UTF-8 text; it must hold the {what} as text") from None
    if not text:
        raise ConfigError(f"{shown} is empty")
    return text


def modified(path: Path) -> float | None:
    """When the file at `path` was last written (epoch seconds); None when unknown."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None
