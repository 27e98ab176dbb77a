"""Addresses in the file: the rate-limit store's redis:// URL, Vault's address, and
whether a host or a listener is this machine's loopback.

Pure: a URL is read, never connected to.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from ..errors import ConfigError
from .model import DEFAULT_REDIS_PORT

STORE_URL = "a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0"
VAULT_ADDRESS = "{where}: address must be a URL such as https://vault.internal:8200"
_RATE_LIMITS = "[rate_limits]"
_VAULT = "[vault]"


def store_url(url: str, table: str = _RATE_LIMITS) -> tuple[str, int, int, bool]:
    """Host, port, database and TLS of redis://HOST[:PORT][/DB] (rediss:// for TLS), the
    store of `table` ("[rate_limits]", "[grants]"), which messages name.

    The URL is never shown in a message: one that holds a password is refused as such.
    """
    where = f"{table} store"
    if "@" in url:
        raise ConfigError(
            f"{where}: credentials are never written in the URL; "
            "use username, and password_env or password_file"
        )
    parts = _split_url(url)
    port = parts.port
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"{where} must be {STORE_URL}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: options are keys of {table}, not part of the URL")
    db = parts.path.strip("/") or "0"
    if not re.fullmatch(r"[0-9]{1,5}", db) or port == 0:
        raise ConfigError(f"{where} must be {STORE_URL} (a port from 1, a database number)")
    return parts.hostname, port or DEFAULT_REDIS_PORT, int(db), parts.scheme == "rediss"


def vault_address(address: str) -> str:
    """[vault] address: an http(s) URL without credentials; http:// only to loopback."""
    parts = _split_url(address)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(VAULT_ADDRESS.format(where=_VAULT))
    _refuse_exposure(parts, f"{_VAULT} address", "the token would cross the network")
    return urllib.parse.urlunsplit(parts).rstrip("/")


def zoom_url(url: str, key: str) -> str:
    """[zoom] `key` (oauth_url or api_url): an http(s) URL of a host, with no path,
    credentials, query or fragment; http:// only to loopback (a local stand-in)."""
    where = f"{_ZOOM} {key}"
    parts = _split_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise ConfigError(f"{where}: must be a URL such as {_ZOOM_EXAMPLES[key]} (no path)")
    if parts.query or parts.fragment:  # Zoom's paths are added to it, and its query
        raise ConfigError(f"{where}: must be a URL such as {_ZOOM_EXAMPLES[key]} (no path)")
    _refuse_exposure(
        parts,
        where,
        "it is for a local stand-in: client secrets, access tokens and ZAKs would cross the "
        "network",
    )
    return urllib.parse.urlunsplit(parts._replace(path="")).rstrip("/")


def _refuse_exposure(parts: urllib.parse.SplitResult, where: str, why: str) -> None:
    """Refuse credentials in the URL, and http:// beyond loopback (`why` says what would leak)."""
    if "@" in parts.netloc:
        raise ConfigError(f"{where}: credentials are never written in the URL")
    assert parts.hostname is not None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{where}: http:// only to loopback ({why} in clear text); use https://")


_ZOOM = "[zoom]"
_ZOOM_EXAMPLES = {"oauth_url": "https://zoom.us", "api_url": "https://api.zoom.us"}


def _split_url(url: str) -> urllib.parse.SplitResult:
    """`url` (stripped) in parts; no parts when it cannot be read (a port that is not a
    number, a bracket left open), so that every check of them fails."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return urllib.parse.urlsplit("")
    return parts


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without brackets) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def on_loopback(listen: str) -> bool:
    """Whether HOST:PORT `listen` (an IPv6 host in brackets) is on this machine's loopback."""
    return is_loopback(listen.rpartition(":")[0].strip("[]"))
