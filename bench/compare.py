"""Compare two checkouts of sdksign side by side: both served at once, loaded in alternating rounds.

    git worktree add /tmp/before main && python bench/compare.py /tmp/before .

Runs between two `make bench` can differ by more than a change does on a shared
machine. Here both versions run at the same time (each `sdksign serve --workers
N`, its code from its checkout, this virtualenv's packages), and every round
loads Health/Check, Sign and Verify on one, then the other, alternating which
goes first. Each row prints the median round and the server's CPU time per
request, the steadier figure of the two.

    python bench/compare.py . . --store

measures what the shared rate limit store costs: every call of both sides spends a
token, the before side's from each worker, the after side's from a redis-server
started here (bench/store.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python bench/compare.py`: the checkout is where imports start
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import os
import secrets
import tempfile

from bench import store
from bench.h2load import Row, Sample, h2load_grpc
from bench.run import request_bodies, sdksign_server, worker_pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout of this repository")
    parser.add_argument("after", type=Path, help="another checkout (e.g. .)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4, help="seconds per row, version, round")
    parser.add_argument("--warmup", type=int, default=1, help="seconds before each measurement")
    parser.add_argument("--clients", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--streams", type=int, default=16, help="requests in flight per connection")
    parser.add_argument(
        "--store",
        action="store_true",
        help="rate-limit every call: before in each worker, after in a Redis started here",
    )
    args = parser.parse_args()
    checkouts = [args.before.resolve(), args.after.resolve()]
    for checkout in checkouts:
        if not (checkout / "server" / "sdksign" / "server").is_dir():
            sys.exit(f"compare: {checkout} is not a checkout of sdksign")
    rpcs = {
        "Health/Check": ("/grpc.health.v1.Health/Check", "health"),
        "Sign": ("/sdksign.v1.SignatureService/Sign", "sign"),
        "Verify": ("/sdksign.v1.SignatureService/Verify", "verify"),
    }
    samples: dict[tuple[str, int], list[Sample]] = {
        (name, side): [] for name in rpcs for side in (0, 1)
    }
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="sdksign-compare-"))
        redis = stack.enter_context(store.redis_server(Path(folder))) if args.store else None
        servers = []
        for side, checkout in enumerate(checkouts):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sdksign-compare-")))
            config = None
            if args.store:
                config = store.rate_limited_config(tmp, redis if side == 1 else None)
            server = stack.enter_context(
                sdksign_server(tmp, secrets.token_urlsafe(32), args.workers, checkout, config)
            )
            address, log, pids = server.target, server.log_path, worker_pids(server)
            servers.append((address, log, pids, tmp, request_bodies(address, tmp)))
        for round_ in range(args.rounds):
            for name, (path, body) in rpcs.items():
                for side in (0, 1) if round_ % 2 == 0 else (1, 0):
                    address, log, pids, tmp, bodies = servers[side]
                    samples[name, side].append(
                        h2load_grpc(address, path, bodies[body], tmp, args, log, pids)
                    )
        lost = store.times_lost(servers[1][1]) if args.store else 0
    failed = _report(checkouts, args, rpcs, samples, redis, lost)
    if failed:
        return 1
    print(f"\nrounds, requests/s: {_rounds(samples)}")
    return 0


def _report(
    checkouts: list[Path],
    args: argparse.Namespace,
    rpcs: dict[str, tuple[str, str]],
    samples: dict[tuple[str, int], list[Sample]],
    redis: object,
    lost: int,
) -> bool:
    """Prints the table; True when a request failed or the store was lost (the figures then
    do not compare like with like)."""
    print(f"before: {checkouts[0]}\nafter:  {checkouts[1]}")
    print(f"{args.rounds} alternating rounds of {args.warmup} s warm-up + {args.duration} s\n")
    print(
        "| row | before requests/s | after requests/s | before CPU µs/request | after CPU µs/request |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in rpcs:
        before, after = (Row(name, samples[name, side]) for side in (0, 1))
        print(
            f"| {name} | {before.rps:,.0f} | {after.rps:,.0f} | {before.cpu_us:.0f} "
            f"| {after.cpu_us:.0f} |"
        )
    failed = sum(sample.failed for runs in samples.values() for sample in runs)
    if args.store:
        print(f"\nafter: rate limits in {redis} ({store.TIMEOUT:g} s timeout), lost {lost} times")
    if failed:
        print(f"\n{failed} requests failed")
        return True
    if lost:
        print("\nthe store was lost during the run: some calls went without it")
        return True
    return False


def _rounds(samples: dict[tuple[str, int], list[Sample]]) -> str:
    return "; ".join(
        f"{name} {('before', 'after')[side]} " + ", ".join(f"{sample.rps:,.0f}" for sample in runs)
        for (name, side), runs in samples.items()
    )


if __name__ == "__main__":
    sys.exit(main())
