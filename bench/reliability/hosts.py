"""Host starts (SignRequest.start_as) under load against the stand-in of Zoom's API
(harness.zoomapi), `--workers 2`: while it answers 429 and 500 at random, while it hangs, and
while it is down. Plain Signs go on beside them the whole time.

Calls go over a connection to each worker (harness.connections): one channel is one
connection, which one worker serves, so a single channel would leave the other worker idle.

Targets: every host start answered, with OK or the code its fault calls for (429:
RESOURCE_EXHAUSTED; 500, a hang, no connection: UNAVAILABLE), none hung, within its deadline;
every plain Sign OK; every worker served host starts (their log lines); the same workers at
the end as at the start; and (the log scan) no client secret, access token or ZAK in any log
line.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from harness.connections import channel_per_worker, close
from harness.process import free_port
from harness.server import ServerProcess
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

from .common import MEETING, OK, Row, Soak
from .load import outcome_of
from .server import config_text, serving, write_config

WORKERS = 2
# Host starts in flight at once, and how many each scenario makes in all; as many plain Signs.
CONCURRENCY = 20
HOST_STARTS = 600
# While Zoom hangs, each round of host starts waits out [zoom] timeout: fewer of them.
HANG_STARTS = 200
# [zoom] timeout, and each call's deadline: a hang must be answered UNAVAILABLE before it.
ZOOM_TIMEOUT = 1.0
DEADLINE = 3.0
USERS = ("alice@example.com", "bob@example.com", "u-carol")
S2S_VARIABLE = "SOAK_S2S_SECRET"


def host_config(soak: Soak, name: str, url: str, zoom: ZoomApi) -> Path:
    """The soak's configuration, its meeting app with [apps.s2s], anonymous callers allowed to
    start meetings as the stand-in's users, [zoom] at `url`."""
    s2s = (
        f'\n[apps.s2s]\naccount_id = "{zoom.account_id}"\nclient_id = "{zoom.client_id}"\n'
        f'client_secret_env = "{S2S_VARIABLE}"\n'
    )
    text = config_text().replace(
        'previous_secret_envs = ["SOAK_MEETING_PREVIOUS_SECRET"]',
        'previous_secret_envs = ["SOAK_MEETING_PREVIOUS_SECRET"]' + s2s,
    )
    text = text.replace(
        'roles = ["participant", "host"]',
        'roles = ["participant", "host"]\nstart_as = ["*@example.com", "u-carol"]',
    )
    text += f'\n[zoom]\noauth_url = "{url}"\napi_url = "{url}"\ntimeout = {ZOOM_TIMEOUT}\n'
    path = soak.directory(name) / "sdksign.toml"
    write_config(path, text)
    return path


@contextmanager
def zoom_for(soak: Soak) -> Iterator[ZoomApi]:
    """The stand-in for one scenario; its client secret, access tokens and ZAKs join the
    secrets the log scan looks for."""
    with running_zoom_api() as zoom:
        soak.secrets[S2S_VARIABLE] = zoom.client_secret
        try:
            yield zoom
        finally:
            # Named by the count so far: each scenario's names are new, never another's.
            for token in zoom.access_tokens:
                soak.handed_out[f"(access token {len(soak.handed_out)})"] = token
            for zak in (zak for issued in zoom.issued.values() for zak in issued):
                soak.handed_out[f"(ZAK {len(soak.handed_out)})"] = zak


def host_start(index: int) -> pb.SignRequest:
    """A host start for one of the users, each with its own lifetime so that no ZAK is
    reused: every one asks Zoom."""
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST),
        start_as=USERS[index % len(USERS)],
    )
    request.ttl.seconds = 1800 + index
    return request


PLAIN = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST))


