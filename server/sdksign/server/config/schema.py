"""The configuration file's shape: its tables, their keys, types, defaults and simple bounds.

Each table is a msgspec Struct, ConfigFile the whole file; msgspec.convert turns a TOML
document into them or refuses it (config.refusals words the refusal). What a schema
cannot say, such as one key of two or names that must exist, config.load checks.

msgspec rather than pydantic: it is small and fast, a Struct is a plain class with no
runtime model magic, and its errors carry the JSON path of the refused value
(`$.apps[0].kind`), from which config.refusals writes its own message.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from sdksign.client._durations import duration_seconds

from ..errors import ConfigError
from ..zoom.rules import ROLES, Sdk
from .model import (
    DEFAULT_DRAIN,
    DEFAULT_GRANTS_TIMEOUT,
    DEFAULT_LISTEN,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_ZOOM_API_URL,
    DEFAULT_ZOOM_OAUTH_URL,
    DEFAULT_ZOOM_TIMEOUT,
    MAX_BURST,
    MAX_PREVIOUS_VERSIONS,
    MAX_RATE,
    MAX_STORE_TIMEOUT,
    MAX_ZOOM_TIMEOUT,
    MIN_RATE,
    StoreError,
)
from .wording import show

# A string with something besides whitespace (msgspec's pattern is searched for, not matched).
NonBlank = Annotated[str, Meta(pattern=r"\S")]
# A string of at least one character, spaces included.
NonEmpty = Annotated[str, Meta(min_length=1)]
# Seconds, or a string such as "30s" or "1h30m": parse_duration reads it, the loader bounds it.
Duration = int | str
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)

NOT_A_DURATION = "is not a duration; write seconds or a string like '30s', '2h', '1h30m'"


def parse_duration(value: object, what: str) -> int:
    """Seconds from an integer or a string such as "30s", "90m", "2h" or "1h30m"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    seconds = duration_seconds(value) if isinstance(value, str) else None
    if seconds is not None:
        return seconds
    raise ConfigError(f"{what}: {show(value)} {NOT_A_DURATION}")


# Each table refuses a key it does not name (forbid_unknown_fields).
class ServerTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[server]: the listener and its timings."""

    listen: NonEmpty = DEFAULT_LISTEN  # HOST:PORT
    # HOST:PORT: metrics and health over HTTP. None: not set here (DEFAULT_ADMIN_LISTEN, or
    # a free port when another server has that one).
    admin_listen: NonEmpty | None = None
    clock_skew: Duration = 30  # at most MAX_CLOCK_SKEW
    drain: Duration = DEFAULT_DRAIN  # at most MAX_SHUTDOWN_GRACE
    shutdown_grace: Duration = 10  # at most MAX_SHUTDOWN_GRACE
    log_level: LogLevel = "info"
    # Spans carry the meeting number (sdksign.meeting) only when this is true.
    trace_meeting_numbers: bool = False
    # PEM files, relative to the configuration file: both or neither; the client CA needs both.
    tls_cert_file: NonBlank | None = None
    tls_key_file: NonBlank | None = None
    tls_client_ca_file: NonBlank | None = None


class S2sTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[apps.s2s]: the Server-to-Server OAuth app that asks Zoom for hosts' ZAKs, its client
    secret in exactly one of client_secret_env, client_secret_file and client_secret_vault."""

    account_id: NonBlank
    client_id: NonBlank
    client_secret_env: NonBlank | None = None
    client_secret_file: NonBlank | None = None  # relative to the configuration file
    client_secret_vault: NonBlank | None = None  # <mount>/data/<path>#<field> ([vault])


class AppTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[[apps]]: one Zoom SDK app, its secret in exactly one of secret_env, secret_file and
    secret_vault."""

    name: NonBlank  # unique
    kind: Sdk
    sdk_key: NonBlank  # unique
    secret_env: NonBlank | None = None
    secret_file: NonBlank | None = None  # relative to the configuration file
    secret_vault: NonBlank | None = None  # <mount>/data/<path>#<field>: a KV v2 field ([vault])
    # Secrets being rotated out: Verify still accepts them.
    previous_secret_envs: tuple[NonEmpty, ...] = ()
    previous_secret_files: tuple[NonEmpty, ...] = ()
    # Meeting apps only: the account's S2S OAuth app, for host starts (SignRequest.start_as).
    s2s: S2sTable | None = None


class RuleTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[anonymous], and the rule part of each [[callers]]: what its callers may do."""

    apps: tuple[NonEmpty, ...] | None = None  # names of [[apps]]; absent: every app
    roles: tuple[NonEmpty, ...] = ROLES  # each one of ROLES
    max_ttl: Duration | None = None  # from MIN_TTL to MAX_TTL
    meetings: tuple[NonEmpty, ...] | None = None  # patterns; absent: any meeting
    sessions: tuple[NonEmpty, ...] | None = None  # patterns; absent: any session
    verify: bool = True
    # Names of [[apps]] whose tokens Verify checks for these callers; absent: the same as apps.
    verify_apps: tuple[NonEmpty, ...] | None = None
    # Requests per second (NaN fails the bounds); absent: no limit.
    rate: Annotated[float, Meta(ge=MIN_RATE, le=MAX_RATE)] | None = None
    # The bucket's size: at least 1 with a rate; absent: the rate rounded down, at least 1.
    burst: Annotated[int, Meta(ge=0, le=MAX_BURST)] | None = None
    # The Zoom users (emails or user IDs; patterns as in meetings) whose meetings these
    # callers may start (SignRequest.start_as); absent: none.
    start_as: tuple[NonEmpty, ...] = ()
    # The Zoom users (emails or user IDs, patterns) these callers may join on behalf of
    # (SignRequest.on_behalf_of); absent: none.
    on_behalf_of: tuple[NonEmpty, ...] = ()
    # Whether these callers may begin, complete, list and remove users' grants.
    grants: bool = False


