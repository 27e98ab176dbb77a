"""The grant store: every Zoom user's grant to an app (who, which scopes, the OAuth tokens),
and the states of grants begun and not yet completed, shared by every worker and replica.

Two stores keep them, the same contract each (GrantStore): SqliteGrants, a file that the
processes of one host share, and grantredis.RedisGrants, for a fleet. Tokens and PKCE
verifiers are sealed (sealing.Sealer, AES-256-GCM) before they are written: neither the file
nor Redis ever holds one in the clear. A state is kept under its SHA-256, never as given.

Refreshing a grant (refresh()) happens once at a time across everyone sharing the store, since
Zoom's refresh tokens rotate (a refresh answers a new one, and the old one then fails with
"Invalid Token!"): two refreshes with the same token lose the grant. SQLite: the refresh
holds the database's write lock (BEGIN IMMEDIATE) from reading the refresh token to
committing the new one; a worker killed meanwhile holds no lock any more (the kernel drops
it) and its transaction is rolled back. The others wait for the lock, read again, and use
the new access token. The new refresh token is committed as soon as Zoom answers, before the
access token is used: the one window where a grant can be lost is a crash between Zoom's
answer and that commit (docs/join.md).

May import config (the settings), errors and observe; never gRPC, never httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

from ..observe.metrics import GRANT_STATES
from .sealing import Sealer, Unsealable

T = TypeVar("T")


@dataclass(frozen=True)
class Tokens:
    """What Zoom's token endpoint answered: both tokens, until when the access token is
    used (epoch seconds, a margin before Zoom's expiry) and the scopes granted."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_until: float
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class StoredGrant:
    """A user's grant to an app, its tokens opened (in memory only)."""

    app: str
    user_id: str
    email: str
    scopes: tuple[str, ...]
    created_at: float
    tokens: Tokens
    broken: bool = False
    version: int = 0
    # Its tokens are sealed with a key this server does not have (a grant key dropped or
    # not yet given): listed and removable, never used; `tokens` is then empty.
    unopened: bool = False

    def usable(self, now: float) -> bool:
        return not self.broken and not self.unopened and now < self.tokens.access_until


@dataclass(frozen=True)
class Pending:
    """A grant begun: who began it, for which app and callback, and its PKCE verifier."""

    app: str
    caller: str
    redirect_uri: str
    verifier: str = field(repr=False)
    expires_at: float


class Refused(Exception):
    """Zoom refused the grant's refresh token: the user must authorize again."""


class StoreUnavailable(Exception):
    """The store did not answer (or another worker's refresh did not end) in time; the
    message names what, never a token."""


@dataclass(frozen=True)
class Census:
    """A store's grants, counted: by state (GRANT_STATES), and how many of those in use (not
    broken) hold a token sealed with another key than the current one, which must not be
    dropped while any does (docs/join.md). One whose key is already gone counts too, until
    it is removed or authorized again."""

    states: dict[str, int]
    old_key: int


# What refresh() calls, under the lock, with the grant as stored: Zoom's new tokens, or
# Refused, or any other exception (nothing is then changed).
Refresher = Callable[[StoredGrant], Awaitable[Tokens]]


class GrantStore(Protocol):
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...
    async def put(self, grant: StoredGrant) -> None: ...
    async def get(self, app: str, user: str) -> StoredGrant | None: ...
    async def delete(self, app: str, user_id: str) -> bool: ...
    async def page(self, app: str, after: str, limit: int) -> list[StoredGrant]: ...
    async def census(self) -> Census: ...
    async def put_pending(self, state: str, pending: Pending) -> None: ...
    async def take_pending(self, state: str, now: float) -> Pending | None: ...
    async def refresh(
        self, app: str, user_id: str, stale_access: str, now: float, refresher: Refresher
    ) -> StoredGrant | None: ...


def state_key(state: str) -> str:
    """What a state is kept under: its SHA-256, so that the store never holds one as given."""
    return hashlib.sha256(state.encode()).hexdigest()


def needs_refresh(grant: StoredGrant, stale_access: str, now: float) -> bool:
    """Whether the grant read under the lock still needs the refresh asked for: not when
    another worker refreshed it meanwhile (a new access token, still usable), nor when it is
    broken (Zoom already refused it: never asked again) or unopened (no token to send)."""
    if grant.broken or grant.unopened:
        return False
    return grant.tokens.access_token == stale_access or not grant.usable(now)


def seal_fields(sealer: Sealer, grant: StoredGrant) -> dict[str, str]:
    place = f"{grant.app}\x00{grant.user_id}"
    return {
        "refresh": sealer.seal(grant.tokens.refresh_token, place + "\x00refresh"),
        "access": sealer.seal(grant.tokens.access_token, place + "\x00access"),
        "access_until": repr(grant.tokens.access_until),
        "scopes": " ".join(grant.scopes),
        "state": "broken" if grant.broken else "ok",
    }


def open_grant(sealer: Sealer, fields: dict[str, str]) -> StoredGrant:
    """A grant from its stored fields (strings); `unopened`, without tokens, when they do
    not open with the sealer's keys."""
    place = f"{fields['app']}\x00{fields['user_id']}"
    scopes = tuple(fields["scopes"].split())
    try:
        tokens = Tokens(
            access_token=sealer.open(fields["access"], place + "\x00access"),
            refresh_token=sealer.open(fields["refresh"], place + "\x00refresh"),
            access_until=float(fields["access_until"]),
            scopes=scopes,
        )
        unopened = False
    except Unsealable:
        tokens, unopened = Tokens("", "", 0.0, scopes), True
    return StoredGrant(
        app=fields["app"],
        user_id=fields["user_id"],
        email=fields["email"],
        scopes=scopes,
        created_at=float(fields["created_at"]),
        tokens=tokens,
        broken=fields["state"] == "broken",
        version=int(fields["version"]),
        unopened=unopened,
    )


def seal_pending(sealer: Sealer, key: str, pending: Pending) -> str:
    return json.dumps(
        {
            "app": pending.app,
            "caller": pending.caller,
            "redirect_uri": pending.redirect_uri,
            "verifier": sealer.seal(pending.verifier, key),
            "expires_at": pending.expires_at,
        }
    )


def open_pending(sealer: Sealer, key: str, text: str) -> Pending | None:
    try:
        body = json.loads(text)
        return Pending(
            app=body["app"],
            caller=body["caller"],
            redirect_uri=body["redirect_uri"],
            verifier=sealer.open(body["verifier"], key),
            expires_at=float(body["expires_at"]),
        )
    except (ValueError, KeyError, TypeError, Unsealable):
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
  app TEXT NOT NULL, user_id TEXT NOT NULL, email TEXT NOT NULL, scopes TEXT NOT NULL,
  created_at REAL NOT NULL, refresh TEXT NOT NULL, access TEXT NOT NULL,
  access_until REAL NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (app, user_id));
