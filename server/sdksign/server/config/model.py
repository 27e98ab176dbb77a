"""Configuration: which SDK apps exist, their secrets, and the server's settings.

Three sources, the first that applies wins:

1. a TOML file (`--config`), which is then the whole configuration;
2. Zoom's sample variables, `ZOOM_MEETING_SDK_KEY`/`ZOOM_MEETING_SDK_SECRET` and
   `ZOOM_VIDEO_SDK_KEY`/`ZOOM_VIDEO_SDK_SECRET`;
3. development apps with random secrets, kept in one file per user (dev_apps_file()).

Every problem raises ConfigError with one line that names it; no secret is ever
part of that line. Nothing else escapes load_config: a file that cannot be read or
is not UTF-8, a value of the wrong type, NaN, infinity or a number out of range are
all ConfigErrors naming the key and what it allows.

The file's shape (its tables, their keys, types, defaults and simple bounds) is a
schema of msgspec Structs, ConfigFile and its tables; the loader then checks what a
schema cannot say (one key of two, names that must be unique or must exist,
durations, rates and bursts together) and reads the secrets and PEM files into the
runtime objects; Vault (secret_vault, through config.vault) is read last, once all the rest
is known to be valid, and again by vault_refreshed while serving.

msgspec rather than pydantic: it is small and fast, a Struct is a plain class with no
runtime model magic, and its errors carry the JSON path of the refused value
(`$.apps[0].kind`), from which this module writes its own message.
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import ssl
import tempfile
import tomllib
import urllib.parse
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from sdksign.client._durations import duration_seconds
from sdksign.client._limits import MAX_DRAIN

from ..access.policy import ANONYMOUS, Caller, Policy, Rule
from ..zoom.jwt import fingerprint
from ..zoom.rules import MAX_TTL, MIN_TTL, ROLES, SDKS, SECRET_LENGTH, Sdk
from .vault import (
    MAX_PREVIOUS_VERSIONS,
    KvReader,
    KvRef,
    VaultError,
    VaultSettings,
    parse_reference,
)

DEFAULT_LISTEN = "127.0.0.1:50051"
# The admin listener: /metrics, /healthz/live, /healthz/ready (observe.admin).
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9464"
# iat is set this much before now, which shortens every token: at most half the shortest life.
MAX_CLOCK_SKEW = MIN_TTL // 2
# The longest drain and shutdown grace (`sdksign serve --drain` has the same bound).
MAX_SHUTDOWN_GRACE = MAX_DRAIN
# Rates and bursts beyond these are no limit at all; they keep the token bucket's floats finite.
MAX_RATE = 1e9
# And below this (one request a day) a refusal's retry-after grows past a day, and past any
# duration a RetryInfo can hold as the rate nears 0.
MIN_RATE = 1 / 86400
MAX_BURST = 10**9
# [rate_limits]: how long a call may wait for the shared store, in seconds.
DEFAULT_STORE_TIMEOUT = 0.1
MAX_STORE_TIMEOUT = 5.0
DEFAULT_REDIS_PORT = 6379
# Files are read up to these sizes: a secret is a line, a certificate chain a few KiB.
MAX_CONFIG_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 << 10
MAX_PEM_BYTES = 1 << 20
# Where development apps are kept: SDKSIGN_DEV_APPS, else this under the user's state folder.
DEV_APPS_ENV = "SDKSIGN_DEV_APPS"
DEV_APPS_FILE = Path("sdksign") / "dev-apps.json"

_SAMPLE_VARIABLES: dict[Sdk, tuple[str, str]] = {
    "meeting": ("ZOOM_MEETING_SDK_KEY", "ZOOM_MEETING_SDK_SECRET"),
    "video": ("ZOOM_VIDEO_SDK_KEY", "ZOOM_VIDEO_SDK_SECRET"),
}


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class App:
    """One Zoom SDK app: its name here, its kind, its SDK key and its secret.

    `previous_secrets` are secrets being rotated out: Verify still accepts them,
    Sign never uses them. `vault` names the KV v2 field they are versions of;
    `vault_skipped` says why each previous version there that could not be read was
    skipped (it neither signs nor verifies). `secrets_created` says when each of
    `secrets` was made, in epoch seconds, where that is known (a Vault version's
    created_time, a secret file's modification time; None for an environment variable).
    """

    name: str
    kind: Sdk
    sdk_key: str
    secret: bytes = field(repr=False)
    previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    vault: KvRef | None = None
    vault_skipped: tuple[str, ...] = ()
    secrets_created: tuple[float | None, ...] = ()

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Every secret a token of this app may be signed with, the active one first."""
        return (self.secret, *self.previous_secrets)

    @cached_property
    def secret_fingerprints(self) -> tuple[str, ...]:
        """The fingerprint of each of `secrets`, in the same order (worked out once)."""
        return tuple(fingerprint(secret) for secret in self.secrets)


@dataclass(frozen=True)
class Tls:
    """The listener's certificate and key, and the CA that signs client certificates.

    With a client CA, every connection must present a certificate it signed
    (mutual TLS): grpc's Python server cannot ask for one without requiring it.
    """

    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = None


StoreError = Literal["local", "refuse"]


@dataclass(frozen=True)
class RateLimitStore:
    """[rate_limits] store: the Redis that holds every worker's and replica's buckets.

    `on_store_error` says what a worker does while it cannot reach it: "local", its own
    buckets; "refuse", RESOURCE_EXHAUSTED for rate-limited callers. A changed store (any
    field) takes a new client on reload.
    """

    host: str
    port: int = DEFAULT_REDIS_PORT
    db: int = 0
    tls: bool = False  # rediss://
    ca: bytes | None = None  # PEM, beside the system's CAs
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)
    timeout: float = DEFAULT_STORE_TIMEOUT
    on_store_error: StoreError = "local"

    @property
    def address(self) -> str:
        """The store as logs show it: its URL, which never holds a credential."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"


# Seconds of serving after SIGTERM with health NOT_SERVING: Envoy's health check (every
# second, gateway/envoy.yaml) and a Kubernetes readiness probe (periodSeconds: 2) see it.
DEFAULT_DRAIN = 5


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run."""

    apps: tuple[App, ...]
    source: str
    listen: str = DEFAULT_LISTEN
    admin_listen: str = DEFAULT_ADMIN_LISTEN
    clock_skew: int = 30
    # SIGTERM: health reports NOT_SERVING at once, and calls are still served this long, so
    # that load balancers and Kubernetes stop sending before the listener closes.
    drain: float = DEFAULT_DRAIN
    shutdown_grace: float = 10.0
    log_level: str = "info"
    development: bool = False
    # Who may call, and what they may mint. Without a configuration file: no
    # callers, and anonymous callers may do everything (served on loopback only).
    policy: Policy = field(default_factory=Policy)
    # True when the file says who may call ([[callers]] or [anonymous]).
    policy_configured: bool = False
    tls: Tls | None = None
    # The file to read again on SIGHUP (None: the environment or development apps).
    path: Path | None = None
    # --insecure: serve beyond loopback without TLS or without a caller policy.
    insecure: bool = False
    # The settings fixed at start that a command-line flag gave (--drain): they win over the
    # file's, so that a reload neither takes nor warns about the file's (runtime.serve.reloaded).
    flags: frozenset[str] = frozenset()
    # Where rate limits are kept; None: each worker keeps its own buckets.
    rate_limits: RateLimitStore | None = None
    # Where the apps with secret_vault read their secrets ([vault]).
    vault: VaultSettings | None = None
    # Whether a trace's spans carry the meeting number a call asked for (observe.tracing).
    trace_meeting_numbers: bool = False

    def apps_of_kind(self, kind: Sdk) -> list[App]:
        return [app for app in self.apps if app.kind == kind]