class CallerTable(RuleTable, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[[callers]]: a caller's name, exactly one way it proves who it is, and its rule."""

    name: NonBlank  # unique, and not ANONYMOUS
    token_sha256: Annotated[str, Meta(pattern=r"\A[0-9a-fA-F]{64}\Z")] | None = None  # unique
    cert_identity: NonBlank | None = None  # a URI SAN, a DNS SAN or a CN; unique


class RateLimitsTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[rate_limits]: the store every worker and replica keeps the rate limits in."""

    store: NonBlank  # redis://HOST[:PORT][/DB] or rediss://...; never a credential in it
    username: NonBlank | None = None  # a Redis ACL user; absent: "default"
    # At most one of the two; the file's path is relative to the configuration file.
    password_env: NonBlank | None = None
    password_file: NonBlank | None = None
    tls_ca_file: NonBlank | None = None  # rediss:// only: a CA beside the system's
    # Seconds a call may wait for the store (NaN fails `gt`).
    timeout: Annotated[float, Meta(gt=0, le=MAX_STORE_TIMEOUT)] = DEFAULT_STORE_TIMEOUT
    on_store_error: StoreError = "local"


class VaultTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[vault]: the Vault or OpenBao that holds the secrets of the apps with secret_vault."""

    address: NonBlank  # https://HOST:PORT; http:// only to loopback
    # Exactly one: the token's file (relative to the configuration file; read again on every
    # refresh, so that Vault Agent may renew it) or its environment variable.
    token_file: NonBlank | None = None
    token_env: NonBlank | None = None
    tls_ca_file: NonBlank | None = None  # https only: the CA of Vault's certificate
    request_timeout: Duration = 5  # from 1 s to MAX_VAULT_TIMEOUT
    refresh: Duration = 300  # 0: only on SIGHUP; at most MAX_VAULT_REFRESH
    # Live KV versions before the newest that still verify.
    previous_versions: Annotated[int, Meta(ge=0, le=MAX_PREVIOUS_VERSIONS)] = 1


class GrantsTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[grants]: where users' grants are kept (joins outside the account) and the key that
    seals their tokens, in at most one of key_env and key_file (none: a development key
    file made beside the development apps)."""

    # "sqlite:PATH" (relative to the configuration file) or redis:// / rediss://; absent:
    # grants.db in the state folder beside the development apps.
    store: NonBlank | None = None
    username: NonBlank | None = None  # Redis, as in [rate_limits]
    password_env: NonBlank | None = None
    password_file: NonBlank | None = None
    tls_ca_file: NonBlank | None = None
    key_env: NonBlank | None = None  # 32 bytes, base64
    key_file: NonBlank | None = None
    key_vault: NonBlank | None = None  # <mount>/data/<path>#<field> ([vault]); its versions rotate
    # Keys being rotated out: they still open what they sealed (docs/join.md).
    previous_key_envs: tuple[NonEmpty, ...] = ()
    timeout: Annotated[float, Meta(gt=0, le=MAX_ZOOM_TIMEOUT)] = DEFAULT_GRANTS_TIMEOUT


class ZoomTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[zoom]: Zoom's OAuth server and REST API, for the ZAKs of host starts."""

    oauth_url: NonBlank = DEFAULT_ZOOM_OAUTH_URL  # https://; http:// only to loopback
    api_url: NonBlank = DEFAULT_ZOOM_API_URL  # https://; http:// only to loopback
    # Seconds one request to Zoom may take (NaN fails `gt`).
    timeout: Annotated[float, Meta(gt=0, le=MAX_ZOOM_TIMEOUT)] = DEFAULT_ZOOM_TIMEOUT


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole file."""

    server: ServerTable = msgspec.field(default_factory=ServerTable)
    apps: Annotated[tuple[AppTable, ...], Meta(min_length=1)]
    callers: tuple[CallerTable, ...] = ()
    anonymous: RuleTable | None = None  # absent: ANONYMOUS_DEFAULT
    rate_limits: RateLimitsTable | None = None  # absent: each worker keeps its own buckets
    vault: VaultTable | None = None  # needed by secret_vault
    zoom: ZoomTable = msgspec.field(default_factory=ZoomTable)
    grants: GrantsTable = msgspec.field(default_factory=GrantsTable)


def keys(table: type[msgspec.Struct]) -> frozenset[str]:
    """The keys `table` allows."""
    return frozenset(table.__struct_fields__)


# Each table by its name in the file: a refusal lists the keys of the table it is in.
TABLES: dict[str, type[msgspec.Struct]] = {
    "server": ServerTable,
    "apps": AppTable,
    "callers": CallerTable,
    "anonymous": RuleTable,
    "rate_limits": RateLimitsTable,
    "vault": VaultTable,
    "zoom": ZoomTable,
    "grants": GrantsTable,
    "s2s": S2sTable,
}
