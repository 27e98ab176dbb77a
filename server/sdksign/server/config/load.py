"""load_config: the configuration from one of three sources, the first that applies:

1. a TOML file (`--config`), which is then the whole configuration;
2. Zoom's sample variables, `ZOOM_MEETING_SDK_KEY`/`ZOOM_MEETING_SDK_SECRET` and
   `ZOOM_VIDEO_SDK_KEY`/`ZOOM_VIDEO_SDK_SECRET`;
3. development apps with random secrets, kept in one file per user (config.devapps).

Every problem raises ConfigError with one line that names it; no secret is ever
part of that line. Nothing else escapes load_config: a file that cannot be read or
is not UTF-8, a value of the wrong type, NaN, infinity or a number out of range are
all ConfigErrors naming the key and what it allows.

A file is read (config.files), given its shape by the schema (config.schema, whose refusals
config.refusals words), then checked here for what a schema cannot say (one key of two,
names that must be unique or must exist, durations, rates and bursts together) while its
secrets and PEM files are read into the runtime objects (config.model). Vault is read last
(config.vaultapps), once all the rest is known to be valid.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from ..access.policy import ANONYMOUS, Caller, Policy, Rule
from ..errors import ConfigError
from ..zoom.rules import MAX_TTL, MIN_TTL, ROLES, Sdk
from .credentials import modified, one_of, secret_from_env, secret_from_file, utf8
from .devapps import dev_apps, dev_apps_file
from .files import pem, read_document
from .grants import grants_settings
from .model import (
    DEFAULT_ADMIN_LISTEN,
    MAX_CLOCK_SKEW,
    MAX_SHUTDOWN_GRACE,
    App,
    Config,
    RateLimitStore,
    S2s,
    Tls,
    ZoomSettings,
)
from .refusals import ALLOWED, described
from .schema import (
    AppTable,
    CallerTable,
    ConfigFile,
    Duration,
    RateLimitsTable,
    RuleTable,
    S2sTable,
    ServerTable,
    ZoomTable,
    parse_duration,
)
from .stores import redis_store
from .urls import zoom_url
from .vaultapps import parsed_reference, vault_app, vault_refreshed, vault_settings
from .wording import named, show

_SAMPLE_VARIABLES: dict[Sdk, tuple[str, str]] = {
    "meeting": ("ZOOM_MEETING_SDK_KEY", "ZOOM_MEETING_SDK_SECRET"),
    "video": ("ZOOM_VIDEO_SDK_KEY", "ZOOM_VIDEO_SDK_SECRET"),
}
# With a configuration file and no [anonymous] table, callers without credentials
# may mint participant tokens and call Verify.
ANONYMOUS_DEFAULT = Rule(roles=frozenset({"participant"}))
_RATE_LIMITS = "[rate_limits]"


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Load the configuration from `path`, else the environment, else development apps."""
    if path is not None:
        return _from_file(path, environ)
    apps = _apps_from_environment(environ)
    if apps:
        return Config(apps=apps, source="environment (ZOOM_*_SDK_KEY / ZOOM_*_SDK_SECRET)")
    file = dev_apps_file(environ)
    return Config(apps=dev_apps(file), source=str(file), development=True)


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
            if utf8(value) is None:
                raise ConfigError(f"{variable} is not UTF-8 text; it must hold the value as text")
        apps.append(App(name=kind, kind=kind, sdk_key=key, secret=secret.encode()))
    return tuple(apps)


def _from_file(path: Path, environ: Mapping[str, str]) -> Config:
    document = read_document(path)
    try:
        return _config(path, described(document), environ)
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
        admin_listen=server.admin_listen or DEFAULT_ADMIN_LISTEN,
        admin_listen_set=server.admin_listen is not None,
        clock_skew=_server_duration(server.clock_skew, "clock_skew", MAX_CLOCK_SKEW),
        drain=_server_duration(server.drain, "drain", MAX_SHUTDOWN_GRACE),
        shutdown_grace=_server_duration(
            server.shutdown_grace, "shutdown_grace", MAX_SHUTDOWN_GRACE
        ),
        log_level=server.log_level,
        trace_meeting_numbers=server.trace_meeting_numbers,
        rate_limits=_rate_limits(file.rate_limits, path.parent, environ),
        vault=vault_settings(file.vault, path.parent, environ),
        zoom=_zoom(file.zoom, any(app.s2s is not None for app in apps)),
        grants=grants_settings(file.grants, path.parent, environ),
    )
    return vault_refreshed(config)  # the last check: the only one over the network


def _server_duration(value: Duration, key: str, maximum: int) -> int:
    what = f"[server] {key}"
    seconds = parse_duration(value, what)
    if seconds > maximum:
        raise ConfigError(f"{what}: {show(seconds)} s is too long; at most {maximum} s")
    return seconds


def _repeated(values: Iterable[Hashable]) -> Hashable | None:
    """The first of `values` that came before; None when each is unique."""
    seen: set[Hashable] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _refuse_repeated_apps(apps: tuple[App, ...]) -> None:
    for attribute in ("name", "sdk_key"):
        value = _repeated(getattr(app, attribute) for app in apps)
        if value is not None:
            raise ConfigError(f"two apps have the {attribute} {show(value)}; each must be unique")