def app_named(apps: Iterable[App], name: str) -> App | None:
    """The app called `name` among `apps` (a caller's scope: access.policy.in_scope), or None."""
    return next((app for app in apps if app.name == name), None)


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Load the configuration from `path`, else the environment, else development apps."""
    if path is not None:
        return _from_file(path, environ)
    apps = _apps_from_environment(environ)
    if apps:
        return Config(apps=apps, source="environment (ZOOM_*_SDK_KEY / ZOOM_*_SDK_SECRET)")
    file = dev_apps_file(environ)
    return Config(apps=dev_apps(file), source=str(file), development=True)


def dev_apps_file(environ: Mapping[str, str] = os.environ) -> Path:
    """The development apps' file: one per user, whatever folder the server starts in.

    $SDKSIGN_DEV_APPS, else $XDG_STATE_HOME/sdksign/dev-apps.json, else
    ~/.local/state/sdksign/dev-apps.json (the XDG default), as an absolute path.
    """
    if chosen := environ.get(DEV_APPS_ENV):
        return Path(chosen).absolute()
    state = environ.get("XDG_STATE_HOME")
    if not state:
        try:
            state = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no HOME and no password entry
            raise ConfigError(
                f"no home folder for the development apps: set {DEV_APPS_ENV} to a file path"
            ) from None
    return (Path(state) / DEV_APPS_FILE).absolute()


def parse_duration(value: object, what: str) -> int:
    """Seconds from an integer or a string such as "30s", "90m", "2h" or "1h30m"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    seconds = duration_seconds(value) if isinstance(value, str) else None
    if seconds is not None:
        return seconds
    raise ConfigError(f"{what}: {_shown(value)} {_NOT_A_DURATION}")


_NOT_A_DURATION = "is not a duration; write seconds or a string like '30s', '2h', '1h30m'"
# How much of a refused value a message shows.
_SHOWN = 60
_SHOWN_FILE = 200


def _shown(value: object) -> str:
    """repr(value), cut short: a message stays one short line whatever the value."""
    try:
        text = repr(value)
    except ValueError:  # an integer of more digits than Python prints
        return "a number of thousands of digits"
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def _shown_file(file: Path) -> str:
    """A file's name for a message, quoted; a long one keeps its end, where its name is."""
    text = repr(str(file))
    return text if len(text) <= _SHOWN_FILE else f"...{text[-_SHOWN_FILE:]}"


