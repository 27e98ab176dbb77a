"""compare.py --store: what the shared rate limit store ([rate_limits] store) adds to a call.

Both sides serve a configuration whose anonymous callers (the load) have a rate no run
reaches, so that every Sign and Verify spends a token and none is refused: the before
side from each worker's own buckets, the after side from a redis-server started here
(Debian's, on a free loopback port, no persistence). The difference between the two
is the store's cost alone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bench

# The store's timeout here: long enough that a loaded machine never makes a call go without
# the store (each such call would be counted in the after column at the local cost).
TIMEOUT = 1.0


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port; its URL. Stopped at the end."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        sys.exit("compare: --store needs Debian's redis-server (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *options, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_pong(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_pong(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit("compare: redis-server did not start")
        time.sleep(0.05)


def rate_limited_config(folder: Path, store: str | None) -> Path:
    """A configuration file in `folder`: the bench's app, anonymous callers with a rate no run
    reaches, and with `store` their buckets in it."""
    text = (
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{bench.SDK_KEY}"\n'
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
