"""Configuration: which SDK apps exist, their secrets, and the server's settings.

Three sources, the first that applies wins:

1. a TOML file (`--config`), which is then the whole configuration;
2. Zoom's sample variables, `ZOOM_MEETING_SDK_KEY`/`ZOOM_MEETING_SDK_SECRET` and
   `ZOOM_VIDEO_SDK_KEY`/`ZOOM_VIDEO_SDK_SECRET`;
3. development apps with random secrets, kept in `.sdksign/dev-apps.json`.

Every problem raises ConfigError with one line that names it; no secret is ever
part of that line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

Kind = Literal["meeting", "video"]
KINDS: tuple[Kind, ...] = ("meeting", "video")

DEFAULT_LISTEN = "127.0.0.1:50051"
DEV_APPS_FILE = Path(".sdksign") / "dev-apps.json"

_SAMPLE_VARIABLES: dict[Kind, tuple[str, str]] = {
    "meeting": ("ZOOM_MEETING_SDK_KEY", "ZOOM_MEETING_SDK_SECRET"),
    "video": ("ZOOM_VIDEO_SDK_KEY", "ZOOM_VIDEO_SDK_SECRET"),
}


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class App:
    """One Zoom SDK app: its name here, its kind, its SDK key and its secret."""

    name: str
    kind: Kind
    sdk_key: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run."""

    apps: tuple[App, ...]
    source: str
    listen: str = DEFAULT_LISTEN
    clock_skew: int = 30
    shutdown_grace: float = 10.0
    log_level: str = "info"
    development: bool = False

    def app_named(self, name: str) -> App | None:
        return next((app for app in self.apps if app.name == name), None)

    def apps_of_kind(self, kind: Kind) -> list[App]:
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
    if isinstance(value, str):
        parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value.strip())
        if parts and any(parts.groups()):
            d, h, m, s = (int(g) if g else 0 for g in parts.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise ConfigError(
        f"{what}: {value!r} is not a duration; write seconds or a string like '30s', '2h', '1h30m'"
    )


def _apps_from_environment(environ: Mapping[str, str]) -> tuple[App, ...]:
    apps = []
    for kind, (key_var, secret_var) in _SAMPLE_VARIABLES.items():
        key, secret = environ.get(key_var, ""), environ.get(secret_var, "")
        if key and not secret:
            raise ConfigError(f"{key_var} is set but {secret_var} is empty or not set")
        if secret and not key:
            raise ConfigError(f"{secret_var} is set but {key_var} is empty or not set")
        if key:
            apps.append(App(name=kind, kind=kind, sdk_key=key, secret=secret.encode()))
    return tuple(apps)


_SERVER_KEYS = {"listen", "clock_skew", "shutdown_grace", "log_level"}
_APP_KEYS = {"name", "kind", "sdk_key", "secret_env", "secret_file"}
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _from_file(path: Path, environ: Mapping[str, str]) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}")

    unknown = set(data) - {"server", "apps"}
    if unknown:
        raise fail(f"unknown table or key {sorted(unknown)[0]!r}; allowed: [server], [[apps]]")
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
                raise fail(f"two apps have the {attribute} {value!r}; each must be unique")
            seen.add(value)

    log_level = server.get("log_level", "info")
    if log_level not in _LOG_LEVELS:
        raise fail(f"[server] log_level: {log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    listen = server.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen, str) or not listen:
        raise fail("[server] listen: must be a string HOST:PORT")
    return Config(
        apps=apps,
        source=str(path),
        listen=listen,
        clock_skew=parse_duration(server.get("clock_skew", 30), f"{path}: [server] clock_skew"),
        shutdown_grace=parse_duration(
            server.get("shutdown_grace", 10), f"{path}: [server] shutdown_grace"
        ),
        log_level=log_level,
    )


def _refuse_unknown(
    table: dict[str, Any], allowed: set[str], where: str, fail: Callable[[str], ConfigError]
) -> None:
    unknown = sorted(set(table) - allowed)
    if "secret" in unknown:
        raise fail(f"{where}: secrets are never written inline; use secret_env or secret_file")
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


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
        where = f"{where} ({raw['name']!r})"
    _refuse_unknown(raw, _APP_KEYS, where, fail)
    for key in ("name", "kind", "sdk_key"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"{where}: {key} is required (a non-empty string)")
    if raw["kind"] not in KINDS:
        raise fail(f"{where}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    if ("secret_env" in raw) == ("secret_file" in raw):
        raise fail(f"{where}: give exactly one of secret_env and secret_file")
    if "secret_env" in raw:
        secret = environ.get(str(raw["secret_env"]), "")
        if not secret:
            raise fail(f"{where}: environment variable {raw['secret_env']!r} is empty or not set")
    else:
        secret_path = path.parent / str(raw["secret_file"])
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise fail(f"{where}: secret_file {str(secret_path)!r}: {exc.strerror}") from None
        if not secret:
            raise fail(f"{where}: secret_file {str(secret_path)!r} is empty")
    return App(
        name=raw["name"],
        kind=cast(Kind, raw["kind"]),
        sdk_key=raw["sdk_key"],
        secret=secret.encode(),
    )


def dev_apps(path: Path) -> tuple[App, ...]:
    """Development apps, one per kind, created with random secrets on first use.

    Zoom does not know these keys: their tokens only verify here.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # token_urlsafe(32) gives 43 characters: never read as hex by jsrsasign.
        apps = {
            kind: {
                "sdk_key": f"dev_{kind}_{secrets.token_hex(6)}",
                "secret": secrets.token_urlsafe(32),
            }
            for kind in KINDS
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(apps, out, indent=2)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return tuple(
            App(
                name=kind,
                kind=kind,
                sdk_key=stored[kind]["sdk_key"],
                secret=stored[kind]["secret"].encode(),
            )
            for kind in KINDS
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"{path}: unreadable development apps; delete the file to make new ones"
        ) from None