def _utf8(text: str) -> bytes | None:
    """`text` in UTF-8; None when it cannot be (os.environ keeps undecodable bytes as surrogates)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _apps_from_environment(environ: Mapping[str, str]) -> tuple[App, ...]:
    apps = []
    for kind, (key_var, secret_var) in _SAMPLE_VARIABLES.items():
        key, secret = environ.get(key_var, ""), environ.get(secret_var, "")
        if key and not secret:
            raise ConfigError(f"{key_var} is set but {secret_var} is empty or not set")
        if secret and not key:
            raise ConfigError(f"{secret_var} is set but {key_var} is empty or not set")
        if not key:
            continue
        for variable, value in ((key_var, key), (secret_var, secret)):
            if _utf8(value) is None:
                raise ConfigError(f"{variable} is not UTF-8 text; it must hold the value as text")
        apps.append(App(name=kind, kind=kind, sdk_key=key, secret=secret.encode()))
    return tuple(apps)


# --- the file's schema: its tables, their keys, types, defaults and simple bounds -----------

# A string with something besides whitespace (msgspec's pattern is searched for, not matched).
NonBlank = Annotated[str, Meta(pattern=r"\S")]
# A string of at least one character, spaces included.
NonEmpty = Annotated[str, Meta(min_length=1)]
# Seconds, or a string such as "30s" or "1h30m": parse_duration reads it, the loader bounds it.
Duration = int | str
LogLevel = Literal["debug", "info", "warning", "error"]
_LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


# Each table refuses a key it does not name (forbid_unknown_fields).
class ServerTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[server]: the listener and its timings."""

    listen: NonEmpty = DEFAULT_LISTEN  # HOST:PORT
    admin_listen: NonEmpty = DEFAULT_ADMIN_LISTEN  # HOST:PORT: metrics and health over HTTP
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
    # Requests per second (NaN fails `gt`); absent: no limit.
    rate: Annotated[float, Meta(ge=MIN_RATE, le=MAX_RATE)] | None = None
    # The bucket's size: at least 1 with a rate; absent: the rate rounded down, at least 1.
    burst: Annotated[int, Meta(ge=0, le=MAX_BURST)] | None = None


