"""compare.py --store: what the shared rate limit store ([rate_limits] store) adds to a call.

Both sides serve a configuration whose anonymous callers (the load) have a rate no run
reaches, so that every Sign and Verify spends a token and none is refused: the before
side from each worker's own buckets, the after side from a redis-server started here
(Debian's, on a free loopback port, no persistence). The difference between the two
is the store's cost alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.run import SDK_KEY
from harness.redis import RedisError, running_redis

# The store's timeout here: long enough that a loaded machine never makes a call go without
# the store (each such call would be counted in the after column at the local cost).
TIMEOUT = 1.0


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port, no password; its URL. Stopped at the end."""
    with ExitStack() as stack:
        try:
            redis = stack.enter_context(running_redis(folder))
        except RedisError as exc:
            sys.exit(
                f"compare: --store needs Debian's redis-server (apt-get install redis-server): {exc}"
            )
        yield redis.url


def rate_limited_config(folder: Path, store: str | None) -> Path:
    """A configuration file in `folder`: the bench's app, anonymous callers with a rate no run
    reaches, and with `store` their buckets in it."""
    text = (
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{SDK_KEY}"\n'
        'secret_env = "ZOOM_MEETING_SDK_SECRET"\n'
        '[anonymous]\nroles = ["participant"]\nrate = 1e9\nburst = 1_000_000_000\n'
    )
    if store is not None:
        text += f'[rate_limits]\nstore = "{store}"\ntimeout = {TIMEOUT}\n'
    path = folder / "sdksign.toml"
    path.write_text(text)
    return path


def times_lost(server_log: Path) -> int:
    """How often the server's workers lost the store (each such call went without it)."""
    return server_log.read_text().count('"event":"rate limit store lost"')
