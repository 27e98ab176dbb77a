"""The fuzz scenario: fuzzed bodies sent as they are (a grpc channel with no serializer) to
Sign, Verify, Health/Check and Zoom's sample, many at once; answers counted by status code."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from sdksign.client import AsyncClient, Role

from .cases import METHODS, Cases, Token, resigned, token_from
from .common import HUNG, MEETING, OK, TRANSPORT, Outcomes, Row, Soak
from .load import outcome_of
from .server import scenario_config, serving

CHANNELS = 4
# Answers a fuzzed request must never get; a worker must never die of one either.
NEVER = ("UNKNOWN", "INTERNAL", HUNG, TRANSPORT)
EXAMPLES_KEPT = 20

Sender = Callable[..., Awaitable[bytes]]


async def fuzz(soak: Soak, row: Row) -> None:
    settings = soak.settings
    config = scenario_config(soak, "fuzz")
    async with serving(soak, "fuzz", config, settings.workers) as server:
        tokens = await _valid_tokens(server.target, soak)
        # A seeded generator on purpose: the same seed sends the same cases again.
        cases = Cases(random.Random(settings.seed), tokens)  # noqa: S311
        bad: Counter[str] = Counter()
        examples = soak.directory("fuzz") / "never-answers.txt"
        started = time.monotonic()
        await _send_all(server.target, cases, soak, row.outcomes, bad, examples)
        elapsed = time.monotonic() - started
        restarted = len(server.events("worker exited"))
        after = await _still_signs(server.target, settings.deadline)
    row.note(
        f"{settings.fuzz_count:,} cases in {elapsed:.0f} s, {settings.fuzz_concurrency} "
        f"concurrent, seed {settings.seed}"
    )
    _judge(row, bad, restarted, after, examples)


async def _valid_tokens(address: str, soak: Soak) -> list[Token]:
    """A web and a native meeting token, a video token, and the web one under the old secret."""
    meeting = soak.secrets["SOAK_MEETING_SECRET"].encode()
    video = soak.secrets["SOAK_VIDEO_SECRET"].encode()
    previous = soak.secrets["SOAK_MEETING_PREVIOUS_SECRET"].encode()
    async with AsyncClient(address, timeout=soak.settings.deadline) as client:
        web = await client.sign_meeting(MEETING, Role.HOST, app="meeting")
        native = await client.sign_meeting(app="meeting")
        session = await client.sign_video("soak", Role.HOST, app="video")
    web_token = token_from(web.token, meeting)
    return [
        web_token,
        token_from(native.token, meeting),
        token_from(session.token, video),
        resigned(web_token, previous),
    ]


async def _send_all(
    address: str, cases: Cases, soak: Soak, outcomes: Outcomes, bad: Counter[str], examples: Path
) -> None:
    settings = soak.settings
    options = [("grpc.enable_retries", 0)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(CHANNELS)]
    senders: dict[tuple[int, str], Sender] = {
        (n, method): channel.unary_unary(method)
        for n, channel in enumerate(channels)
        for method in METHODS
    }
    remaining = settings.fuzz_count

    async def sender(n: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            kind, method, body = cases.next()
            send = senders[n % CHANNELS, method]
            started = time.monotonic()
            outcome = await outcome_of(send(body, timeout=settings.deadline), settings.deadline)
            outcomes.add(outcome, (time.monotonic() - started) * 1000)
            if outcome in NEVER:
                _keep(bad, examples, kind, method, outcome, body)

    try:
        await asyncio.gather(*(sender(n) for n in range(settings.fuzz_concurrency)))
    finally:
        for channel in channels:
            await channel.close()


def _keep(
    bad: Counter[str], examples: Path, kind: str, method: str, outcome: str, body: bytes
) -> None:
    """Count a forbidden answer by what was sent; keep the first bodies for a look later."""
    bad[f"{outcome} for {kind} to {method.split('.')[-1]}"] += 1
    if sum(bad.values()) <= EXAMPLES_KEPT:
        with examples.open("a") as file:
            file.write(f"{outcome}\t{kind}\t{method}\t{body[:4096].hex()}\n")


async def _still_signs(address: str, deadline: float) -> str:
    async with AsyncClient(address, timeout=deadline) as client:
        return await outcome_of(client.sign_meeting(MEETING, Role.HOST, app="meeting"), deadline)


def _judge(row: Row, bad: Counter[str], restarted: int, after: str, examples: Path) -> None:
    for code in NEVER:
        if row.outcomes.counts[code]:
            row.miss(f"{row.outcomes.counts[code]:,} {code}")
    if bad:
        row.note("forbidden answers: " + ", ".join(f"{k} {n:,}" for k, n in bad.most_common(4)))
        row.note(f"first bodies in {examples}")
    row.note(f"{restarted} worker(s) restarted")
    if restarted:
        row.miss(f"{restarted} worker(s) died and were restarted")
    if after != OK:
        row.miss(f"a valid Sign afterwards answered {after}")