class CallerTable(RuleTable, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """[[callers]]: a caller's name, exactly one way it proves who it is, and its rule."""

    name: NonBlank  # unique, and not ANONYMOUS
    token_sha256: Annotated[str, Meta(pattern=r"\A[0-9a-fA-F]{64}\Z")] | None = None  # unique
    cert_identity: NonBlank | None = None  # a URI SAN or a CN; unique


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


# [vault]: seconds for one request to Vault, and between reads while serving.
MAX_VAULT_TIMEOUT = 60
MAX_VAULT_REFRESH = 24 * 3600


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


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole file."""

    server: ServerTable = msgspec.field(default_factory=ServerTable)
    apps: Annotated[tuple[AppTable, ...], Meta(min_length=1)]
    callers: tuple[CallerTable, ...] = ()
    anonymous: RuleTable | None = None  # absent: ANONYMOUS_DEFAULT
    rate_limits: RateLimitsTable | None = None  # absent: each worker keeps its own buckets
    vault: VaultTable | None = None  # needed by secret_vault


def _keys(table: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(table.__struct_fields__)


# Each table by its name in the file (the fuzz tests set every key of each).
_TABLES: dict[str, type[msgspec.Struct]] = {
    "server": ServerTable,
    "apps": AppTable,
    "callers": CallerTable,
    "anonymous": RuleTable,
    "rate_limits": RateLimitsTable,
    "vault": VaultTable,
}

# What each key allows, as the one-line message for a value the schema refuses: {where} is
# its table, {value} the value as written (cut short), {least} the least burst.
_REQUIRED = "{where}: {key} is required (a non-empty string)"
_STRING = "{where}: {key} must be a non-empty string"
_STRINGS = "{where}: {key} must be a list of non-empty strings"
_DURATION = "{where} {key}: {value} " + _NOT_A_DURATION
_STORE_URL = "a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0"
_ALLOWED: dict[str, str] = {
    "listen": "{where} listen: must be a string HOST:PORT",
    "admin_listen": "{where} admin_listen: must be a string HOST:PORT",
    "clock_skew": _DURATION,
    "drain": _DURATION,
    "shutdown_grace": _DURATION,
    "log_level": "{where} log_level: {value} is not one of " + ", ".join(_LOG_LEVELS),
    "trace_meeting_numbers": "{where} trace_meeting_numbers: {value} is not true or false",
    "tls_cert_file": _STRING,
    "tls_key_file": _STRING,
    "tls_client_ca_file": _STRING,
    "name": _REQUIRED,
    "kind": _REQUIRED,  # or _NOT_AN_SDK
    "sdk_key": _REQUIRED,
    "secret_env": _STRING,
    "secret_file": _STRING,
    "previous_secret_envs": _STRINGS,
    "previous_secret_files": _STRINGS,
    "apps": _STRINGS,
    "roles": _STRINGS,
    "max_ttl": "{where}: max_ttl: {value} " + _NOT_A_DURATION,
    "meetings": _STRINGS,
    "sessions": _STRINGS,
    "verify": "{where}: verify must be true or false",
    "verify_apps": _STRINGS,
    "rate": "{where}: rate must be a number of requests per second from 1/86400 (one a day) "
    f"to {MAX_RATE:g}",
    "burst": f"{{where}}: burst must be a whole number of requests from {{least}} to {MAX_BURST}",
    "token_sha256": "{where}: token_sha256 must be 64 hex digits (sha256sum of the token, "
    'e.g. printf %s "$TOKEN" | sha256sum)',
    "cert_identity": "{where}: cert_identity must be a URI SAN (spiffe://...) or a CN",
    "store": "{where}: store must be " + _STORE_URL,
    "username": _STRING,
    "password_env": _STRING,
    "password_file": _STRING,
    "tls_ca_file": _STRING,
    "timeout": f"{{where}}: timeout must be a number of seconds above 0 and at most {MAX_STORE_TIMEOUT:g}",
    "on_store_error": "{where}: on_store_error {value} is not one of "
    + ", ".join(get_args(StoreError)),
    "secret_vault": _STRING,
    "address": "{where}: address must be a URL such as https://vault.internal:8200",
    "token_file": _STRING,
    "token_env": _STRING,
    "request_timeout": _DURATION,
    "refresh": _DURATION,
    "previous_versions": "{where}: previous_versions must be a whole number from 0 to "
    + str(MAX_PREVIOUS_VERSIONS),
}
_NOT_AN_SDK = "{where}: kind {value} is not one of " + ", ".join(SDKS)
_NO_APPS = "no apps: add at least one [[apps]] table with name, kind, sdk_key, secret_env"
# Only if msgspec words its errors in a way this module does not know.
_TABLE_NAMES = "[server], [[apps]], [[callers]], [anonymous], [rate_limits], [vault]"
_UNREADABLE = f"not a configuration file: tables {_TABLE_NAMES}"


# --- reading the file, and its refusals in our words -----------------------------------------


def _read_bounded(file: Path, limit: int) -> bytes:
    """The bytes of `file`; OSError when it cannot be read or holds more than `limit` bytes."""
    try:
        with file.open("rb") as stream:
            data = stream.read(limit + 1)
    except ValueError:  # a NUL in the name
        raise OSError(errno.EINVAL, "not a file name (it holds a NUL character)") from None
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _read_document(path: Path) -> dict[str, Any]:
    """The TOML document in `path`."""
    try:
        text = _read_bounded(path, MAX_CONFIG_BYTES).decode()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {_reason(exc)}") from None
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


def _described(document: dict[str, Any]) -> ConfigFile:
    """The document as the schema's objects, or a ConfigError naming what it refused.

    msgspec's own message is never shown (it may quote a value, and a value may be a
    secret written in the wrong place): only its path is read, " - at `$.apps[0].kind`",
    and the message says what that key allows.
    """
    try:
        return msgspec.convert(document, type=ConfigFile)
    except msgspec.ValidationError as exc:
        at = _AT.search(str(exc))
        steps = [name or int(index) for name, index in _STEP.findall(at[1])] if at else []
        raise ConfigError(_refusal(document, steps)) from None


# The path that ends msgspec's message (a document-wide problem has none), and its steps.
_AT = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`\Z")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _refusal(document: dict[str, Any], steps: list[str | int]) -> str:
    """The message for what the schema refused at `steps`: the table, the key, what it allows."""
    match steps:
        case ["server" | "anonymous" | "rate_limits" | "vault" as name, *rest]:
            return _table_refusal(name, f"[{name}]", document[name], rest)
        case ["apps" | "callers" as name, int(index), *rest]:
            entry = document[name][index]
            return _table_refusal(name, _entry_label(name, index, entry), entry, rest)
        case ["apps"]:
            return _NO_APPS
        case ["callers"]:
            return "callers must be an array of tables: [[callers]]"
        case []:
            unknown = sorted(set(document) - _keys(ConfigFile))
            if unknown:
                return f"unknown table or key {_shown(unknown[0])}; allowed: {_TABLE_NAMES}"
            if "apps" not in document:
                return _NO_APPS
    return _UNREADABLE


def _table_refusal(name: str, where: str, table: object, rest: list[str | int]) -> str:
    """What is wrong in `table` (the `name` table as written), `rest` the steps inside it."""
    if not isinstance(table, dict):
        return f"{where} must be a table"
    if rest and isinstance(rest[0], str):
        return _value_refusal(rest[0], where, table)
    schema = _TABLES[name]
    unknown = sorted(set(table) - _keys(schema))
    if "token" in unknown and schema is CallerTable:
        return f"{where}: tokens are never written inline; write token_sha256"
    if "secret" in unknown:
        return f"{where}: secrets are never written inline; use secret_env or secret_file"
    if "password" in unknown and schema is RateLimitsTable:
        return f"{where}: passwords are never written inline; use password_env or password_file"
    if unknown:
        allowed = ", ".join(sorted(_keys(schema)))
        return f"{where}: unknown key {_shown(unknown[0])}; allowed: {allowed}"
    missing = [f.name for f in msgspec.structs.fields(schema) if f.required and f.name not in table]
    return _value_refusal(missing[0], where, table) if missing else _UNREADABLE


def _value_refusal(key: str, where: str, table: dict[str, Any]) -> str:
    value = table.get(key)
    template = _ALLOWED.get(key, "{where}: {key}: this value is not allowed")
    if key == "kind" and isinstance(value, str) and value.strip():
        template = _NOT_AN_SDK
    least = 1 if table.get("rate") else 0
    return template.format(where=where, key=key, value=_shown(value), least=least)


def _entry_label(array: str, index: int, entry: object) -> str:
    """apps[0] ('web'): an entry of [[apps]] or [[callers]], by its name when it has one."""
    name = entry.get("name") if isinstance(entry, dict) else None
    # An app is called by any string name, a caller only by a valid one (as they always were).
    if isinstance(name, str) and (array == "apps" or name.strip()):
        return _named(array, index, name)
    return f"{array}[{index}]"


def _named(array: str, index: int, name: str) -> str:
    return f"{array}[{index}] ({_shown(name)})"


# --- from the file's tables to the runtime configuration: what a schema cannot say ------------


def _from_file(path: Path, environ: Mapping[str, str]) -> Config:
    document = _read_document(path)
    try:
        return _config(path, _described(document), environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _config(path: Path, file: ConfigFile, environ: Mapping[str, str]) -> Config:
    """The configuration in `file`, read from `path`: its secrets read, its names checked."""
    apps = tuple(_app(i, table, path.parent, environ) for i, table in enumerate(file.apps))
    _refuse_repeated_apps(apps)
    app_names = frozenset(app.name for app in apps)
    callers = tuple(_caller(i, table, app_names) for i, table in enumerate(file.callers))
    _refuse_repeated_callers(callers)
    anonymous: Rule | None = ANONYMOUS_DEFAULT
    if file.anonymous is not None:
        anonymous = _rule(file.anonymous, "[anonymous]", app_names)
        if not anonymous.roles and not anonymous.verify:
            anonymous = None
    server = file.server
    config = Config(
        apps=apps,
        source=str(path),
        path=path,
        policy=Policy(callers=callers, anonymous=anonymous),
        policy_configured=bool(callers) or file.anonymous is not None,
        tls=_tls(server, path.parent),
        listen=server.listen,
        admin_listen=server.admin_listen,
        clock_skew=_server_duration(server.clock_skew, "clock_skew", MAX_CLOCK_SKEW),
        drain=_server_duration(server.drain, "drain", MAX_SHUTDOWN_GRACE),
        shutdown_grace=_server_duration(
            server.shutdown_grace, "shutdown_grace", MAX_SHUTDOWN_GRACE
        ),
        log_level=server.log_level,
        trace_meeting_numbers=server.trace_meeting_numbers,
        rate_limits=_rate_limits(file.rate_limits, path.parent, environ),
        vault=_vault_settings(file.vault, path.parent, environ),
    )
    return vault_refreshed(config)  # the last check: the only one over the network


def _server_duration(value: Duration, key: str, maximum: int) -> int:
    what = f"[server] {key}"
    seconds = parse_duration(value, what)
    if seconds > maximum:
        raise ConfigError(f"{what}: {_shown(seconds)} s is too long; at most {maximum} s")
    return seconds


def _repeated(values: Iterable[Hashable]) -> Hashable | None:
    """The first of `values` that came before; None when each is unique."""
    seen: set[Hashable] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _one_of(where: str, given: Mapping[str, object], *, required: bool = True) -> None:
    """Refuse more than one of the keys `given` (their values as written; None: absent), and
    none of them when one is `required`."""
    count = sum(value is not None for value in given.values())
    if count > 1 or (count == 0 and required):
        *first, last = given
        how = "exactly" if required else "at most"
        raise ConfigError(f"{where}: give {how} one of {', '.join(first)} and {last}")


def _refuse_repeated_apps(apps: tuple[App, ...]) -> None:
    for attribute in ("name", "sdk_key"):
        value = _repeated(getattr(app, attribute) for app in apps)
        if value is not None:
            raise ConfigError(f"two apps have the {attribute} {_shown(value)}; each must be unique")


def _refuse_repeated_callers(callers: tuple[Caller, ...]) -> None:
    for attribute in ("name", "token_sha256", "cert_identity"):
        values = (getattr(caller, attribute) for caller in callers)
        if _repeated(value for value in values if value is not None) is not None:
            what = attribute if attribute != "token_sha256" else "token"  # never its hash
            raise ConfigError(f"two callers have the same {what}; each must be unique")


def _app(index: int, table: AppTable, folder: Path, environ: Mapping[str, str]) -> App:
    where = _named("apps", index, table.name)
    env, file, vault = table.secret_env, table.secret_file, table.secret_vault
    _one_of(where, {"secret_env": env, "secret_file": file, "secret_vault": vault})
    if vault is not None:
        return _vault_app(table, vault, where)
    if env is not None:
        secret = _secret_from_env(env, environ, where)
    else:
        assert file is not None
        secret = _secret_from_file(folder / file, "secret_file", where)
    previous = [_secret_from_env(name, environ, where) for name in table.previous_secret_envs]
    previous += [
        _secret_from_file(folder / name, "previous_secret_files", where)
        for name in table.previous_secret_files
    ]
    return App(
        name=table.name,
        kind=table.kind,
        sdk_key=table.sdk_key,
        secret=secret,
        previous_secrets=tuple(previous),
        secrets_created=(
            None if file is None else _modified(folder / file),
            *(None for _ in table.previous_secret_envs),
            *(_modified(folder / name) for name in table.previous_secret_files),
        ),
    )


def _modified(path: Path) -> float | None:
    """When the file at `path` was last written (epoch seconds); None when unknown."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _secret_from_env(name: str, environ: Mapping[str, str], where: str) -> bytes:
    secret = environ.get(name, "")
    if not secret:
        raise ConfigError(f"{where}: {_variable(name)} is empty or not set")
    encoded = _utf8(secret)
    if encoded is None:
        raise ConfigError(f"{where}: environment variable {_shown(name)} is not UTF-8 text")
    return encoded


