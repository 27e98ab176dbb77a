"""The runtime configuration: the apps, the server's settings, and their defaults and limits.

Plain frozen dataclasses, built by config.load from a file, the environment or the
development apps, and read by every room that serves: nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sdksign.client._limits import MAX_DRAIN

from ..access.policy import Policy
from ..zoom.jwt import fingerprint
from ..zoom.rules import MIN_TTL, Sdk

if TYPE_CHECKING:
    from .vault import KvRef, VaultSettings

DEFAULT_LISTEN = "127.0.0.1:50051"
# The admin listener, which serves the metrics and the health endpoints over HTTP.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9464"
# iat is set this much before now, which shortens every token: at most half the shortest life.
MAX_CLOCK_SKEW = MIN_TTL // 2
# The longest drain and shutdown grace: the command's --drain takes the same bound.
MAX_SHUTDOWN_GRACE = MAX_DRAIN
# Rates and bursts beyond these are no limit at all; they keep the token bucket's floats finite.
MAX_RATE = 1e9
# And below this (one request a day) a refusal's retry-after grows past a day, and past any
# duration a RetryInfo can hold as the rate nears 0.
MIN_RATE = 1 / 86400
MAX_BURST = 10**9
# [rate_limits]: how long a call may wait for the shared store, in seconds.
DEFAULT_STORE_TIMEOUT = 0.1
# [grants] timeout: seconds one operation on the grant store may take; a call that finds
# another worker refreshing the grant waits for that refresh on top (docs/join.md).
DEFAULT_GRANTS_TIMEOUT = 5.0
MAX_STORE_TIMEOUT = 5.0
DEFAULT_REDIS_PORT = 6379
# [vault]: seconds for one request to Vault, and between reads while serving.
MAX_VAULT_TIMEOUT = 60
MAX_VAULT_REFRESH = 24 * 3600
# [vault] previous_versions is at most this (a KV v2 mount keeps 10 versions unless told otherwise).
MAX_PREVIOUS_VERSIONS = 10
# [zoom]: Zoom's OAuth server and REST API, and the seconds one request to them may take.
DEFAULT_ZOOM_OAUTH_URL = "https://zoom.us"
DEFAULT_ZOOM_API_URL = "https://api.zoom.us"
DEFAULT_ZOOM_TIMEOUT = 5.0
MAX_ZOOM_TIMEOUT = 60.0


@dataclass(frozen=True)
class S2s:
    """[apps.s2s]: a Server-to-Server OAuth app of the Zoom account whose users start
    meetings, which asks Zoom for their ZAKs. `vault` names the KV v2 field its client secret
    is read from, again on every refresh (None: from the environment or a file)."""

    account_id: str
    client_id: str
    client_secret: bytes = field(repr=False)
    vault: KvRef | None = None

    @cached_property
    def key(self) -> tuple[str, str, str]:
        """What an access token is cached by: a new secret (a rotation) takes a new token."""
        return (self.account_id, self.client_id, fingerprint(self.client_secret))


@dataclass(frozen=True)
class ZoomSettings:
    """[zoom]: where Zoom's OAuth server and REST API are (https, or http on loopback for a
    stand-in), and how long one request to them may take, in seconds."""

    oauth_url: str = DEFAULT_ZOOM_OAUTH_URL
    api_url: str = DEFAULT_ZOOM_API_URL
    timeout: float = DEFAULT_ZOOM_TIMEOUT


@dataclass(frozen=True)
class GrantsSettings:
    """[grants]: where users' grants are kept (`redis`, else the SQLite file `sqlite`, else
    grants.db in the state folder) and the key that seals their tokens (None: the
    development key file, made on first use beside the development apps)."""

    sqlite: Path | None = None
    redis: RateLimitStore | None = None
    key: bytes | None = field(default=None, repr=False)
    previous_keys: tuple[bytes, ...] = field(default=(), repr=False)
    timeout: float = DEFAULT_GRANTS_TIMEOUT
    # key_vault: the KV v2 field whose newest version seals and whose previous versions
    # ([vault] previous_versions) still open; read with the app secrets (config.vaultapps).
    vault: KvRef | None = None


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
    # The Server-to-Server OAuth app that asks Zoom for hosts' ZAKs (meeting apps only).
    s2s: S2s | None = None

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


# Seconds of serving after SIGTERM with health NOT_SERVING: long enough for a load
# balancer's health checks and a Kubernetes readiness probe to see it, each more than once.
DEFAULT_DRAIN = 5


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run."""

    apps: tuple[App, ...]
    source: str
    listen: str = DEFAULT_LISTEN
    admin_listen: str = DEFAULT_ADMIN_LISTEN
    # Whether the file set admin_listen: only the default gives way to a free port when taken.
    admin_listen_set: bool = False
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
    # Where Zoom's API is, for the ZAKs of host starts (apps with [apps.s2s]).
    zoom: ZoomSettings = field(default_factory=ZoomSettings)
    # Where users' grants are kept, for BeginGrant and Signs with on_behalf_of.
    grants: GrantsSettings = field(default_factory=lambda: GrantsSettings())

    def apps_of_kind(self, kind: Sdk) -> list[App]:
        return [app for app in self.apps if app.kind == kind]


def app_named(apps: Iterable[App], name: str) -> App | None:
    """The app called `name` among `apps` (a caller's scope: access.policy.in_scope), or None."""
    return next((app for app in apps if app.name == name), None)
