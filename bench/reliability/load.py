"""Load through the project's own AsyncClient (default retries): Sign calls at a steady rate,
sent in bursts so that many are in flight at once, every call's outcome and latency recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import grpc

from sdksign.client import AsyncClient, Role, SdkSignError

from .common import HUNG, MEETING, OK, TRANSPORT, Outcomes

# How much longer than a call's own deadline the harness waits before it calls the call hung.
DEADLINE_MARGIN = 5.0
CLIENTS = 8
BURST = 10


@dataclass(frozen=True)
class Call:
    started: float  # time.monotonic()
    ms: float
    outcome: str


async def outcome_of(call: Awaitable[object], deadline: float) -> str:
    """OK, the gRPC status code's name, hung (no answer by the deadline) or transport error:
    for the project's client (SdkSignError) and for a bare grpc.aio call alike."""
    try:
        await asyncio.wait_for(call, deadline + DEADLINE_MARGIN)
    except SdkSignError as error:
        return _code_name(error.code)
    except grpc.aio.AioRpcError as error:
        return _code_name(error.code())
    except TimeoutError:
        return HUNG
    except Exception:
        return TRANSPORT
    return OK


def _code_name(code: grpc.StatusCode) -> str:
    return HUNG if code == grpc.StatusCode.DEADLINE_EXCEEDED else str(code.name)


async def sign(client: AsyncClient) -> object:
    return await client.sign_meeting(MEETING, Role.PARTICIPANT, app="meeting")


class Load:
    """`rate` Sign calls/s spread over CLIENTS AsyncClients (a channel, so a connection, each),
    BURST calls at a time. Use as `async with Load(...) as load: load.start(); ...`."""

    def __init__(self, target: str, rate: float, deadline: float) -> None:
        self.rate = rate
        self.deadline = deadline
        self.calls: list[Call] = []
        self.max_in_flight = 0
        self._clients = [AsyncClient(target, timeout=deadline) for _ in range(CLIENTS)]
        self._pending: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._launched = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.finish()
        finally:
            for client in self._clients:
                await client.close()

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def stop_sending(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None

    async def finish(self) -> None:
        """Send no more; wait for every call in flight (past its deadline, it counts as hung)."""
        await self.stop_sending()
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self.deadline + 2 * DEADLINE_MARGIN)
        for task in set(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    def outcomes(self, since: float = 0.0, until: float = float("inf")) -> Outcomes:
        """The calls started from `since` to `until` (time.monotonic()), by outcome."""
        outcomes = Outcomes()
        for call in self.calls:
            if since <= call.started <= until:
                outcomes.add(call.outcome, call.ms)
        return outcomes

    @property
    def launched(self) -> int:
        return self._launched

    async def _tick(self) -> None:
        begin = time.monotonic()
        bursts = 0
        while True:
            for _ in range(BURST):
                self._launch()
            bursts += 1
            next_burst = begin + bursts * BURST / self.rate
            await asyncio.sleep(max(0.0, next_burst - time.monotonic()))

    def _launch(self) -> None:
        client = self._clients[self._launched % len(self._clients)]
        self._launched += 1
        task = asyncio.create_task(self._one(client))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        self.max_in_flight = max(self.max_in_flight, len(self._pending))

    async def _one(self, client: AsyncClient) -> None:
        started = time.monotonic()
        outcome = HUNG
        try:
            outcome = await outcome_of(sign(client), self.deadline)
        finally:
            self.calls.append(Call(started, (time.monotonic() - started) * 1000, outcome))
