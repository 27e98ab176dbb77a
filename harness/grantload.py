"""One process of OBF requests against a shared grant store, for the tests and `make soak`:
`python -m harness.grantload STORE ZOOM_URL SECONDS` with the app's SDK key and secret and
the grant key in GRANT_APP_KEY, GRANT_APP_SECRET, GRANT_KEY (base64), STORE being
`sqlite:PATH` or a redis:// URL (password in GRANT_REDIS_PASSWORD). Asks `user`'s OBF token
for SECONDS through `CONCURRENCY` tasks, then prints its counts as one JSON line:
{"calls": {"OK": n, ...}}. Bounded: it stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from sdksign.server.config import App, RateLimitStore, ZoomSettings
from sdksign.server.config.keys import read_key
from sdksign.server.errors import RequestError
from sdksign.server.zoomapi.grantredis import RedisGrants, redis_client
from sdksign.server.zoomapi.grants import GrantKeeper
from sdksign.server.zoomapi.grantstore import GrantStore, SqliteGrants
from sdksign.server.zoomapi.sealing import Sealer
from sdksign.server.zoomapi.userauth import REFRESH_LIMIT_FACTOR, UserOAuth

CONCURRENCY = 8
MEETING = "123456789"


def make_store(spec: str, sealer: Sealer, timeout: float) -> GrantStore:
    if spec.startswith("sqlite:"):
        return SqliteGrants(Path(spec.removeprefix("sqlite:")), sealer, timeout)
    parts = urlsplit(spec)
    store = RateLimitStore(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        password=(os.environ.get("GRANT_REDIS_PASSWORD") or "").encode() or None,
        timeout=timeout,
    )
    # As the server's (runtime.grantrpc.refresh_lock_seconds), `timeout` for Zoom's and the store's.
    lock_seconds = timeout * REFRESH_LIMIT_FACTOR + timeout + 1
    return RedisGrants(redis_client(store), sealer, lock_seconds=lock_seconds, name=spec)


async def run(spec: str, url: str, seconds: float, user: str) -> Counter[str]:
    app = App(
        "meeting", "meeting", os.environ["GRANT_APP_KEY"], os.environ["GRANT_APP_SECRET"].encode()
    )
    sealer = Sealer(read_key(os.environ["GRANT_KEY"].encode(), "GRANT_KEY"))
    settings = ZoomSettings(oauth_url=url, api_url=url, timeout=2.0)
    keeper = GrantKeeper(make_store(spec, sealer, 5.0), UserOAuth(settings))
    counts: Counter[str] = Counter()
    end = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < end:
            try:
                await keeper.obf(app, user, MEETING)
                counts["OK"] += 1
            except RequestError as error:
                counts[error.status] += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    await keeper.aclose()
    return counts


def main() -> None:
    spec, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    user = sys.argv[4] if len(sys.argv) > 4 else "alice@example.com"
    counts = asyncio.run(run(spec, url, seconds, user))
    print(json.dumps({"calls": dict(counts)}), flush=True)


if __name__ == "__main__":
    main()
