"""Configuration: which SDK apps exist, their secrets, and the server's settings.

Three sources, the first that applies wins:

1. a TOML file (`--config`), which is then the whole configuration;
2. Zoom's sample variables, `ZOOM_MEETING_SDK_KEY`/`ZOOM_MEETING_SDK_SECRET` and
   `ZOOM_VIDEO_SDK_KEY`/`ZOOM_VIDEO_SDK_SECRET`;
3. development apps with random secrets, kept in `.sdksign/dev-apps.json`.

Every problem raises ConfigError with one line that names it; no secret is ever
part of that line. Nothing else escapes load_config: a file that cannot be read or
is not UTF-8, a value of the wrong type, NaN, infinity or a number out of range are
all ConfigErrors naming the key and what it allows.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from ._policy import ANONYMOUS, Caller, Policy, Rule
from ._tokens import fingerprint
from ._zoom import MAX_TTL, MIN_TTL, ROLES, SDKS, Sdk

DEFAULT_LISTEN = "127.0.0.1:50051"
# iat is set this much before now, which shortens every token: at most half the shortest life.
MAX_CLOCK_SKEW = MIN_TTL // 2
MAX_SHUTDOWN_GRACE = 3600
# Rates and bursts beyond these are no limit at all; they keep the token bucket's floats finite.
MAX_RATE = 1e9
MAX_BURST = 10**9
# Files are read up to these sizes: a secret is a line, a certificate chain a few KiB.
MAX_CONFIG_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 << 10
MAX_PEM_BYTES = 1 << 20
DEV_APPS_FILE = Path(".sdksign") / "dev-apps.json"

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
    Sign never uses them.
    """

    name: str
    kind: Sdk
    sdk_key: str
    secret: bytes = field(repr=False)
    previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)

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


# Seconds of serving after SIGTERM with health NOT_SERVING: Envoy's health check (every
# second, gateway/envoy.yaml) and a Kubernetes readiness probe (periodSeconds: 2) see it.
DEFAULT_DRAIN = 5


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run."""

    apps: tuple[App, ...]
    source: str
    listen: str = DEFAULT_LISTEN
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

    def app_named(self, name: str) -> App | None:
        return next((app for app in self.apps if app.name == name), None)

    def apps_of_kind(self, kind: Sdk) -> list[App]:
        return [app for app in self.apps if app.kind == kind]

    def apps_with_key(self, sdk_key: str) -> list[App]:
        return [app for app in self.apps if app.sdk_key == sdk_key]


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Load the configuration from `path`, else the environment, else development apps."""
    if path is not None:
        return _from_file(path, environ)
    apps = _apps_from_environment(environ)
    if apps:
        return Config(apps=apps, source="environment (ZOOM_*_SDK_KEY / ZOOM_*_SDK_SECRET)")
    return Config(apps=dev_apps(DEV_APPS_FILE), source=str(DEV_APPS_FILE), development=True)


