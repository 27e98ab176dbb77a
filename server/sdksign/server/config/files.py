"""Reading the files a configuration names, each bounded in size: the TOML file itself, and
the PEM files of its certificates and keys. Every failure is a ConfigError naming the file.
"""

from __future__ import annotations

import errno
import ssl
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .wording import show_file, show_named_file

# Files are read up to these sizes: a secret is a line, a certificate chain a few KiB.
MAX_CONFIG_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 << 10
MAX_PEM_BYTES = 1 << 20


def read_bounded(file: Path, limit: int) -> bytes:
    """The bytes of `file`; OSError when it cannot be read or holds more than `limit` bytes."""
    try:
        with file.open("rb") as stream:
            data = stream.read(limit + 1)
    except ValueError:  # a NUL in the name
        raise OSError(errno.EINVAL, "not a file name (it holds a NUL character)") from None
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def reason(exc: OSError) -> str:
    """Why a file could not be read or written, in the words of the operating system."""
    return exc.strerror or str(exc)


def read_document(path: Path) -> dict[str, Any]:
    """The TOML document in `path`."""
    try:
        text = read_bounded(path, MAX_CONFIG_BYTES).decode()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except ValueError:  # an integer of more than 4300 digits
        raise ConfigError(f"{path}: not valid TOML: a number is too long") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def pem(file: Path, key: str, where: str = "[server]") -> bytes:
    """The PEM file `file`, named by the `key` of the table `where` that gives it."""
    try:
        data = read_bounded(file, MAX_PEM_BYTES)
    except OSError as exc:
        shown = show_named_file(file, exc.errno in (errno.ENOENT, errno.ENAMETOOLONG))
        raise ConfigError(f"{where} {key} {shown}: {reason(exc)}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{where} {key} {show_file(file)} is not PEM")
    return data


def certificates(file: Path, key: str, where: str) -> bytes:
    """The PEM CA certificates in `file`, checked as ssl will read them."""
    data = pem(file, key, where)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, ValueError):  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"{where} {key} {show_file(file)} holds no PEM certificate") from None
    return data