# A secret pasted where the name of its variable or file belongs names nothing that exists:
# such a name is shown only when it looks like a name, so that the secret is not echoed.
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_NOT_SHOWN = "not shown: it may be a secret written there by mistake"


def _variable(name: str) -> str:
    """How a message names the unset environment variable `name`: quoted when it is an
    UPPER_CASE name, as variable names are and Zoom's secrets are not."""
    if _VARIABLE_NAME.fullmatch(name):
        return f"environment variable {_shown(name)}"
    return f"the environment variable named there ({_NOT_SHOWN})"


def _secret_from_file(path: Path, key: str, where: str) -> bytes:
    try:
        return _file_text(path, f"{where}: {key} {_shown_file(path)}", "secret").encode()
    except OSError as exc:
        shown = _shown_file(path)
        if exc.errno in (errno.ENOENT, errno.ENAMETOOLONG) and not re.search(r"[./]", path.name):
            shown = f"(the file named there; {_NOT_SHOWN})"  # no folder, no extension
        raise ConfigError(f"{where}: {key} {shown}: {_reason(exc)}") from None


def _file_text(path: Path, shown: str, what: str) -> str:
    """The text in `path`, a file that holds a secret (`what`), stripped; `shown` begins
    the ConfigError when it is not UTF-8 or is empty. OSError when it cannot be read."""
    try:
        text = _read_bounded(path, MAX_SECRET_BYTES).decode().strip()
    except UnicodeDecodeError:
        # Never the decoder's message: it quotes a byte of the secret.
        raise ConfigError(f"{shown} is not UTF-8 text; it must hold the {what} as text") from None
    if not text:
        raise ConfigError(f"{shown} is empty")
    return text


