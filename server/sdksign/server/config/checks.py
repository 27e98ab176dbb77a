"""What a valid configuration may still get wrong: what would expose the service beyond
loopback, and values that are most likely mistakes. Pure: each is one line, never with a
secret, for the command to refuse or to warn about.
"""

from __future__ import annotations

import re

from ..zoom.rules import SECRET_LENGTH
from .model import Config
from .urls import on_loopback
from .wording import show


def exposure_problems(config: Config, listen: str) -> list[str]:
    """Why listening on `listen` with `config` would expose the service: the admin
    listener's one (no TLS), and no caller policy; [] on loopback."""
    problems = admin_exposure_problems(config, listen)
    if not config.policy_configured and not on_loopback(listen):
        problems.append("no caller policy ([[callers]] or [anonymous])")
    return problems


def admin_exposure_problems(config: Config, admin_listen: str) -> list[str]:
    """Why serving the admin listener (metrics, health) on `admin_listen` with `config` would
    expose it: beyond loopback it takes TLS (the server's certificate); [] when safe."""
    if config.tls is not None or on_loopback(admin_listen):
        return []
    return ["no TLS ([server] tls_cert_file and tls_key_file)"]


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
                f"app {app.name!r}: sdk_key {show(app.sdk_key)} looks like a placeholder; "
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
