"""Joins outside the account under load: Signs with on_behalf_of from two replicas of two
workers each, sharing one grant store, against the stand-in of Zoom's API (harness.zoomapi,
harness.zoomusers) whose access tokens live 2 s (each used for 1 s: a refresh a second per
grant), with three users' grants.

- grants-sqlite, grants-redis: the store is a SQLite file, then a Redis; every call OK and no
  rotated-out refresh token ever sent to Zoom (the stand-in counts each one: target 0).
- grants-kill: SIGKILL of every worker of both replicas while the stand-in holds a refresh's
  answer (the worker that sent it dies mid-refresh), three times. Zoom has rotated that
  grant's refresh token and the new one dies with the worker: that grant is lost (the crash
  window docs/join.md names), and no other. Targets: grants lost <= kills mid-refresh; each
  lost grant tried with its old token once (once more when a kill cuts off that refusal
  before it is stored), then broken: stale refreshes <= lost + kills, no retry loop; calls
  answered OK,
  UNAVAILABLE (in flight on a killed worker) or FAILED_PRECONDITION (a lost grant's user).
- grants-redis-lost: the Redis (append-only file, fsync always) SIGKILLed under load, down
  2 s, started again on its files: calls meanwhile UNAVAILABLE, never hung or UNKNOWN;
  afterwards OK again, the grants still there.
- grants-restart: both replicas stopped and started again on the same SQLite store: the
  grants are still there, every on-behalf Sign OK, no user asked to authorize again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx

from harness.connections import channel_per_worker, close
from harness.process import free_port
from harness.redis import RedisServer
from harness.server import ServerProcess
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

from .common import MEETING, OK, SIGN, Row, Soak
from .load import outcome_of
from .server import MEETING_KEY, config_text, serving, write_config

WORKERS = 2
REPLICAS = 2
# On-behalf Signs in flight at once, per replica.
CONCURRENCY = 8
DEADLINE = 5.0
USERS = ("alice@example.com", "bob@example.com", "carol@example.org")
KEY_VARIABLE = "SOAK_GRANT_KEY"
REDIS_VARIABLE = "SOAK_GRANT_REDIS_PASSWORD"
CALLBACK = "https://backend.example.com/zoom/callback"
KILLS = 3


def grants_config(soak: Soak, name: str, zoom: ZoomApi, store: str) -> Path:
    """The soak's configuration: anonymous callers may keep grants and join on behalf of
    anyone (loopback only), [zoom] at the stand-in, [grants] at `store`."""
    text = config_text().replace(
        'roles = ["participant", "host"]',
        'roles = ["participant", "host"]\non_behalf_of = ["*"]\ngrants = true',
    )
    text += f'\n[zoom]\noauth_url = "{zoom.url}"\napi_url = "{zoom.url}"\ntimeout = 2\n'
    text += f'\n[grants]\nstore = "{store}"\nkey_env = "{KEY_VARIABLE}"\n'
    if store.startswith("redis"):
        text += f'password_env = "{REDIS_VARIABLE}"\n'
    path = soak.directory(name) / "sdksign.toml"
    write_config(path, text)
    return path


@contextmanager
def zoom_for(soak: Soak) -> Iterator[ZoomApi]:
    """The stand-in, its user OAuth app being the soak's meeting app, access tokens of 2 s;
    every token and code it handed out joins the secrets the log scan looks for."""
    with running_zoom_api() as zoom:
        zoom.user_oauth.apps[MEETING_KEY] = soak.secrets["SOAK_MEETING_SECRET"]
        zoom.user_oauth.access_lifetime = 2
        soak.secrets.setdefault(KEY_VARIABLE, _key())
        try:
            yield zoom
        finally:
            # Named by the count so far: each scenario's names are new, never another's.
            for value in zoom.user_oauth.handed_out:
                soak.handed_out[f"(user OAuth value {len(soak.handed_out)})"] = value


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@asynccontextmanager
async def replicas(soak: Soak, name: str, config: Path) -> AsyncIterator[list[ServerProcess]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(serving(soak, f"{name}-{i}", config, WORKERS))
            for i in range(REPLICAS)
        ]


async def grant_all(target: str, zoom: ZoomApi) -> None:
    """Each of USERS authorizes the app, as a browser would, through BeginGrant and
    CompleteGrant."""
    async with grpc.aio.insecure_channel(target) as channel, httpx.AsyncClient() as browser:
        stub = pb_grpc.SignatureServiceStub(channel)
        for user in USERS:
            zoom.user_oauth.consenting = user
            begun = await stub.BeginGrant(
                pb.BeginGrantRequest(redirect_uri=CALLBACK), timeout=DEADLINE
            )
            answer = await browser.get(begun.authorize_url)
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            await stub.CompleteGrant(
                pb.CompleteGrantRequest(state=begun.state, code=code), timeout=DEADLINE
            )


def on_behalf(index: int) -> pb.SignRequest:
    return pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT),
        on_behalf_of=USERS[index % len(USERS)],
    )


async def load(servers: list[ServerProcess], seconds: float, row: Row, calls: Counter[str]) -> None:
    """On-behalf Signs for `seconds`, CONCURRENCY in flight per replica, spread over a
    connection to each of its workers (one channel reaches one worker), each counted."""
    end = time.monotonic() + seconds

    async def probe(channel: grpc.aio.Channel) -> object:
        stub = pb_grpc.SignatureServiceStub(channel)
        return await outcome_of(stub.Sign(on_behalf(0), timeout=DEADLINE), DEADLINE)

    async def worker(stub: pb_grpc.SignatureServiceStub, first: int) -> None:
        index = first
        while time.monotonic() < end:
            started = time.monotonic()
            outcome = await outcome_of(stub.Sign(on_behalf(index), timeout=DEADLINE), DEADLINE)
            calls[outcome] += 1
            row.outcomes.add(outcome, (time.monotonic() - started) * 1000)
            index += 1
            if outcome != OK:
                await asyncio.sleep(0.05)  # a refused user is not asked again at once

    channels: list[grpc.aio.Channel] = []
    try:
        for server in servers:
            found = await channel_per_worker(server, WORKERS, probe, method=SIGN)
            channels += found.values()
        await asyncio.gather(
            *(
                worker(pb_grpc.SignatureServiceStub(channel), i)
                for channel in channels
                for i in range(CONCURRENCY // WORKERS)
            )
        )
    finally:
        await close(channels)


def signs_by_worker(servers: list[ServerProcess]) -> dict[str, int]:
    """The OK on-behalf Signs each worker of each replica logged, as "replica/worker"."""
    counts: Counter[str] = Counter()
    for number, server in enumerate(servers):
        for line in server.events("rpc"):
            if line.get("method") == SIGN and line.get("code") == OK and "obf_user_id" in line:
                counts[f"{number}/{line.get('worker', 0)}"] += 1
    return dict(sorted(counts.items()))


def report(row: Row, zoom: ZoomApi, calls: Counter[str], allowed: set[str]) -> None:
    users = zoom.user_oauth
    row.note("calls: " + ", ".join(f"{code} {n:,}" for code, n in calls.most_common()))
    row.note(
        f"refreshes at Zoom {users.refreshes:,}, stale refresh tokens sent {users.stale_refreshes}"
    )
    row.note(f"OBF tokens issued {sum(len(v) for v in users.obf_issued.values()):,}")
    if unexpected := {code: n for code, n in calls.items() if code not in allowed}:
        row.miss(f"calls answered otherwise: {unexpected}")
    if not calls[OK]:
        row.miss("no call was OK")


async def shared_store(soak: Soak, row: Row, store: str, name: str) -> None:
    with zoom_for(soak) as zoom:
        config = grants_config(soak, name, zoom, store)
        calls: Counter[str] = Counter()
        async with replicas(soak, name, config) as servers:
            await grant_all(servers[0].target, zoom)
            await load(servers, soak.settings.steady_seconds, row, calls)
            served = signs_by_worker(servers)
        report(row, zoom, calls, {OK})
        row.note(
            "on-behalf Signs by replica/worker: "
            + ", ".join(f"{k}: {n:,}" for k, n in served.items())
        )
        if len(served) < REPLICAS * WORKERS:
            row.miss(f"workers that served no on-behalf Sign: {REPLICAS * WORKERS - len(served)}")
        if zoom.user_oauth.stale_refreshes:
            row.miss(f"{zoom.user_oauth.stale_refreshes} stale refresh tokens sent")
        if zoom.user_oauth.refreshes < soak.settings.steady_seconds:
            row.miss("fewer refreshes than seconds: the 2-second tokens were not refreshed")


async def grants_sqlite(soak: Soak, row: Row) -> None:
    """Two replicas of two workers sharing a SQLite file."""
    path = soak.directory("grants-sqlite") / "grants.db"
    await shared_store(soak, row, f"sqlite:{path}", "grants-sqlite")


@asynccontextmanager
async def redis_for(soak: Soak, name: str, persist: bool = False) -> AsyncIterator[RedisServer]:
    password = soak.secrets.setdefault(REDIS_VARIABLE, _key())
    folder = soak.directory(name) / "redis"
    folder.mkdir(exist_ok=True)
    redis = RedisServer(port=free_port(), password=password, folder=folder, persist=persist)
    await asyncio.to_thread(redis.start)
    try:
        yield redis
    finally:
        await asyncio.to_thread(redis.stop)


async def grants_redis(soak: Soak, row: Row) -> None:
    """Two replicas of two workers sharing a Redis."""
    async with redis_for(soak, "grants-redis") as redis:
        await shared_store(soak, row, redis.url, "grants-redis")


async def grants_kill(soak: Soak, row: Row) -> None:
    """SIGKILL of every worker while a refresh's answer is held back, KILLS times."""
    path = soak.directory("grants-kill") / "grants.db"
    with zoom_for(soak) as zoom:
        zoom.user_oauth.refresh_delay = 0.3
        config = grants_config(soak, "grants-kill", zoom, f"sqlite:{path}")
        calls: Counter[str] = Counter()
        mid_refresh = 0
        async with replicas(soak, "grants-kill", config) as servers:
            await grant_all(servers[0].target, zoom)
            seconds = max(soak.settings.steady_seconds, 10)
            running = asyncio.ensure_future(load(servers, seconds, row, calls))
            for _ in range(KILLS):
                await asyncio.sleep(seconds / (KILLS + 1))
                for _ in range(200):  # until a refresh is in flight (at most 2 s)
                    if zoom.user_oauth.refreshing:
                        break
                    await asyncio.sleep(0.01)
                mid_refresh += bool(zoom.user_oauth.refreshing)
                for server in servers:
                    for pid in server.workers().values():
                        _kill(pid)
            await running
            listed = await _grants(servers[0].target)
        lost = [grant.user_id for grant in listed if grant.broken]
        report(row, zoom, calls, {OK, "UNAVAILABLE", "FAILED_PRECONDITION"})
        row.note(f"kills {KILLS}, of them mid-refresh {mid_refresh}; grants lost {len(lost)}")
        if len(lost) > mid_refresh:
            row.miss(f"{len(lost)} grants lost for {mid_refresh} kills mid-refresh")
        # Each lost grant's old refresh token is sent once, refused, and the grant marked
        # broken; a kill that cuts off that refusal before its commit sends it once more.
        if zoom.user_oauth.stale_refreshes > len(lost) + KILLS:
            row.miss(f"{zoom.user_oauth.stale_refreshes} stale refreshes for {len(lost)} lost")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already (respawned under another pid)
        os.kill(pid, signal.SIGKILL)