# With a configuration file and no [anonymous] table, callers without credentials
# may mint participant tokens and call Verify.
ANONYMOUS_DEFAULT = Rule(roles=frozenset({"participant"}))


def _caller(index: int, table: CallerTable, app_names: frozenset[str]) -> Caller:
    where = _named("callers", index, table.name)
    if table.name == ANONYMOUS:
        raise ConfigError(
            f"{where}: the name {ANONYMOUS!r} is kept for callers without credentials"
        )
    _one_of(where, {"token_sha256": table.token_sha256, "cert_identity": table.cert_identity})
    return Caller(
        name=table.name,
        rule=_rule(table, where, app_names),
        token_sha256=None if table.token_sha256 is None else bytes.fromhex(table.token_sha256),
        cert_identity=table.cert_identity,
    )


def _rule(table: RuleTable, where: str, app_names: frozenset[str]) -> Rule:
    for key, names in (("apps", table.apps), ("verify_apps", table.verify_apps)):
        unknown = sorted(set(names or ()) - app_names)
        if unknown:
            raise ConfigError(f"{where}: {key}: {_shown(unknown[0])} is not a configured app")
    for role in table.roles:
        if role not in ROLES:
            raise ConfigError(f"{where}: roles: {_shown(role)} is not one of {', '.join(ROLES)}")
    return Rule(
        apps=None if table.apps is None else frozenset(table.apps),
        roles=frozenset(table.roles),
        max_ttl=_max_ttl(table.max_ttl, where),
        meetings=table.meetings,
        sessions=table.sessions,
        verify=table.verify,
        verify_apps=None if table.verify_apps is None else frozenset(table.verify_apps),
        rate=table.rate,
        burst=_burst(table.burst, table.rate, where),
    )


def _max_ttl(value: Duration | None, where: str) -> int | None:
    if value is None:
        return None
    max_ttl = parse_duration(value, f"{where}: max_ttl")
    if not MIN_TTL <= max_ttl <= MAX_TTL:
        raise ConfigError(
            f"{where}: max_ttl must be at least {MIN_TTL} s, Zoom's minimum, "
            f"and at most {MAX_TTL} s (48 h), Zoom's maximum"
        )
    return max_ttl


def _burst(burst: int | None, rate: float | None, where: str) -> int:
    """The bucket's size: as given (the schema bounds it), else the rate rounded down, at least 1."""
    if rate is None:
        return burst or 0
    if burst is None:
        return max(1, int(rate))
    if burst < 1:
        raise ConfigError(_ALLOWED["burst"].format(where=where, least=1))
    return burst


def _tls(server: ServerTable, folder: Path) -> Tls | None:
    cert, key, ca = server.tls_cert_file, server.tls_key_file, server.tls_client_ca_file
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError("[server] tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if cert is None or key is None:
        raise ConfigError("[server] give both tls_cert_file and tls_key_file")
    return Tls(
        certificate_chain=_pem(folder / cert, "tls_cert_file"),
        private_key=_pem(folder / key, "tls_key_file"),
        client_ca=None if ca is None else _pem(folder / ca, "tls_client_ca_file"),
    )


def _pem(file: Path, key: str, where: str = "[server]") -> bytes:
    try:
        data = _read_bounded(file, MAX_PEM_BYTES)
    except OSError as exc:
        raise ConfigError(f"{where} {key} {_shown_file(file)}: {_reason(exc)}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{where} {key} {_shown_file(file)} is not PEM")
    return data


_RATE_LIMITS = "[rate_limits]"


def _rate_limits(
    table: RateLimitsTable | None, folder: Path, environ: Mapping[str, str]
) -> RateLimitStore | None:
    """[rate_limits]: the store's URL read, its password and CA read, the redis extra there."""
    if table is None:
        return None
    host, port, db, tls = _store_url(table.store)
    env, file = table.password_env, table.password_file
    _one_of(_RATE_LIMITS, {"password_env": env, "password_file": file}, required=False)
    password = None
    if env is not None:
        password = _secret_from_env(env, environ, _RATE_LIMITS)
    elif file is not None:
        password = _secret_from_file(folder / file, "password_file", _RATE_LIMITS)
    ca = None
    if table.tls_ca_file is not None:
        if not tls:
            raise ConfigError(f"{_RATE_LIMITS} tls_ca_file needs a rediss:// store (TLS)")
        ca = _certificates(folder / table.tls_ca_file, "tls_ca_file", _RATE_LIMITS)
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            f"{_RATE_LIMITS} store needs the redis extra, not installed: pip install 'sdksign[redis]'"
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
        on_store_error=table.on_store_error,
    )