def _refuse_repeated_callers(callers: tuple[Caller, ...]) -> None:
    for attribute in ("name", "token_sha256", "cert_identity"):
        values = (getattr(caller, attribute) for caller in callers)
        if _repeated(value for value in values if value is not None) is not None:
            what = attribute if attribute != "token_sha256" else "token"  # never its hash
            raise ConfigError(f"two callers have the same {what}; each must be unique")


def _app(index: int, table: AppTable, folder: Path, environ: Mapping[str, str]) -> App:
    where = named("apps", index, table.name)
    env, file, vault = table.secret_env, table.secret_file, table.secret_vault
    one_of(where, {"secret_env": env, "secret_file": file, "secret_vault": vault})
    s2s = _s2s(table, where, folder, environ)
    if vault is not None:
        return replace(vault_app(table, vault, where), s2s=s2s)
    if env is not None:
        secret = secret_from_env(env, environ, where)
    else:
        assert file is not None
        secret = secret_from_file(folder / file, "secret_file", where)
    previous = [secret_from_env(name, environ, where) for name in table.previous_secret_envs]
    previous += [
        secret_from_file(folder / name, "previous_secret_files", where)
        for name in table.previous_secret_files
    ]
    return App(
        name=table.name,
        kind=table.kind,
        sdk_key=table.sdk_key,
        secret=secret,
        s2s=s2s,
        previous_secrets=tuple(previous),
        secrets_created=(
            None if file is None else modified(folder / file),
            *(None for _ in table.previous_secret_envs),
            *(modified(folder / name) for name in table.previous_secret_files),
        ),
    )


def _s2s(table: AppTable, where: str, folder: Path, environ: Mapping[str, str]) -> S2s | None:
    """[apps.s2s]: the account's Server-to-Server OAuth app, its client secret read (one in
    Vault is read with the app secrets, by vault_refreshed)."""
    s2s: S2sTable | None = table.s2s
    if s2s is None:
        return None
    where = f"{where} s2s"
    if table.kind != "meeting":
        raise ConfigError(f"{where}: only a meeting app starts meetings; remove s2s from this app")
    env, file, vault = s2s.client_secret_env, s2s.client_secret_file, s2s.client_secret_vault
    one_of(
        where, {"client_secret_env": env, "client_secret_file": file, "client_secret_vault": vault}
    )
    account_id, client_id = s2s.account_id.strip(), s2s.client_id.strip()
    if vault is not None:
        ref = parsed_reference(vault, where, "client_secret_vault")
        return S2s(account_id, client_id, client_secret=b"", vault=ref)
    if env is not None:
        secret = secret_from_env(env, environ, where)
    else:
        assert file is not None
        secret = secret_from_file(folder / file, "client_secret_file", where)
    return S2s(account_id, client_id, client_secret=secret)


def _zoom(table: ZoomTable, needed: bool) -> ZoomSettings:
    """[zoom]: its URLs checked; with an app that has s2s, the zoom extra (httpx) there."""
    settings = ZoomSettings(
        oauth_url=zoom_url(table.oauth_url, "oauth_url"),
        api_url=zoom_url(table.api_url, "api_url"),
        timeout=table.timeout,
    )
    if needed and importlib.util.find_spec("httpx") is None:
        raise ConfigError(
            "[apps.s2s] needs the zoom extra, not installed: pip install 'sdksign[zoom]'"
        )
    return settings


def _caller(index: int, table: CallerTable, app_names: frozenset[str]) -> Caller:
    where = named("callers", index, table.name)
    if table.name == ANONYMOUS:
        raise ConfigError(
            f"{where}: the name {ANONYMOUS!r} is kept for callers without credentials"
        )
    one_of(where, {"token_sha256": table.token_sha256, "cert_identity": table.cert_identity})
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
            raise ConfigError(f"{where}: {key}: {show(unknown[0])} is not a configured app")
    for role in table.roles:
        if role not in ROLES:
            raise ConfigError(f"{where}: roles: {show(role)} is not one of {', '.join(ROLES)}")
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
        start_as=tuple(pattern.strip() for pattern in table.start_as),
        on_behalf_of=tuple(pattern.strip() for pattern in table.on_behalf_of),
        grants=table.grants,
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
        raise ConfigError(ALLOWED["burst"].format(where=where, least=1))
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
        certificate_chain=pem(folder / cert, "tls_cert_file"),
        private_key=pem(folder / key, "tls_key_file"),
        client_ca=None if ca is None else pem(folder / ca, "tls_client_ca_file"),
    )


def _rate_limits(
    table: RateLimitsTable | None, folder: Path, environ: Mapping[str, str]
) -> RateLimitStore | None:
    """[rate_limits]: the store's URL read, its password and CA read, the redis extra there."""
    if table is None:
        return None
    return redis_store(
        _RATE_LIMITS, table.store, table, folder, environ, on_store_error=table.on_store_error
    )
