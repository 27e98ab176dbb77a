"""A Redis store's settings, as [rate_limits] and [grants] both give them: its URL, an
ACL user, a password from the environment or a file, a CA for rediss://, and the redis
extra installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from .credentials import one_of, secret_from_env, secret_from_file
from .files import certificates
from .model import RateLimitStore, StoreError
from .urls import store_url


class RedisTable(Protocol):
    """The keys a table with a Redis store has (schema's RateLimitsTable and GrantsTable)."""

    @property
    def username(self) -> str | None: ...
    @property
    def password_env(self) -> str | None: ...
    @property
    def password_file(self) -> str | None: ...
    @property
    def tls_ca_file(self) -> str | None: ...
    @property
    def timeout(self) -> float: ...


def redis_store(
    where: str,
    url: str,
    table: RedisTable,
    folder: Path,
    environ: Mapping[str, str],
    on_store_error: StoreError = "local",
) -> RateLimitStore:
    """The Redis store of the table named `where` ("[rate_limits]"), its secrets read."""
    host, port, db, tls = store_url(url, where)
    env, file = table.password_env, table.password_file
    one_of(where, {"password_env": env, "password_file": file}, required=False)
    password = None
    if env is not None:
        password = secret_from_env(env, environ, where)
    elif file is not None:
        password = secret_from_file(folder / file, "password_file", where)
    ca = None
    if table.tls_ca_file is not None:
        if not tls:
            raise ConfigError(f"{where} tls_ca_file needs a rediss:// store (TLS)")
        ca = certificates(folder / table.tls_ca_file, "tls_ca_file", where)
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            f"{where} store needs the redis extra, not installed: pip install 'sdksign[redis]'"
        )
    return RateLimitStore(
        host=host,
        port=port,
        db=db,
        tls=tls,
        ca=ca,
        username=table.username,
        password=password,
        timeout=table.timeout,
        on_store_error=on_store_error,
    )
