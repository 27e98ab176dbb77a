"""User grants against the stand-in of Zoom's user OAuth (harness.zoomusers) over HTTP on
loopback, with the real stores: a SQLite file and a real Redis (tests.conftest).

Begin and complete store a grant naming the user; the OBF token is the one Zoom issued; the
grant survives a new keeper (a restart); remove revokes at Zoom; a refused refresh marks the
grant broken, once; no token is in the store in the clear; and processes sharing the store,
with 2-second access tokens, never send a rotated-out refresh token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis import Redis

from harness.redis import RedisServer
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.server.config import App, RateLimitStore, ZoomSettings
from sdksign.server.config.keys import read_key
from sdksign.server.errors import FailedPrecondition, NotFound, Unavailable
from sdksign.server.zoom.rules import GRANT_STATE_LIFETIME
from sdksign.server.zoomapi import grants as grants_module
from sdksign.server.zoomapi.grantredis import RedisGrants, redis_client
from sdksign.server.zoomapi.grants import GrantKeeper
from sdksign.server.zoomapi.grantstore import (
    Census,
    GrantStore,
    SqliteGrants,
    StoredGrant,
    Tokens,
)
from sdksign.server.zoomapi.sealing import Sealer, new_key_text
from sdksign.server.zoomapi.userauth import UserOAuth, pkce_pair
from tests.conftest import ROOT, redis_password

SDK_KEY = "GrantAppKey01"
SDK_SECRET = secrets.token_urlsafe(32)
APP = App("meeting", "meeting", SDK_KEY, SDK_SECRET.encode())
KEY_TEXT = new_key_text()
CALLBACK = "https://backend.example.com/zoom/callback"
MEETING = "123456789"


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        api.user_oauth.apps[SDK_KEY] = SDK_SECRET
        yield api


@pytest.fixture(params=["sqlite", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'grants.db'}"
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    yield redis.url


def make_store(spec: str, sealer: Sealer | None = None) -> GrantStore:
    sealer = sealer or Sealer(read_key(KEY_TEXT.encode(), "key"))
    if spec.startswith("sqlite:"):
        return SqliteGrants(Path(spec.removeprefix("sqlite:")), sealer, timeout=5.0)
    parts = urlsplit(spec)
    password = _PASSWORDS[spec].encode()
    store = RateLimitStore(host=parts.hostname or "", port=parts.port or 0, password=password)
    return RedisGrants(redis_client(store), sealer, lock_seconds=5.0, name=spec)


_PASSWORDS: dict[str, str] = {}


@pytest.fixture
async def keeper(
    store_spec: str, zoom: ZoomApi, request: pytest.FixtureRequest
) -> AsyncIterator[GrantKeeper]:
    if not store_spec.startswith("sqlite:"):
        _PASSWORDS[store_spec] = redis_password(request.getfixturevalue("redis_server"))
    made = new_keeper(store_spec, zoom)
    await made.store.start()
    yield made
    await made.aclose()


def new_keeper(
    spec: str,
    zoom: ZoomApi,
    sealer: Sealer | None = None,
    clock: Callable[[], float] = time.time,
) -> GrantKeeper:
    settings = ZoomSettings(oauth_url=zoom.url, api_url=zoom.url, timeout=2.0)
    return GrantKeeper(make_store(spec, sealer), UserOAuth(settings), clock)


async def authorize(keeper: GrantKeeper, caller: str = "backend") -> tuple[str, str]:
    """Begin a grant and follow Zoom's authorize page as the browser would: (state, code)."""
    url, state, _ = await keeper.begin(APP, caller, CALLBACK)
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == [state]
    return state, back["code"][0]


async def granted(keeper: GrantKeeper, caller: str = "backend") -> None:
    state, code = await authorize(keeper, caller)
    await keeper.complete(lambda name: APP if name == APP.name else None, caller, state, code)


