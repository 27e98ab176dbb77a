"""The configuration: from a TOML file, the environment or development apps to a Config.

model: the runtime Config, its apps and settings, their defaults and limits; load:
load_config, from one of the three sources to a Config; schema: the file's tables as
msgspec Structs; refusals: what the schema refuses, in our words; files: reading the file
and its PEM files; credentials: secrets from the environment or files; urls: the store's
and Vault's addresses; stores: a Redis store's settings, as [rate_limits] and
[grants] give them; vault: reading KV v2 secrets from Vault; vaultapps: [vault] and the
apps with secret_vault; devapps: development apps; grants: [grants], where users' grants
are kept; keys: the keys that seal them; checks: exposure and warnings; wording:
how a refusal shows a value. ConfigError is at home in errors.

Knows nothing of gRPC. May import zoom, errors, access (the policy a file declares) and
observe (to count a Vault's errors).
"""

from ..errors import ConfigError
from .checks import admin_exposure_problems, config_warnings, exposure_problems
from .load import load_config
from .model import (
    DEFAULT_ADMIN_LISTEN,
    MAX_STORE_TIMEOUT,
    App,
    Config,
    RateLimitStore,
    S2s,
    Tls,
    ZoomSettings,
    app_named,
)
from .vaultapps import vault_refreshed

__all__ = [
    "DEFAULT_ADMIN_LISTEN",
    "MAX_STORE_TIMEOUT",
    "App",
    "Config",
    "ConfigError",
    "RateLimitStore",
    "S2s",
    "Tls",
    "ZoomSettings",
    "admin_exposure_problems",
    "app_named",
    "config_warnings",
    "exposure_problems",
    "load_config",
    "vault_refreshed",
]
