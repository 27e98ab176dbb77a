"""Connections to every worker of a `sdksign serve --workers N`, so that load meant for N
workers reaches them all.

The workers share one port (SO_REUSEPORT), and the kernel hands each new connection to one of
them; a gRPC channel is one HTTP/2 connection, and every call on it goes to the worker that
took it. One channel therefore exercises one worker, however many the server has. Here,
channels are opened one at a time, each its own connection (`grpc.use_local_subchannel_pool`:
channels of this process do not share one), a first call made on each, and the worker that
served it read from the server's `rpc` log line; a channel is kept when it reaches a worker
not reached yet, else closed, until every worker has one.

    channels = await channel_per_worker(server, 2, probe)
    try:
        ...  # calls spread over channels.values(): each worker serves some
    finally:
        await close(channels.values())
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import grpc

from harness.server import ServerProcess

# Each channel its own connection.
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)
# The most connections opened to find every worker: each lands on a worker at random, so
# missing one of 2 workers 64 times has odds of 2 in 2^64.
MOST_CONNECTIONS = 64
# How long a probe's `rpc` line may take to be logged (it comes once the answer has left).
LINE_TIMEOUT = 15.0


async def channel_per_worker(
    server: ServerProcess,
    workers: int,
    probe: Callable[[grpc.aio.Channel], Awaitable[object]],
    most: int = MOST_CONNECTIONS,
    method: str | None = None,
) -> dict[int, grpc.aio.Channel]:
    """A channel to each of the `workers` workers of `server`, by worker index. `probe` makes
    one call on a new channel (that logs an `rpc` line: not a health check, logged at debug
    only), of `method` when given (its full path): only that method's lines are read, so a
    line of an earlier call of another method logged late is not taken for the probe's. Nothing else may call
    `server` meanwhile. AssertionError when `most` connections have not reached them all."""
    found: dict[int, grpc.aio.Channel] = {}
    try:
        for _ in range(most):
            if len(found) == workers:
                return found
            channel = grpc.aio.insecure_channel(server.target, options=OWN_CONNECTION)
            before = len(_rpc_lines(server, method))
            await probe(channel)
            worker = int(str((await _new_line(server, before, method)).get("worker", 0)))
            if worker in found:
                await channel.close()
            else:
                found[worker] = channel
        if len(found) == workers:
            return found
    except BaseException:
        await close(found.values())
        raise
    await close(found.values())
    raise AssertionError(f"{most} connections reached workers {sorted(found)} of {workers}")


def _rpc_lines(server: ServerProcess, method: str | None) -> list[dict[str, object]]:
    return [line for line in server.events("rpc") if method in (None, line.get("method"))]


async def _new_line(server: ServerProcess, before: int, method: str | None) -> dict[str, object]:
    """The `rpc` line (of `method`) logged after the first `before` ones."""
    deadline = time.monotonic() + LINE_TIMEOUT
    while len(lines := _rpc_lines(server, method)) <= before:
        assert time.monotonic() < deadline, f"no rpc line within {LINE_TIMEOUT:g} s"
        await asyncio.sleep(0.02)
    return lines[before]


async def close(channels: Iterable[grpc.aio.Channel]) -> None:
    for channel in list(channels):
        await channel.close()