async def test_begin_and_complete_store_a_grant_naming_the_user(
    keeper: GrantKeeper, zoom: ZoomApi
) -> None:
    url, state, expires_at = await keeper.begin(APP, "backend", CALLBACK)
    assert 0 < expires_at - time.time() <= 600
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{zoom.url}/oauth/authorize?")
    assert query["response_type"] == ["code"] and query["client_id"] == [SDK_KEY]
    assert query["redirect_uri"] == [CALLBACK] and query["state"] == [state]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    state, code = await authorize(keeper)
    grant = await keeper.complete(lambda name: APP, "backend", state, code)
    assert (grant.user_id, grant.email) == ("u-alice", "alice@example.com")
    stored = await keeper.store.get("meeting", "Alice@Example.com")
    assert stored is not None and stored.user_id == "u-alice"
    # The state is single use.
    with pytest.raises(FailedPrecondition, match="begin the grant again"):
        await keeper.complete(lambda name: APP, "backend", state, code)


async def test_a_state_is_bound_to_the_caller_that_began_it(keeper: GrantKeeper) -> None:
    state, code = await authorize(keeper, caller="backend")
    with pytest.raises(FailedPrecondition, match="another caller"):
        await keeper.complete(lambda name: APP, "intruder", state, code)
    assert await keeper.store.get("meeting", "u-alice") is None


async def test_a_grant_zoom_made_but_whose_user_is_unnamed_is_not_kept(
    keeper: GrantKeeper, zoom: ZoomApi
) -> None:
    """GET /v2/users/me failing after the code exchange: UNAVAILABLE, nothing stored, and a
    retry told to begin again (docs/join.md, the grant flow's step 3)."""
    state, code = await authorize(keeper)
    zoom.fail_500, zoom.fault_on = 1.0, "user_me"
    with pytest.raises(Unavailable) as caught:
        await keeper.complete(lambda name: APP, "backend", state, code)
    assert code not in str(caught.value) and state not in str(caught.value)
    zoom.fail_500 = 0.0
    with pytest.raises(FailedPrecondition, match="begin the grant again"):
        await keeper.complete(lambda name: APP, "backend", state, code)
    assert await keeper.store.census() == Census({"ok": 0, "broken": 0}, old_key=0)


async def test_a_state_lives_ten_minutes_and_a_late_use_spends_it(keeper: GrantKeeper) -> None:
    now = [time.time()]
    timed = GrantKeeper(keeper.store, keeper.oauth, clock=lambda: now[0])

    def find(name: str) -> App:
        return APP

    state, code = await authorize(timed)
    now[0] += GRANT_STATE_LIFETIME + 1
    with pytest.raises(FailedPrecondition, match="expired"):
        await timed.complete(find, "backend", state, code)
    now[0] = time.time()  # the late attempt took the state: it is gone even in time
    with pytest.raises(FailedPrecondition, match="begin the grant again"):
        await timed.complete(find, "backend", state, code)
    assert await keeper.store.get("meeting", "u-alice") is None
    state, code = await authorize(timed)
    now[0] += GRANT_STATE_LIFETIME - 1
    grant = await timed.complete(find, "backend", state, code)
    assert grant.user_id == "u-alice"


def stored(user: int, app: str = "meeting") -> StoredGrant:
    tokens = Tokens(f"at-{user}", f"rt-{user}", time.time() + 600, ("user:read:zak",))
    return StoredGrant(app, f"u-{user}", f"user{user}@example.com", (), time.time(), tokens)


async def test_pages_name_each_grant_of_the_app_once_in_order(keeper: GrantKeeper) -> None:
    for user in (3, 0, 4, 1, 2):
        await keeper.store.put(stored(user))
    await keeper.store.put(stored(9, app="webinar"))
    pages: list[list[str]] = []
    after = ""
    while page := await keeper.store.page("meeting", after, 2):
        pages.append([grant.user_id for grant in page])
        after = page[-1].user_id
    assert pages == [["u-0", "u-1"], ["u-2", "u-3"], ["u-4"]]
    # A grant removed between two pages is not named; the next page goes on after the last.
    assert await keeper.store.delete("meeting", "u-2")
    assert [g.user_id for g in await keeper.store.page("meeting", "u-1", 2)] == ["u-3", "u-4"]
    assert [g.user_id for g in await keeper.store.page("webinar", "", 10)] == ["u-9"]