async def _grants(target: str) -> list[pb.Grant]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        listed = await stub.ListGrants(pb.ListGrantsRequest(), timeout=DEADLINE)
    return list(listed.grants)


async def grants_redis_lost(soak: Soak, row: Row) -> None:
    """The Redis SIGKILLed under load, down 2 s, then started again on its files."""
    async with redis_for(soak, "grants-redis-lost", persist=True) as redis:
        with zoom_for(soak) as zoom:
            config = grants_config(soak, "grants-redis-lost", zoom, redis.url)
            calls: Counter[str] = Counter()
            after: Counter[str] = Counter()
            async with replicas(soak, "grants-redis-lost", config) as servers:
                targets = [s.target for s in servers]
                await grant_all(targets[0], zoom)
                await load(servers, 3, row, calls)
                lost = asyncio.ensure_future(load(servers, 4, row, calls))
                await asyncio.sleep(1)
                await asyncio.to_thread(redis.kill)
                await asyncio.sleep(2)
                await asyncio.to_thread(redis.start)
                await lost
                await asyncio.sleep(1)  # the lock of a refresh cut off by the loss expires
                await load(servers, 3, row, after)
                listed = await _grants(targets[0])
            report(row, zoom, calls, {OK, "UNAVAILABLE"})
            row.note("after: " + ", ".join(f"{code} {n:,}" for code, n in after.most_common()))
            row.note(f"grants kept {sum(not g.broken for g in listed)} of {len(USERS)}")
            if set(after) != {OK}:
                row.miss(f"after Redis came back: {dict(after)}")
            if zoom.user_oauth.stale_refreshes:
                row.miss(f"{zoom.user_oauth.stale_refreshes} stale refresh tokens sent")


async def grants_restart(soak: Soak, row: Row) -> None:
    """Both replicas stopped and started again on the same SQLite file."""
    path = soak.directory("grants-restart") / "grants.db"
    with zoom_for(soak) as zoom:
        config = grants_config(soak, "grants-restart", zoom, f"sqlite:{path}")
        calls: Counter[str] = Counter()
        async with replicas(soak, "grants-restart", config) as servers:
            await grant_all(servers[0].target, zoom)
            await load(servers, 2, row, calls)
        async with replicas(soak, "grants-restart", config) as servers:
            await load(servers, 3, row, calls)
            listed = await _grants(servers[0].target)
        report(row, zoom, calls, {OK})
        row.note(f"grants after the restart {len(listed)} of {len(USERS)}")
        if sorted(g.email for g in listed) != sorted(USERS):
            row.miss(f"grants after the restart: {[g.email for g in listed]}")