def _store_url(url: str) -> tuple[str, int, int, bool]:
    """Host, port, database and TLS of redis://HOST[:PORT][/DB] (rediss:// for TLS).

    The URL is never shown in a message: one that holds a password is refused as such.
    """
    where = f"{_RATE_LIMITS} store"
    if "@" in url:
        raise ConfigError(
            f"{where}: credentials are never written in the URL; "
            "use username, and password_env or password_file"
        )
    parts = _split_url(url)
    port = parts.port
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"{where} must be {_STORE_URL}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: options are keys of {_RATE_LIMITS}, not part of the URL")
    db = parts.path.strip("/") or "0"
    if not re.fullmatch(r"[0-9]{1,5}", db) or port == 0:
        raise ConfigError(f"{where} must be {_STORE_URL} (a port from 1, a database number)")
    return parts.hostname, port or DEFAULT_REDIS_PORT, int(db), parts.scheme == "rediss"


def _split_url(url: str) -> urllib.parse.SplitResult:
    """`url` (stripped) in parts; no parts when it cannot be read (a port that is not a
    number, a bracket left open), so that every check of them fails."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return urllib.parse.urlsplit("")
    return parts


def _certificates(file: Path, key: str, where: str) -> bytes:
    """The PEM CA certificates in `file`, checked as ssl will read them."""
    data = _pem(file, key, where)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, ValueError):  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"{where} {key} {_shown_file(file)} holds no PEM certificate") from None
    return data


# --- [vault] and secret_vault ------------------------------------------------------------------

_VAULT = "[vault]"


def _vault_app(table: AppTable, reference: str, where: str) -> App:
    """An app whose secrets are the versions of a KV v2 field, read once the file is checked."""
    if table.previous_secret_envs or table.previous_secret_files:
        raise ConfigError(
            f"{where}: previous_secret_envs and previous_secret_files go with secret_env or "
            f"secret_file; with secret_vault, earlier KV versions verify ({_VAULT} previous_versions)"
        )
    ref = parse_reference(reference)
    if ref is None:
        shown = _shown(reference) if "/" in reference else f"({_NOT_SHOWN})"
        raise ConfigError(
            f"{where}: secret_vault {shown} is not a KV version 2 field: write "
            "'<mount>/data/<path>#<field>', e.g. 'secret/data/zoom/meeting#secret'"
        )
    return App(name=table.name, kind=table.kind, sdk_key=table.sdk_key, secret=b"", vault=ref)


def _vault_settings(
    table: VaultTable | None, folder: Path, environ: Mapping[str, str]
) -> VaultSettings | None:
    """[vault]: its address and durations checked, the token's variable read (its file is read
    on every pass)."""
    if table is None:
        return None
    address = _vault_address(table.address)
    _one_of(_VAULT, {"token_file": table.token_file, "token_env": table.token_env})
    token = None
    if table.token_env is not None:
        token = _secret_from_env(table.token_env, environ, _VAULT).decode()
    ca_file = None
    if table.tls_ca_file is not None:
        if not address.startswith("https://"):
            raise ConfigError(f"{_VAULT} tls_ca_file needs an https:// address")
        ca_file = folder / table.tls_ca_file
        _certificates(ca_file, "tls_ca_file", _VAULT)
    timeout = parse_duration(table.request_timeout, f"{_VAULT} request_timeout")
    if not 1 <= timeout <= MAX_VAULT_TIMEOUT:
        raise ConfigError(f"{_VAULT} request_timeout: from 1 s to {MAX_VAULT_TIMEOUT} s")
    refresh = parse_duration(table.refresh, f"{_VAULT} refresh")
    if refresh > MAX_VAULT_REFRESH:
        raise ConfigError(f"{_VAULT} refresh: at most {MAX_VAULT_REFRESH} s (0: only on SIGHUP)")
    return VaultSettings(
        address=address,
        token_file=None if table.token_file is None else folder / table.token_file,
        token_file_shown=_token_file_shown(table.token_file),
        token=token,
        ca_file=ca_file,
        timeout=timeout,
        refresh=refresh,
        previous_versions=table.previous_versions,
    )


def _vault_address(address: str) -> str:
    """[vault] address: an http(s) URL without credentials; http:// only to loopback."""
    parts = _split_url(address)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(_ALLOWED["address"].format(where=_VAULT))
    if "@" in parts.netloc:
        raise ConfigError(f"{_VAULT} address: credentials are never written in the URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{_VAULT} address: http:// only to loopback (the token would cross the network "
            "in clear text); use https://"
        )
    return urllib.parse.urlunsplit(parts).rstrip("/")


def _token_file_shown(name: str | None) -> str:
    """How a message names token_file: as written when it has a folder (a token has none)."""
    if name is None or "/" in name:
        return _shown(name)
    return f"(the file named there; {_NOT_SHOWN})"