def parse_duration(value: object, what: str) -> int:
    """Seconds from an integer or a string such as "30s", "90m", "2h" or "1h30m"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and len(value) <= _LONGEST_DURATION:
        parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value.strip())
        if parts and any(parts.groups()):
            d, h, m, s = (int(g) if g else 0 for g in parts.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise ConfigError(
        f"{what}: {_shown(value)} is not a duration; write seconds or a string like '30s', '2h', '1h30m'"
    )


# Longer strings are no duration anyone writes (and int() refuses more than 4300 digits).
_LONGEST_DURATION = 64
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


_SERVER_KEYS = {
    "listen",
    "clock_skew",
    "drain",
    "shutdown_grace",
    "log_level",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
}
_APP_KEYS = {
    "name",
    "kind",
    "sdk_key",
    "secret_env",
    "secret_file",
    "previous_secret_envs",
    "previous_secret_files",
}
_RULE_KEYS = {"apps", "roles", "max_ttl", "meetings", "sessions", "verify", "rate", "burst"}
_CALLER_KEYS = _RULE_KEYS | {"name", "token_sha256", "cert_identity"}
_LOG_LEVELS = ("debug", "info", "warning", "error")


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


def _from_file(path: Path, environ: Mapping[str, str]) -> Config:
    data = _read_document(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}")

    unknown = set(data) - {"server", "apps", "callers", "anonymous"}
    if unknown:
        raise fail(
            f"unknown table or key {_shown(sorted(unknown)[0])}; "
            "allowed: [server], [[apps]], [[callers]], [anonymous]"
        )
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise fail("[server] must be a table")
    _refuse_unknown(server, _SERVER_KEYS, "[server]", fail)

    raw_apps = data.get("apps", [])
    if not isinstance(raw_apps, list) or not raw_apps:
        raise fail("no apps: add at least one [[apps]] table with name, kind, sdk_key, secret_env")
    apps = tuple(_app(i, raw, path, environ, fail) for i, raw in enumerate(raw_apps))
    for attribute in ("name", "sdk_key"):
        seen: set[str] = set()
        for app in apps:
            value = getattr(app, attribute)
            if value in seen:
                raise fail(f"two apps have the {attribute} {_shown(value)}; each must be unique")
            seen.add(value)

    log_level = server.get("log_level", "info")
    if log_level not in _LOG_LEVELS:
        raise fail(
            f"[server] log_level: {_shown(log_level)} is not one of {', '.join(_LOG_LEVELS)}"
        )
    listen = server.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen, str) or not listen:
        raise fail("[server] listen: must be a string HOST:PORT")
    app_names = {app.name for app in apps}
    raw_callers = data.get("callers", [])
    if not isinstance(raw_callers, list):
        raise fail("callers must be an array of tables: [[callers]]")
    callers = tuple(_caller(i, raw, app_names, fail) for i, raw in enumerate(raw_callers))
    for attribute in ("name", "token_sha256", "cert_identity"):
        seen_values: set[object] = set()
        for caller in callers:
            value = getattr(caller, attribute)
            if value is not None and value in seen_values:
                what = attribute if attribute != "token_sha256" else "token"
                raise fail(f"two callers have the same {what}; each must be unique")
            seen_values.add(value)
    anonymous: Rule | None = ANONYMOUS_DEFAULT
    if "anonymous" in data:
        raw = data["anonymous"]
        if not isinstance(raw, dict):
            raise fail("[anonymous] must be a table")
        _refuse_unknown(raw, _RULE_KEYS, "[anonymous]", fail)
        anonymous = _rule(raw, "[anonymous]", app_names, fail)
        if not anonymous.roles and not anonymous.verify:
            anonymous = None
    return Config(
        apps=apps,
        source=str(path),
        path=path,
        policy=Policy(callers=callers, anonymous=anonymous),
        policy_configured=bool(callers) or "anonymous" in data,
        tls=_tls(server, path, fail),
        listen=listen,
        clock_skew=_server_duration(server, "clock_skew", 30, MAX_CLOCK_SKEW, path),
        drain=_server_duration(server, "drain", DEFAULT_DRAIN, MAX_SHUTDOWN_GRACE, path),
        shutdown_grace=_server_duration(server, "shutdown_grace", 10, MAX_SHUTDOWN_GRACE, path),
        log_level=log_level,
    )


def _server_duration(
    server: dict[str, Any], key: str, default: int, maximum: int, path: Path
) -> int:
    what = f"{path}: [server] {key}"
    seconds = parse_duration(server.get(key, default), what)
    if seconds > maximum:
        raise ConfigError(f"{what}: {seconds} s is too long; at most {maximum} s")
    return seconds


def _refuse_unknown(
    table: dict[str, Any], allowed: set[str], where: str, fail: Callable[[str], ConfigError]
) -> None:
    unknown = sorted(set(table) - allowed)
    if "secret" in unknown:
        raise fail(f"{where}: secrets are never written inline; use secret_env or secret_file")
    if unknown:
        raise fail(
            f"{where}: unknown key {_shown(unknown[0])}; allowed: {', '.join(sorted(allowed))}"
        )


def _app(
    index: int,
    raw: object,
    path: Path,
    environ: Mapping[str, str],
    fail: Callable[[str], ConfigError],
) -> App:
    where = f"apps[{index}]"
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a table")
    if isinstance(raw.get("name"), str):
        where = f"{where} ({_shown(raw['name'])})"
    _refuse_unknown(raw, _APP_KEYS, where, fail)
    for key in ("name", "kind", "sdk_key"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"{where}: {key} is required (a non-empty string)")
    if raw["kind"] not in SDKS:
        raise fail(f"{where}: kind {_shown(raw['kind'])} is not one of {', '.join(SDKS)}")
    if ("secret_env" in raw) == ("secret_file" in raw):
        raise fail(f"{where}: give exactly one of secret_env and secret_file")
    if "secret_env" in raw:
        secret = _secret_from_env(_string(raw, "secret_env", where, fail), environ, where, fail)
    else:
        name = _string(raw, "secret_file", where, fail)
        secret = _secret_from_file(path.parent / name, "secret_file", where, fail)
    previous = [
        _secret_from_env(name, environ, where, fail)
        for name in _strings(raw, "previous_secret_envs", where, fail)
    ] + [
        _secret_from_file(path.parent / name, "previous_secret_files", where, fail)
        for name in _strings(raw, "previous_secret_files", where, fail)
    ]
    return App(
        name=raw["name"],
        kind=cast(Sdk, raw["kind"]),
        sdk_key=raw["sdk_key"],
        secret=secret,
        previous_secrets=tuple(previous),
    )


def _secret_from_env(
    name: str, environ: Mapping[str, str], where: str, fail: Callable[[str], ConfigError]
) -> bytes:
    secret = environ.get(name, "")
    if not secret:
        raise fail(f"{where}: environment variable {_shown(name)} is empty or not set")
    encoded = _utf8(secret)
    if encoded is None:
        raise fail(f"{where}: environment variable {_shown(name)} is not UTF-8 text")
    return encoded


def _secret_from_file(
    path: Path, key: str, where: str, fail: Callable[[str], ConfigError]
) -> bytes:
    shown = _shown_file(path)
    try:
        secret = _read_bounded(path, MAX_SECRET_BYTES).decode().strip()
    except OSError as exc:
        raise fail(f"{where}: {key} {shown}: {_reason(exc)}") from None
    except UnicodeDecodeError:
        # Never the decoder's message: it quotes a byte of the secret.
        raise fail(
            f"{where}: {key} {shown} is not UTF-8 text; it must hold the secret as text"
        ) from None
    if not secret:
        raise fail(f"{where}: {key} {shown} is empty")
    return secret.encode()


def _string(raw: dict[str, Any], key: str, where: str, fail: Callable[[str], ConfigError]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{where}: {key} must be a non-empty string")
    return value


def _strings(
    raw: dict[str, Any], key: str, where: str, fail: Callable[[str], ConfigError]
) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"{where}: {key} must be a list of non-empty strings")
    return value


# With a configuration file and no [anonymous] table, callers without credentials
# may mint participant tokens and call Verify.
ANONYMOUS_DEFAULT = Rule(roles=frozenset({"participant"}))


def _rule(
    raw: dict[str, Any], where: str, app_names: set[str], fail: Callable[[str], ConfigError]
) -> Rule:
    apps = None
    if "apps" in raw:
        apps = frozenset(_strings(raw, "apps", where, fail))
        unknown = sorted(apps - app_names)
        if unknown:
            raise fail(f"{where}: apps: {_shown(unknown[0])} is not a configured app")
    roles = _strings(raw, "roles", where, fail) if "roles" in raw else list(ROLES)
    for role in roles:
        if role not in ROLES:
            raise fail(f"{where}: roles: {_shown(role)} is not one of {', '.join(ROLES)}")
    verify = raw.get("verify", True)
    if not isinstance(verify, bool):
        raise fail(f"{where}: verify must be true or false")
    rate = _rate(raw, where, fail)
    return Rule(
        apps=apps,
        roles=frozenset(roles),
        max_ttl=_max_ttl(raw, where, fail),
        meetings=tuple(_strings(raw, "meetings", where, fail)) if "meetings" in raw else None,
        sessions=tuple(_strings(raw, "sessions", where, fail)) if "sessions" in raw else None,
        verify=verify,
        rate=rate,
        burst=_burst(raw, rate, where, fail),
    )


def _max_ttl(raw: dict[str, Any], where: str, fail: Callable[[str], ConfigError]) -> int | None:
    if "max_ttl" not in raw:
        return None
    try:
        max_ttl = parse_duration(raw["max_ttl"], f"{where}: max_ttl")
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not MIN_TTL <= max_ttl <= MAX_TTL:
        raise fail(
            f"{where}: max_ttl must be at least {MIN_TTL} s, Zoom's minimum, "
            f"and at most {MAX_TTL} s (48 h), Zoom's maximum"
        )
    return max_ttl


def _rate(raw: dict[str, Any], where: str, fail: Callable[[str], ConfigError]) -> float | None:
    rate = raw.get("rate")
    if rate is None:
        return None
    # NaN fails both comparisons; an integer of any size compares without overflow.
    if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 < rate <= MAX_RATE:
        return float(rate)
    raise fail(
        f"{where}: rate must be a number of requests per second above 0 and at most {MAX_RATE:g}"
    )


def _burst(
    raw: dict[str, Any], rate: float | None, where: str, fail: Callable[[str], ConfigError]
) -> int:
    burst = raw.get("burst", max(1, int(rate)) if rate else 0)
    least = 1 if rate else 0
    if isinstance(burst, bool) or not isinstance(burst, int) or not least <= burst <= MAX_BURST:
        raise fail(f"{where}: burst must be a whole number of requests from {least} to {MAX_BURST}")
    return burst


def _caller(
    index: int, raw: object, app_names: set[str], fail: Callable[[str], ConfigError]
) -> Caller:
    where = f"callers[{index}]"
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a table")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise fail(f"{where}: name is required (a non-empty string)")
    where = f"{where} ({_shown(raw['name'])})"
    if "token" in raw:
        raise fail(f"{where}: tokens are never written inline; write token_sha256")
    _refuse_unknown(raw, _CALLER_KEYS, where, fail)
    if raw["name"] == ANONYMOUS:
        raise fail(f"{where}: the name {ANONYMOUS!r} is kept for callers without credentials")
    token_hash = raw.get("token_sha256")
    identity = raw.get("cert_identity")
    if (token_hash is None) == (identity is None):
        raise fail(f"{where}: give exactly one of token_sha256 and cert_identity")
    digest = None
    if token_hash is not None:
        if not isinstance(token_hash, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", token_hash):
            raise fail(
                f"{where}: token_sha256 must be 64 hex digits (sha256sum of the token, "
                'e.g. printf %s "$TOKEN" | sha256sum)'
            )
        digest = bytes.fromhex(token_hash)
    elif not isinstance(identity, str) or not identity.strip():
        raise fail(f"{where}: cert_identity must be a URI SAN (spiffe://...) or a CN")
    return Caller(
        name=raw["name"],
        rule=_rule(raw, where, app_names, fail),
        token_sha256=digest,
        cert_identity=identity,
    )


def _tls(server: dict[str, Any], path: Path, fail: Callable[[str], ConfigError]) -> Tls | None:
    cert, key = server.get("tls_cert_file"), server.get("tls_key_file")
    ca = server.get("tls_client_ca_file")
    if cert is None and key is None:
        if ca is not None:
            raise fail("[server] tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if cert is None or key is None:
        raise fail("[server] give both tls_cert_file and tls_key_file")

    def read(name: str) -> bytes:
        file = path.parent / _string(server, name, "[server]", fail)
        try:
            data = _read_bounded(file, MAX_PEM_BYTES)
        except OSError as exc:
            raise fail(f"[server] {name} {_shown_file(file)}: {_reason(exc)}") from None
        if b"-----BEGIN" not in data:
            raise fail(f"[server] {name} {_shown_file(file)} is not PEM")
        return data

    return Tls(
        certificate_chain=read("tls_cert_file"),
        private_key=read("tls_key_file"),
        client_ca=read("tls_client_ca_file") if ca is not None else None,
    )


def exposure_problems(config: Config, listen: str) -> list[str]:
    """Why listening on `listen` with `config` would expose the service; [] on loopback."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return []
    try:
        if ipaddress.ip_address(host).is_loopback:
            return []
    except ValueError:
        pass
    problems = []
    if config.tls is None:
        problems.append("no TLS ([server] tls_cert_file and tls_key_file)")
    if not config.policy_configured:
        problems.append("no caller policy ([[callers]] or [anonymous])")
    return problems


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
                "run from a writable folder, or configure apps"
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
    path.parent.mkdir(parents=True, exist_ok=True)
    # token_urlsafe(32) gives 43 characters: never read as hex by jsrsasign.
    apps = {
        kind: {"sdk_key": f"dev_{kind}_{secrets.token_hex(6)}", "secret": secrets.token_urlsafe(32)}
        for kind in SDKS
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(apps, out, indent=2)