async def test_the_obf_token_is_the_one_zoom_issued_and_the_grant_survives_a_restart(
    keeper: GrantKeeper, zoom: ZoomApi, store_spec: str
) -> None:
    await granted(keeper)
    obf = await keeper.obf(APP, "alice@example.com", MEETING)
    assert obf.user_id == "u-alice"
    assert zoom.user_oauth.obf_issued[("u-alice", MEETING)] == [obf.token]
    again = new_keeper(store_spec, zoom)  # another process's keeper, same store
    try:
        second = (await again.obf(APP, "u-alice", MEETING)).token
    finally:
        await again.aclose()
    assert zoom.user_oauth.obf_issued[("u-alice", MEETING)] == [obf.token, second]
    assert obf.token != second  # never cached


async def test_a_new_key_opens_old_grants_seals_on_refresh_and_counts_the_rest(
    keeper: GrantKeeper, zoom: ZoomApi, store_spec: str
) -> None:
    """docs/join.md, "Rotating the grant key": the old key kept as previous, a grant sealed
    with it still serves and is sealed again on its next refresh; the census counts the
    grants in use still sealed with it (a broken one is not: it is no loss). A key dropped
    too soon leaves its grants listed and removable, their Signs UNAVAILABLE naming the
    user and saying why."""
    old, new = read_key(KEY_TEXT.encode(), "key"), os.urandom(32)
    await granted(keeper)
    await keeper.store.put(stored(7))
    await keeper.store.put(replace(stored(8), broken=True))
    rotated = new_keeper(store_spec, zoom, Sealer(new, previous=[old]))
    late = new_keeper(store_spec, zoom, Sealer(new, previous=[old]), lambda: time.time() + 7200)
    only_new = new_keeper(store_spec, zoom, Sealer(new))
    try:
        assert await rotated.store.census() == Census({"ok": 2, "broken": 1}, old_key=2)
        with pytest.raises(Unavailable, match=r"'u-alice'.*grant key") as caught:
            await only_new.obf(APP, "u-alice", MEETING)  # the old key dropped too soon
        assert not [v for v in zoom.user_oauth.handed_out if v in str(caught.value)]
        listed = await only_new.page(APP, "", 10)
        assert [(g.user_id, g.unopened) for g in listed] == [
            ("u-7", True),
            ("u-8", True),
            ("u-alice", True),
        ]
        assert (await rotated.obf(APP, "u-alice", MEETING)).user_id == "u-alice"
        refreshes = zoom.user_oauth.refreshes
        await late.obf(APP, "u-alice", MEETING)  # its access token due: refreshed, sealed anew
        assert zoom.user_oauth.refreshes == refreshes + 1
        assert await rotated.store.census() == Census({"ok": 2, "broken": 1}, old_key=1)
        assert (await only_new.obf(APP, "alice@example.com", MEETING)).user_id == "u-alice"
        # u-7's grant never used meanwhile: removed without a token to revoke.
        assert (await only_new.remove(APP, "user7@example.com")).user_id == "u-7"
        assert zoom.user_oauth.revoked == 0
        assert await only_new.store.census() == Census({"ok": 1, "broken": 1}, old_key=0)
    finally:
        for each in (rotated, late, only_new):
            await each.aclose()


async def test_a_user_without_a_grant_must_authorize(keeper: GrantKeeper) -> None:
    with pytest.raises(
        FailedPrecondition, match=r"'bob@example.com' has no grant.*authorize again"
    ):
        await keeper.obf(APP, "bob@example.com", MEETING)


async def test_remove_revokes_at_zoom_and_deletes(keeper: GrantKeeper, zoom: ZoomApi) -> None:
    await granted(keeper)
    await keeper.remove(APP, "alice@example.com")
    assert zoom.user_oauth.revoked == 1
    assert await keeper.store.get("meeting", "u-alice") is None
    with pytest.raises(NotFound):
        await keeper.remove(APP, "alice@example.com")