def _vault_token(vault: VaultSettings) -> str:
    """The token: token_env's, read at load, or token_file's, read now."""
    if vault.token is not None:
        return vault.token
    assert vault.token_file is not None
    shown = f"{_VAULT} token_file {vault.token_file_shown}"
    try:
        return _file_text(vault.token_file, shown, "token")
    except OSError as exc:
        raise ConfigError(f"{shown}: {_reason(exc)}") from None


def vault_refreshed(config: Config) -> Config:
    """`config` with the secrets of its apps with secret_vault read again from Vault: the
    newest live version signs, up to previous_versions before it verify."""
    wanted = [(i, app, app.vault) for i, app in enumerate(config.apps) if app.vault is not None]
    if not wanted:
        return config
    vault = config.vault
    if vault is None:
        index, app, _ = wanted[0]
        raise ConfigError(
            f"{_named('apps', index, app.name)}: secret_vault needs a {_VAULT} table "
            "(address, and token_file or token_env)"
        )
    try:
        reader = KvReader(vault, _vault_token(vault))
    except VaultError as exc:
        raise ConfigError(f"{_VAULT}: {exc}") from None
    apps = list(config.apps)
    with reader:
        for index, app, ref in wanted:
            try:
                read = reader.versions(ref)
            except VaultError as exc:
                where = _named("apps", index, app.name)
                raise ConfigError(f"{where}: secret_vault {ref}: {exc}") from None
            apps[index] = replace(
                app,
                secret=read.newest,
                previous_secrets=read.previous,
                vault_skipped=read.skipped,
                secrets_created=read.created,
            )
    return replace(config, apps=tuple(apps))


def _is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without brackets) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problems(config: Config, listen: str) -> list[str]:
    """Why listening on `listen` with `config` would expose the service: the admin
    listener's one (no TLS), and no caller policy; [] on loopback."""
    problems = admin_exposure_problems(config, listen)
    if not config.policy_configured and not _on_loopback(listen):
        problems.append("no caller policy ([[callers]] or [anonymous])")
    return problems


def admin_exposure_problems(config: Config, admin_listen: str) -> list[str]:
    """Why serving the admin listener (metrics, health) on `admin_listen` with `config` would
    expose it: beyond loopback it takes TLS (the server's certificate); [] when safe."""
    if config.tls is not None or _on_loopback(admin_listen):
        return []
    return ["no TLS ([server] tls_cert_file and tls_key_file)"]


def _on_loopback(listen: str) -> bool:
    """Whether HOST:PORT `listen` (an IPv6 host in brackets) is on this machine's loopback."""
    return _is_loopback(listen.rpartition(":")[0].strip("[]"))


# SDK keys as configuration examples write them before the real one is filled in.
_PLACEHOLDER = re.compile(
    r"REPLACE|CHANGE.?ME|YOUR[_-]|PLACEHOLDER|EXAMPLE|\A<.*>\Z|\Ax{3,}\Z", re.I
)


def config_warnings(config: Config) -> list[str]:
    """What in `config` is served but most likely wrong: placeholder SDK keys, secrets far
    shorter than Zoom's, and Vault versions skipped as unreadable. Each is one line naming
    the app, never a secret."""
    warnings = []
    for app in config.apps:
        if _PLACEHOLDER.search(app.sdk_key):
            warnings.append(
                f"app {app.name!r}: sdk_key {_shown(app.sdk_key)} looks like a placeholder; "
                "Zoom refuses tokens that carry it: write the app's SDK key (Client ID)"
            )
        for index, secret in enumerate(app.secrets):
            if len(secret) < SECRET_LENGTH:
                which = "its secret" if index == 0 else f"previous secret {index}"
                size = f"{len(secret)} byte{'' if len(secret) == 1 else 's'}"
                warnings.append(
                    f"app {app.name!r}: {which} is {size}; Zoom's Client Secrets are {SECRET_LENGTH} "
                    "characters: is it the right value?"
                )
        warnings.extend(
            f"app {app.name!r}: secret_vault {app.vault}: {why}: it neither signs nor verifies "
            "(delete it to let an older version verify in its place)"
            for why in app.vault_skipped
        )
    return warnings


def dev_apps(path: Path) -> tuple[App, ...]:
    """Development apps, one per kind, created with random secrets on first use.

    Zoom does not know these keys: their tokens only verify here.
    """
    if not path.exists():
        try:
            _create_dev_apps(path)
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot create development apps: {_reason(exc)}; "
                f"set {DEV_APPS_ENV} to a writable file path, or configure apps"
            ) from None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return tuple(
            App(
                name=kind,
                kind=kind,
                sdk_key=stored[kind]["sdk_key"],
                secret=stored[kind]["secret"].encode(),
            )
            for kind in SDKS
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"{path}: unreadable development apps; delete the file to make new ones"
        ) from None


def _create_dev_apps(path: Path) -> None:
    """Write new development apps to `path`, whole or not at all: servers started at the same
    moment all end up with the apps of the one that linked its file first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # token_urlsafe(32) gives 43 characters: never read as hex by jsrsasign.
    apps = {
        kind: {"sdk_key": f"dev_{kind}_{secrets.token_hex(6)}", "secret": secrets.token_urlsafe(32)}
        for kind in SDKS
    }
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=".dev-apps-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(apps, out, indent=2)
        os.link(written, path)
    except FileExistsError:
        pass  # another server made them first: theirs are read
    finally:
        os.unlink(written)
