"""[grants]: where users' grants are kept and the key that seals their tokens.

The defaults cost nothing until a grant is used: with no store, grants.db in the state folder
beside the development apps (processes on one host share it); with no key, a development key
file beside it, made with mode 0600 on first use (dev_grant_key), as the development apps are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from .credentials import one_of, secret_from_env, secret_from_file
from .devapps import dev_apps_file
from .files import reason
from .keys import new_key_text, read_key
from .model import GrantsSettings, RateLimitStore
from .schema import GrantsTable
from .stores import redis_store
from .urls import store_url
from .vaultapps import parsed_reference

_GRANTS = "[grants]"
GRANTS_FILE = "grants.db"
DEV_KEY_FILE = "grant-key"


def grants_settings(table: GrantsTable, folder: Path, environ: Mapping[str, str]) -> GrantsSettings:
    """[grants] read: the store, its credentials and the keys."""
    given = {"key_env": table.key_env, "key_file": table.key_file, "key_vault": table.key_vault}
    one_of(_GRANTS, given, required=False)
    key = None
    vault = None
    if table.key_vault is not None:
        vault = parsed_reference(table.key_vault, _GRANTS, "key_vault")
    elif table.key_env is not None:
        key = read_key(secret_from_env(table.key_env, environ, _GRANTS), f"{_GRANTS} key_env")
    elif table.key_file is not None:
        text = secret_from_file(folder / table.key_file, "key_file", _GRANTS)
        key = read_key(text, f"{_GRANTS} key_file")
    previous = tuple(
        read_key(secret_from_env(name, environ, _GRANTS), f"{_GRANTS} previous_key_envs")
        for name in table.previous_key_envs
    )
    store = table.store
    if store is None or store.startswith("sqlite:"):
        if table.password_env or table.password_file or table.username or table.tls_ca_file:
            raise ConfigError(f"{_GRANTS}: username, password and tls_ca_file are for Redis")
        path = None if store is None else folder / store.removeprefix("sqlite:")
        return GrantsSettings(
            sqlite=path, key=key, previous_keys=previous, timeout=table.timeout, vault=vault
        )
    return GrantsSettings(
        redis=_redis(table, store, folder, environ),
        key=key,
        previous_keys=previous,
        timeout=table.timeout,
        vault=vault,
    )


def _redis(
    table: GrantsTable, store: str, folder: Path, environ: Mapping[str, str]
) -> RateLimitStore:
    try:
        store_url(store, _GRANTS)
    except ConfigError as error:
        raise ConfigError(f"{_GRANTS} store: sqlite:PATH, or {error}") from None
    return redis_store(_GRANTS, store, table, folder, environ)


def state_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder of the development apps, where the default grant store and key live."""
    return dev_apps_file(environ).parent


def dev_grant_key(folder: Path) -> bytes:
    """The development grant key in `folder`, made (mode 0600) on first use; processes
    starting at once all end up with the key of the one that linked its file first."""
    path = folder / DEV_KEY_FILE
    if not path.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, written = tempfile.mkstemp(dir=folder, prefix=".grant-key-")  # mode 0600
            try:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(new_key_text() + "\n")
                os.link(written, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(written)
        except OSError as error:
            raise ConfigError(f"{path}: cannot create the grant key: {reason(error)}") from None
    try:
        return read_key(path.read_bytes(), str(path))
    except OSError as error:
        raise ConfigError(f"{path}: unreadable grant key: {reason(error)}") from None
