"""`make soak`: reliability scenarios against the real server, the real Envoy and the real client.

Each scenario starts its own `sdksign serve` (or a Fleet of them behind Envoy) on loopback,
counts every call it makes by outcome (OK, each gRPC status code or HTTP status, hung: no
answer by a generous deadline, transport errors), and checks its target:

- steady: Sign's maximum rate measured with h2load, then Sign paced at 70 % of it for 60 s;
  codes from the server's per-RPC log lines; each worker's resident memory before and after.
- drain: `--workers 2 --drain 3`, AsyncClient load, SIGTERM to the parent, calls until the
  drain is nearly over: 0 failed, exit status 0, one rpc log line per call, health
  NOT_SERVING within 1 s.
- worker kill: SIGKILL one of 2 workers under AsyncClient load: 0 failed, the worker respawned.
- parent kill: SIGKILL the parent of 2 workers under load: 0 failed, the workers exit by
  themselves within drain + grace, a new server then starts on the same port.
- replica kill: 2 replicas behind Envoy (harness/fleet.py), JSON `POST /` paced by h2load, one
  replica SIGKILLed on a fresh gateway and on a warm one: 0 failed (by HTTP status).
- replica drain: the same on a warm gateway with SIGTERM instead, the load going on past the
  replica's drain period: 0 failed.
- sighup: under load, a valid config change (reloaded by every worker), then an invalid one
  (refused by every worker, the previous config still serving): 0 failed.
- fuzz: --fuzz-count fuzzed bodies and tokens, many at once: no UNKNOWN, INTERNAL, hung,
  transport error or dead worker.
- frames: malformed gRPC frames over raw HTTP/2, each answered or reset within 5 s.
- half-open: 10,000 streams that start a request and never finish it, on one worker: each
  answered (DEADLINE_EXCEEDED), and the worker's memory back down once they are.
- slow readers: 30 connections of receive window 0 each send 1,000 whole Sign requests and
  never read an answer, for 15 s, then close: the worker grows by at most 200 MiB, gives
  at least half of it back, and logs no call OK whose answer never left.
- trace: GRPC_TRACE=all and GRPC_VERBOSITY=debug on `--workers 2` under load: 0 failed, then
  SIGTERM: the server exits; the core's lines counted, and how often their pipe was full.
- sigstop: SIGSTOP 1 of 2 workers under load: out of readiness within 3 s, killed and
  listening again within 10 s, ready again, 0 failed.
- rapid kills: SIGKILL the youngest living worker 5 times, 2 s apart, under load: the
  server stays up, at most 1 % of calls fail.
- hostile input: 2 replicas behind Envoy, anonymous bad headers (grpc-timeout, grpc-*, -bin),
  8 to 80 KB of headers, queries on POST /, compressed, oversized and garbage bodies,
  grpc-web-text bodies that are not base64, unknown paths, with good calls among them: no
  5xx, no INTERNAL, UNKNOWN or UNAVAILABLE, no ejection, good calls OK.
- zoom: host starts (start_as) beside plain Signs, 2 workers, against the stand-in of Zoom's
  API answering 429 and 500 at random, then hanging, then down: each host start OK,
  RESOURCE_EXHAUSTED or UNAVAILABLE as its fault calls for, within its deadline; every
  plain Sign OK; the same workers throughout.
- grants: on-behalf Signs (on_behalf_of) from 2 replicas x 2 workers sharing SQLite, then
  Redis, with the stand-in's 2-second access tokens: every call OK and 0 stale refresh
  tokens sent. grants-faults: every worker SIGKILLed mid-refresh: grants lost <= kills
  mid-refresh (the documented window); the Redis SIGKILLed for 2 s: UNAVAILABLE meanwhile,
  OK after; a restart keeps the grants (bench/reliability/grants.py).
- Then every log line of every server and gateway: no whole token, no configured secret.

Prints the command, the machine and one Markdown table; exit status 1 if a target is missed.
Every scenario is bounded in time and kills whatever it started, however it ends.
The scenarios are in bench/reliability/, one module per kind.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python bench/soak.py`: the checkout is where imports start
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import dataclasses
import os
import platform
import random
import shlex
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable

import grpc

from bench.h2load import cpu_model, h2load_version
from bench.reliability.common import Row, Settings, Soak, table
from bench.reliability.frames import malformed_frames
from bench.reliability.fuzz import fuzz
from bench.reliability.gateway import replica_drain, replica_kill_fresh, replica_kill_warm
from bench.reliability.grants import (
    grants_kill,
    grants_redis,
    grants_redis_lost,
    grants_restart,
    grants_sqlite,
)
from bench.reliability.halfopen import half_open
from bench.reliability.hostile import REQUESTS, hostile_input
from bench.reliability.hosts import zoom_down, zoom_faults, zoom_hangs
from bench.reliability.logscan import scan_logs
from bench.reliability.process import drain, parent_kill, worker_kill
from bench.reliability.reload import sighup
from bench.reliability.server import new_secrets
from bench.reliability.slowreaders import slow_readers
from bench.reliability.steady import steady
from bench.reliability.watchdog import rapid_kills, stopped_worker, traced
from harness import ROOT
from harness.server import ServerError
from sdksign.server.runtime.workers import default_workers

Scenario = Callable[[Soak, Row], Awaitable[None]]
NAMES = (
    "steady",
    "drain",
    "worker-kill",
    "parent-kill",
    "replica-kill",
    "replica-drain",
    "sighup",
    "fuzz",
    "frames",
    "half-open",
    "slow-readers",
    "trace",
    "sigstop",
    "rapid-kills",
    "hostile-input",
    "zoom",
    "grants",
    "grants-faults",
)


def scenarios(settings: Settings) -> list[tuple[str, str, Scenario, float]]:
    """(name for --only, the row's title, the scenario, its time limit in seconds)."""
    steady_limit = settings.measure_seconds + 2 * settings.steady_seconds + 120
    fraction = f"{settings.steady_fraction:.0%}"
    hostile = REQUESTS // 10 if settings.fuzz_count < 100_000 else REQUESTS
    return [
        (
            "steady",
            f"steady: Sign at {fraction} of max, {settings.steady_seconds} s",
            steady,
            steady_limit,
        ),
        ("drain", "drain: SIGTERM, --drain 3, 2 workers", drain, 90),
        ("worker-kill", "worker kill: SIGKILL 1 of 2 workers", worker_kill, 90),
        ("parent-kill", "parent kill: SIGKILL the parent of 2 workers", parent_kill, 120),
        ("replica-kill", "replica kill behind Envoy, fresh gateway", replica_kill_fresh, 180),
        ("replica-kill", "replica kill behind Envoy, warm gateway", replica_kill_warm, 180),
        ("replica-drain", "replica SIGTERM (drain) behind Envoy, under load", replica_drain, 180),
        ("sighup", "SIGHUP: a valid config, then an invalid one", sighup, 90),
        (
            "fuzz",
            f"fuzz: {settings.fuzz_count:,} bodies and tokens",
            fuzz,
            60 + settings.fuzz_count / 200,
        ),
        ("frames", "malformed gRPC frames (raw HTTP/2)", malformed_frames, 180),
        ("half-open", "half-open: 10,000 streams never finished", half_open, 120),
        ("slow-readers", "slow readers: 30,000 Sign streams never read", slow_readers, 180),
        ("trace", "GRPC_TRACE=all under load, then SIGTERM", traced, 120),
        ("sigstop", "SIGSTOP 1 of 2 workers under load", stopped_worker, 120),
        ("rapid-kills", "SIGKILL the youngest worker 5 times in 10 s", rapid_kills, 120),
        (
            "hostile-input",
            f"hostile input through Envoy: {hostile:,} anonymous requests",
            hostile_input,
            180,
        ),
        ("zoom", "host starts while Zoom answers 20% 429, 20% 500", zoom_faults, 120),
        ("zoom", "host starts while Zoom hangs ([zoom] timeout 1 s)", zoom_hangs, 120),
        ("zoom", "host starts while Zoom is down", zoom_down, 120),
        (
            "grants",
            f"on-behalf Signs, 2 x 2 workers sharing SQLite, 2 s tokens, {settings.steady_seconds} s",
            grants_sqlite,
            settings.steady_seconds + 90,
        ),
        (
            "grants",
            f"on-behalf Signs, 2 x 2 workers sharing Redis, 2 s tokens, {settings.steady_seconds} s",
            grants_redis,
            settings.steady_seconds + 90,
        ),
        (
            "grants-faults",
            "on-behalf Signs, SIGKILL of every worker mid-refresh, 3 times",
            grants_kill,
            settings.steady_seconds + 90,
        ),
        (
            "grants-faults",
            "on-behalf Signs, the Redis SIGKILLed for 2 s under load",
            grants_redis_lost,
            120,
        ),
        ("grants-faults", "on-behalf Signs across a restart of both replicas", grants_restart, 120),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short durations and counts")
    parser.add_argument(
        "--only",
        type=_names,
        help=f"comma-separated scenarios (default: all): {', '.join(NAMES)}",
    )
    parser.add_argument("--fuzz-count", type=int, help="fuzzed requests (default 100000)")
    parser.add_argument("--steady-seconds", type=int, help="length of the steady soak (60)")
    parser.add_argument("--workers", type=int, help="workers for steady, fuzz, frames (cores)")
    parser.add_argument("--seed", type=int, help="the fuzz's random seed (default: a new one)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    return parser.parse_args()


def _names(text: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(f"no scenario {', '.join(sorted(unknown))}")
    return names


def settings_from(quick: bool, given: dict[str, int | None]) -> Settings:
    """The full run's settings, or --quick's; options given on the command line win."""
    defaults = Settings(
        workers=default_workers(),
        measure_seconds=2 if quick else 4,
        steady_seconds=5 if quick else 60,
        steady_fraction=0.7,
        load_rate=200.0,
        kill_window=3.0 if quick else 5.0,
        gateway_rate=300.0,
        gateway_window=3.0 if quick else 5.0,
        replicas=2,
        fuzz_count=5_000 if quick else 100_000,
        fuzz_concurrency=64,
        deadline=10.0,
        seed=random.SystemRandom().randrange(2**32),
    )
    chosen = {key: value for key, value in given.items() if value is not None}
    return dataclasses.replace(defaults, **chosen)


def command_line() -> str:
    """The command as typed here, with paths relative to the repository where they can be."""

    def short(path: str) -> str:
        try:
            return str(Path(path).absolute().relative_to(ROOT))
        except ValueError:
            return path

    return shlex.join([short(sys.executable), short(sys.argv[0]), *sys.argv[1:]])


def header(soak: Soak) -> str:
    settings = soak.settings
    return "\n".join(
        [
            f"$ {command_line()}",
            "",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"grpcio {grpc.__version__}, {h2load_version()}; fuzz seed {settings.seed}; "
            f"AsyncClient load {settings.load_rate:.0f} calls/s, gateway load "
            f"{settings.gateway_rate:.0f} requests/s; hung = no answer within "
            f"{settings.deadline:.0f} s",
            "",
        ]
    )


async def run_one(soak: Soak, title: str, scenario: Scenario, limit: float) -> Row:
    """One scenario within its time limit; whatever stops it early is a missed target."""
    row = Row(title)
    started = time.monotonic()
    print(f"soak: {title} ...", file=sys.stderr, flush=True)
    try:
        await asyncio.wait_for(scenario(soak, row), limit)
    except ServerError as exc:
        row.miss(f"server did not start ({exc})")
    except TimeoutError:
        row.miss(f"not finished within its {limit:.0f} s")
    except Exception as exc:
        row.miss(f"the scenario failed: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
    print(f"soak: {title}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return row


async def run_all(soak: Soak, only: set[str] | None) -> list[Row]:
    """Every chosen scenario in turn, then the log scan. SIGTERM, like Ctrl-C, stops the run
    (whatever the running scenario started is stopped) and prints what it has."""
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    rows = []
    for name, title, scenario, limit in scenarios(soak.settings):
        if only is None or name in only:
            try:
                rows.append(await run_one(soak, title, scenario, limit))
            except asyncio.CancelledError:
                rows.append(Row(title, misses=["interrupted: the run was stopped"]))
                break
    scan = Row("log scan: no whole token, no secret", counts_calls=False)
    scan_logs(soak, scan)
    return [*rows, scan]


def main() -> int:
    args = parse_args()
    if not shutil.which("h2load"):
        sys.exit("soak: h2load not found (make soak installs Debian's nghttp2-client)")
    given = {
        "fuzz_count": args.fuzz_count,
        "steady_seconds": args.steady_seconds,
        "workers": args.workers,
        "seed": args.seed,
    }
    settings = settings_from(args.quick, given)
    only: set[str] | None = args.only
    tmp = Path(tempfile.mkdtemp(prefix="sdksign-soak-"))
    soak = Soak(settings, tmp, secrets=new_secrets())
    print(header(soak), flush=True)
    rows = asyncio.run(run_all(soak, only))
    print(table(rows), flush=True)
    met = all(row.met for row in rows)
    if met and not args.keep_logs:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"soak: logs kept in {tmp}", file=sys.stderr)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