async def test_a_refused_refresh_marks_the_grant_broken_once(
    keeper: GrantKeeper, zoom: ZoomApi
) -> None:
    zoom.user_oauth.access_lifetime = 2  # used for 1 s
    await granted(keeper)
    stored = await keeper.store.get("meeting", "u-alice")
    assert stored is not None
    # Zoom forgets the grant (revoked elsewhere): the next refresh is refused.
    zoom.user_oauth.revoke({"token": stored.tokens.refresh_token}, _basic())
    await asyncio.sleep(1.2)
    with pytest.raises(FailedPrecondition, match=r"refused.*authorize again"):
        await keeper.obf(APP, "u-alice", MEETING)
    refreshes = zoom.user_oauth.refreshes
    with pytest.raises(FailedPrecondition, match="refused"):
        await keeper.obf(APP, "u-alice", MEETING)
    assert zoom.user_oauth.refreshes == refreshes  # never asked again
    assert await keeper.store.census() == Census({"ok": 0, "broken": 1}, old_key=0)


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{SDK_KEY}:{SDK_SECRET}".encode()).decode()


async def test_no_token_is_in_the_store_in_the_clear(
    keeper: GrantKeeper,
    zoom: ZoomApi,
    store_spec: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Neither tokens, nor PKCE verifiers (of a completed grant and of a pending one), nor
    authorization codes, nor states, nor the sealing key are in the store as given."""
    verifiers: list[str] = []

    def recorded_pkce_pair() -> tuple[str, str]:
        verifier, challenge = pkce_pair()
        verifiers.append(verifier)
        return verifier, challenge

    monkeypatch.setattr(grants_module, "pkce_pair", recorded_pkce_pair)
    zoom.user_oauth.access_lifetime = 2
    first_state, first_code = await authorize(keeper)
    await keeper.complete(lambda name: APP, "backend", first_state, first_code)
    await asyncio.sleep(1.2)
    await keeper.obf(APP, "u-alice", MEETING)  # a refresh: new tokens written
    state, code = await authorize(keeper)  # a pending grant, its verifier sealed
    if store_spec.startswith("sqlite:"):
        stored = await asyncio.to_thread(sqlite_bytes, Path(store_spec.removeprefix("sqlite:")))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = Redis(port=server.port, password=redis_password(server))
        stored = b"".join(
            repr(client.dump(key)).encode() + str(key).encode() for key in client.keys("*")
        )
    assert len(stored) > 0
    assert len(verifiers) == 2 and {first_code, code} <= set(zoom.user_oauth.handed_out)
    handed = [*zoom.user_oauth.handed_out, *verifiers, first_code, code, first_state, state]
    handed.append(KEY_TEXT)
    assert [value[:10] for value in handed if value.encode() in stored] == []


def sqlite_bytes(path: Path) -> bytes:
    """Every byte of the SQLite store (its -wal file too), once its mode is checked."""
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return b"".join(p.read_bytes() for p in path.parent.glob("grants.db*"))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_four_processes_sharing_the_store_never_send_a_stale_refresh_token(
    backend: str, tmp_path: Path, zoom: ZoomApi, request: pytest.FixtureRequest
) -> None:
    """Four processes (two replicas of two workers each), 2-second access tokens, 8 s of OBF
    requests from each: every call OK, and no rotated-out refresh token sent to Zoom."""
    env = dict(os.environ, GRANT_APP_KEY=SDK_KEY, GRANT_APP_SECRET=SDK_SECRET, GRANT_KEY=KEY_TEXT)
    if backend == "sqlite":
        spec = f"sqlite:{tmp_path / 'grants.db'}"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        spec = server.url
        env["GRANT_REDIS_PASSWORD"] = _PASSWORDS[spec] = redis_password(server)
    zoom.user_oauth.access_lifetime = 2

    async def setup() -> None:
        made = new_keeper(spec, zoom)
        await made.store.start()
        await granted(made)
        await made.aclose()

    asyncio.run(setup())
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.grantload", spec, zoom.url, "8"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    calls: Counter[str] = Counter()
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        calls.update(json.loads(out.strip().splitlines()[-1])["calls"])
    assert set(calls) == {"OK"} and calls["OK"] > 0
    assert zoom.user_oauth.stale_refreshes == 0
    assert zoom.user_oauth.refreshes >= 4  # 8 s of 1-second usable tokens


async def test_a_refresh_answered_after_the_timeout_is_kept_not_lost(
    keeper: GrantKeeper, zoom: ZoomApi
) -> None:
    """Zoom rotates the refresh token but answers after [zoom] timeout (2 s here): the call
    that waited gets UNAVAILABLE, the exchange goes on and stores the new tokens, and the
    next call uses them: no stale refresh token is sent, the grant stays ok."""
    zoom.user_oauth.access_lifetime = 2
    await granted(keeper)
    await asyncio.sleep(1.2)
    zoom.user_oauth.access_lifetime = 3599
    zoom.user_oauth.refresh_delay = 2.5
    started = time.monotonic()
    with pytest.raises(Unavailable, match="did not answer the refresh") as late:
        await keeper.obf(APP, "u-alice", MEETING)
    assert late.value.reason == "ZOOM_TIMEOUT"
    assert 1.9 < time.monotonic() - started < 2.5
    zoom.user_oauth.refresh_delay = 0
    for _ in range(100):  # the answer comes 2.5 s after the request; then it is stored
        stored = await keeper.store.get("meeting", "u-alice")
        if stored is not None and stored.version > 0:
            break
        await asyncio.sleep(0.05)
    obf = await keeper.obf(APP, "u-alice", MEETING)
    assert zoom.user_oauth.obf_issued[("u-alice", MEETING)] == [obf.token]
    assert zoom.user_oauth.refreshes == 1 and zoom.user_oauth.stale_refreshes == 0
    assert await keeper.store.census() == Census({"ok": 1, "broken": 0}, old_key=0)


async def test_a_refresh_whose_redis_lock_ran_out_is_fenced_off(
    zoom: ZoomApi, request: pytest.FixtureRequest
) -> None:
    """Refresh A holds the lock past its life (a paused worker); refresh B takes the lock
    and writes first. A's write is refused, because the grant's version moved, and A
    answers B's tokens: the newer refresh token is never written over."""
    server: RedisServer = request.getfixturevalue("redis_server")
    _PASSWORDS[server.url] = redis_password(server)
    made = new_keeper(server.url, zoom)
    await granted(made)
    await made.aclose()
    store = make_store(server.url)
    assert isinstance(store, RedisGrants)
    store.lock_seconds = 0.3
    before = await store.get("meeting", "u-alice")
    assert before is not None
    a_started, b_done = asyncio.Event(), asyncio.Event()

    def tokens(name: str) -> Tokens:
        return Tokens(f"{name}-access", f"{name}-refresh", time.time() + 3600, ("s",))

    async def paused(grant: StoredGrant) -> Tokens:
        a_started.set()
        await b_done.wait()  # the lock ran out meanwhile, and B wrote
        return tokens("a")

    async def prompt(grant: StoredGrant) -> Tokens:
        return tokens("b")

    async def b_refresh() -> StoredGrant | None:
        await a_started.wait()
        try:  # waits for A's lock to run out (0.3 s), then refreshes
            return await store.refresh(
                "meeting", "u-alice", before.tokens.access_token, time.time(), prompt
            )
        finally:
            b_done.set()

    try:
        a, b = await asyncio.gather(
            store.refresh("meeting", "u-alice", before.tokens.access_token, time.time(), paused),
            b_refresh(),
        )
        stored = await store.get("meeting", "u-alice")
    finally:
        await store.aclose()
    assert b is not None and b.tokens.refresh_token == "b-refresh"
    assert a is not None and a.tokens.refresh_token == "b-refresh"  # fenced: B's, read back
    assert stored is not None and stored.tokens.refresh_token == "b-refresh"
    assert stored.version == before.version + 1
