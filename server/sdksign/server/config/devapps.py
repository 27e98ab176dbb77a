"""Development apps: one app per kind with random secrets, kept in one file per user, for a
server started with no configuration file and no Zoom sample variables.

Zoom does not know these keys: their tokens only verify here.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from ..zoom.rules import SDKS
from .files import reason
from .model import App

# Where development apps are kept: SDKSIGN_DEV_APPS, else this under the user's state folder.
DEV_APPS_ENV = "SDKSIGN_DEV_APPS"
DEV_APPS_FILE = Path("sdksign") / "dev-apps.json"


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


def dev_apps(path: Path) -> tuple[App, ...]:
    """Development apps, one per kind, created with random secrets on first use.

    Zoom does not know these keys: their tokens only verify here.
    """
    if not path.exists():
        try:
            _create_dev_apps(path)
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot create development apps: {reason(exc)}; "
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