CREATE INDEX IF NOT EXISTS grants_by_email ON grants (app, email);
CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY, body TEXT NOT NULL,
  expires_at REAL NOT NULL);
"""


class SqliteGrants:
    """Grants in a SQLite file (mode 0600) that the processes of one host share. Every call
    runs in a thread on its own connection; `timeout` bounds the wait for the write lock,
    and so for another worker's refresh (it outlasts a refresh's exchange with Zoom)."""

    def __init__(self, path: Path, sealer: Sealer, timeout: float) -> None:
        self.path = path
        self.sealer = sealer
        self.timeout = timeout

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        return connection

    async def start(self) -> None:
        await asyncio.to_thread(self._create)

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Made 0600 before SQLite opens it (its -wal and -shm files take the same mode).
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        with contextlib.closing(self._connect()) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    async def aclose(self) -> None:
        """Nothing held between calls."""

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def in_thread() -> T:
            with contextlib.closing(self._connect()) as connection:
                return work(connection)

        try:
            return await asyncio.to_thread(in_thread)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the grant store {self.path.name} failed: {error}") from None

    async def put(self, grant: StoredGrant) -> None:
        values = {
            "app": grant.app,
            "user_id": grant.user_id,
            "email": grant.email.lower(),
            "created_at": grant.created_at,
            "version": grant.version,
            **seal_fields(self.sealer, grant),
        }
        sql = (
            "INSERT OR REPLACE INTO grants (app, user_id, email, scopes, created_at, refresh, "
            "access, access_until, state, version) VALUES (:app, :user_id, :email, :scopes, "
            ":created_at, :refresh, :access, :access_until, :state, :version)"
        )
        await self._run(lambda c: c.execute(sql, values))

    async def get(self, app: str, user: str) -> StoredGrant | None:
        column = "email" if "@" in user else "user_id"
        given = user.lower() if "@" in user else user
        sql = f"SELECT * FROM grants WHERE app = ? AND {column} = ?"  # noqa: S608 (a column name)
        row = await self._run(lambda c: c.execute(sql, (app, given)).fetchone())
        return None if row is None else self._open(row)

    def _open(self, row: sqlite3.Row) -> StoredGrant:
        fields = {key: str(row[key]) for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        return open_grant(self.sealer, fields)

    async def delete(self, app: str, user_id: str) -> bool:
        sql = "DELETE FROM grants WHERE app = ? AND user_id = ?"
        return await self._run(lambda c: c.execute(sql, (app, user_id)).rowcount > 0)

    async def page(self, app: str, after: str, limit: int) -> list[StoredGrant]:
        sql = "SELECT * FROM grants WHERE app = ? AND user_id > ? ORDER BY user_id LIMIT ?"
        rows = await self._run(lambda c: c.execute(sql, (app, after, limit)).fetchall())
        return [self._open(row) for row in rows]

    async def census(self) -> Census:
        prefix = self.sealer.prefix
        sql = (
            "SELECT state, count(*), total(state = 'ok' AND (substr(refresh, 1, ?2) != ?1 "
            "OR substr(access, 1, ?2) != ?1)) FROM grants GROUP BY state"
        )
        rows = await self._run(lambda c: c.execute(sql, (prefix, len(prefix))).fetchall())
        states = dict.fromkeys(GRANT_STATES, 0) | {row[0]: row[1] for row in rows}
        return Census(states, int(sum(row[2] for row in rows)))

    async def put_pending(self, state: str, pending: Pending) -> None:
        key = state_key(state)
        body = seal_pending(self.sealer, key, pending)

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM pending WHERE expires_at < ?", (pending.expires_at - 3600,)
            )
            connection.execute(
                "INSERT INTO pending (key, body, expires_at) VALUES (?, ?, ?)",
                (key, body, pending.expires_at),
            )

        await self._run(work)

    async def take_pending(self, state: str, now: float) -> Pending | None:
        """The pending grant of `state`, taken (single use: a second take finds nothing)."""
        key = state_key(state)
        sql = "DELETE FROM pending WHERE key = ? RETURNING body, expires_at"
        row = await self._run(lambda c: c.execute(sql, (key,)).fetchone())
        if row is None or row[1] < now:
            return None
        return open_pending(self.sealer, key, row[0])

    async def refresh(
        self, app: str, user_id: str, stale_access: str, now: float, refresher: Refresher
    ) -> StoredGrant | None:
        """The grant refreshed once, under the database's write lock (see the module's
        docstring); None when it was removed. A grant another worker refreshed meanwhile is
        returned as it is; one Zoom refuses is stored broken and returned so."""
        connection = await asyncio.to_thread(self._connect)
        try:
            row = await self._locked(connection, app, user_id)
            if row is None:
                return None
            grant = self._open(row)
            if not needs_refresh(grant, stale_access, now):
                return grant
            try:
                tokens = await refresher(grant)
                fresh = replace(grant, tokens=tokens, scopes=tokens.scopes)
            except Refused:
                fresh = replace(grant, broken=True)
            fresh = replace(fresh, version=grant.version + 1)
            # The new refresh token first: committed before anyone uses the access token.
            await asyncio.to_thread(self._write, connection, fresh)
            return fresh
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the grant store {self.path.name} failed: {error}") from None
        finally:
            await asyncio.shield(asyncio.to_thread(_end, connection))

    async def _locked(
        self, connection: sqlite3.Connection, app: str, user_id: str
    ) -> sqlite3.Row | None:
        def work() -> sqlite3.Row | None:
            connection.execute("BEGIN IMMEDIATE")  # waits up to `timeout` for the lock
            row: sqlite3.Row | None = connection.execute(
                "SELECT * FROM grants WHERE app = ? AND user_id = ?", (app, user_id)
            ).fetchone()
            return row

        return await asyncio.to_thread(work)

    def _write(self, connection: sqlite3.Connection, grant: StoredGrant) -> None:
        fields = seal_fields(self.sealer, grant)
        connection.execute(
            "UPDATE grants SET refresh = :refresh, access = :access, "
            "access_until = :access_until, scopes = :scopes, state = :state, "
            "version = :version WHERE app = :app AND user_id = :user_id",
            {**fields, "version": grant.version, "app": grant.app, "user_id": grant.user_id},
        )
        connection.execute("COMMIT")


def _end(connection: sqlite3.Connection) -> None:
    """Roll back what was not committed (a refresh that failed) and close."""
    with contextlib.suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    connection.close()