async def _drive(
    server: ServerProcess, row: Row, allowed: set[str], count: int = HOST_STARTS
) -> None:
    """`count` host starts and as many plain Signs, CONCURRENCY of each in flight; every
    outcome counted: a host start's by its code (those not `allowed` as "host CODE"), a
    plain Sign's as OK or "plain Sign CODE". A host start's fault code is its target here,
    not a failure: the notes split the counts."""
    workers_before = server.workers()
    hosts: Counter[str] = Counter()
    plain: Counter[str] = Counter()
    late = 0

    async def probe(channel: grpc.aio.Channel) -> None:
        await pb_grpc.SignatureServiceStub(channel).Sign(PLAIN, timeout=DEADLINE)

    channels = await channel_per_worker(server, WORKERS, probe)
    lines_before = len(server.events("rpc"))
    try:
        stubs = [pb_grpc.SignatureServiceStub(channel) for channel in channels.values()]
        queue = iter(range(count))

        async def host_worker() -> None:
            nonlocal late
            for index in queue:
                started = time.monotonic()
                call = stubs[index % len(stubs)].Sign(host_start(index), timeout=DEADLINE)
                outcome = await outcome_of(call, DEADLINE)
                ms = (time.monotonic() - started) * 1000
                hosts[outcome] += 1
                row.outcomes.add(outcome if outcome in allowed else f"host {outcome}", ms)
                late += ms > DEADLINE * 1000

        async def plain_worker(stub: pb_grpc.SignatureServiceStub, count: int) -> None:
            for _ in range(count):
                outcome = await outcome_of(stub.Sign(PLAIN, timeout=DEADLINE), DEADLINE)
                plain[outcome] += 1
                row.outcomes.add(OK if outcome == OK else f"plain Sign {outcome}")

        await asyncio.gather(
            *(host_worker() for _ in range(CONCURRENCY)),
            *(
                plain_worker(stubs[i % len(stubs)], count // CONCURRENCY)
                for i in range(CONCURRENCY)
            ),
        )
    finally:
        await close(channels.values())
    await _check_spread(server, row, lines_before, sum(hosts.values()))
    row.note("host starts: " + ", ".join(f"{code} {n:,}" for code, n in hosts.most_common()))
    row.note("plain Signs: " + ", ".join(f"{code} {n:,}" for code, n in plain.most_common()))
    if unexpected := {code: n for code, n in hosts.items() if code not in allowed}:
        row.miss(f"host starts answered otherwise: {unexpected}")
    if plain[OK] != sum(plain.values()):
        row.miss(f"plain Signs failed: {dict(plain)}")
    if late:
        row.miss(f"{late} host starts answered after their {DEADLINE:g} s deadline")
    if server.workers() != workers_before:
        row.miss(f"workers changed: {workers_before} -> {server.workers()}")


async def _check_spread(server: ServerProcess, row: Row, after: int, host_starts: int) -> None:
    """A miss unless every worker logged host starts (lines with `start_as`, OK or not) of
    the `host_starts` made, from the `after`th rpc line on; each line comes once its answer
    has left, so this waits for them (up to 15 s)."""
    deadline = time.monotonic() + 15.0
    while True:
        lines = [line for line in server.events("rpc")[after:] if line.get("start_as")]
        if len(lines) >= host_starts or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    served = Counter(int(line.get("worker", 0)) for line in lines)
    row.note(
        "host starts by worker: " + ", ".join(f"{w}: {n:,}" for w, n in sorted(served.items()))
    )
    if idle := [worker for worker in range(WORKERS) if not served[worker]]:
        row.miss(f"workers {idle} served no host start")


async def zoom_faults(soak: Soak, row: Row) -> None:
    """The stand-in answers 20% of requests 429 (Retry-After 1) and 20% 500."""
    with zoom_for(soak) as zoom:
        zoom.fail_429, zoom.fail_500, zoom.retry_after = 0.2, 0.2, 1
        config = host_config(soak, "zoom-faults", zoom.url, zoom)
        async with serving(soak, "zoom-faults", config, WORKERS) as server:
            await _drive(server, row, {OK, "RESOURCE_EXHAUSTED", "UNAVAILABLE"})
        row.note(f"the stand-in answered {dict(sorted(zoom.answers.items()))}")
        if not zoom.answers[429] or not zoom.answers[500]:
            row.miss("the stand-in's faults never came")


async def zoom_hangs(soak: Soak, row: Row) -> None:
    """The stand-in answers nothing: [zoom] timeout (1 s) or the deadline (3 s) ends each."""
    with zoom_for(soak) as zoom:
        zoom.hang = True
        config = host_config(soak, "zoom-hangs", zoom.url, zoom)
        async with serving(soak, "zoom-hangs", config, WORKERS) as server:
            await _drive(server, row, {"UNAVAILABLE"}, HANG_STARTS)
        zoom.hang = False


async def zoom_down(soak: Soak, row: Row) -> None:
    """Nothing listens where [zoom] points: every host start UNAVAILABLE at once."""
    with zoom_for(soak) as zoom:
        dead = f"http://127.0.0.1:{free_port()}"
        config = host_config(soak, "zoom-down", dead, zoom)
        async with serving(soak, "zoom-down", config, WORKERS) as server:
            await _drive(server, row, {"UNAVAILABLE"})
