"""`make fleet`: N replicas of `sdksign serve` on consecutive loopback ports behind one Envoy.

    python bench/fleet.py --replicas 2 --workers 1      # Ctrl-C stops all
    python bench/fleet.py --scenario warm               # lose a replica under load, in rounds

The fleet itself (processes, Envoy's configuration) is harness/fleet.py; the load and the
scenarios of losing a replica, bench/gateway_load.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python bench/fleet.py`: the checkout is where imports start
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import os
import signal
import time

from bench.gateway_load import (
    LOSS_STATS,
    SCENARIOS,
    grpc_web_sign_call,
    json_sign_call,
    replica_loss,
)
from harness.envoy import CONFIG_GATEWAY_PORT, CONFIG_SERVER_PORT, GATEWAY_CONFIG
from harness.fleet import Fleet

SAMPLE_VARIABLES = (
    "ZOOM_MEETING_SDK_KEY",
    "ZOOM_MEETING_SDK_SECRET",
    "ZOOM_VIDEO_SDK_KEY",
    "ZOOM_VIDEO_SDK_SECRET",
)


def run_scenario(fleet: Fleet, args: argparse.Namespace) -> int:
    """`--scenario`: rounds of replica_loss(); a line per round; 1 if any request failed."""
    calls = [{"json": json_sign_call, "grpc-web": grpc_web_sign_call}[c]() for c in args.calls]
    failed = 0
    for round_ in range(args.rounds):
        before = fleet.stats() if args.scenario != "fresh" else {}  # fresh: a new Envoy
        result = replica_loss(fleet, args.scenario, args.requests, args.rate, calls)
        stats = fleet.stats()
        shown = ", ".join(f"{k} {stats.get(k, 0) - before.get(k, 0)}" for k in LOSS_STATS)
        print(f"{args.scenario} round {round_ + 1}: {result.summary()}\n  envoy: {shown}")
        failed += result.failed
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    parser.add_argument("--port", type=int, help=f"Envoy's port ({CONFIG_GATEWAY_PORT})")
    parser.add_argument("--base-port", type=int, help=f"replica 0's ({CONFIG_SERVER_PORT})")
    parser.add_argument("--admin-port", type=int, help="Envoy's admin port (9901)")
    parser.add_argument("--config", type=Path, help="TOML file for every replica (--config)")
    parser.add_argument(
        "--envoy-config",
        type=Path,
        default=GATEWAY_CONFIG,
        help="the gateway configuration to render (default: gateway/envoy.yaml)",
    )
    loss = parser.add_argument_group("instead of serving: lose a replica under load and exit")
    loss.add_argument("--scenario", choices=SCENARIOS, help="see replica_loss()")
    loss.add_argument("--rounds", type=int, default=3)
    loss.add_argument("--requests", type=int, default=1200, help="per round")
    loss.add_argument("--rate", type=float, default=400.0, help="requests per second")
    loss.add_argument(
        "--calls",
        type=lambda text: text.split(","),
        default=["json"],
        help="json, grpc-web or both, comma-separated, sent in turn (default: json)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    serving = args.scenario is None
    # Zoom's sample variables from this environment, if set; else fresh shared apps.
    apps = {name: value for name, value in os.environ.items() if name in SAMPLE_VARIABLES}
    # Ctrl-C (even when started with SIGINT ignored, as a background job) and SIGTERM stop all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    fleet = Fleet(
        args.replicas,
        args.workers,
        # Serving: the ports of gateway/envoy.yaml and `make run`; a scenario: free ones.
        gateway_port=args.port or (CONFIG_GATEWAY_PORT if serving else None),
        base_port=args.base_port or (CONFIG_SERVER_PORT if serving else None),
        admin_port=args.admin_port or (9901 if serving else None),
        config=args.config,
        env=apps or None,
        envoy_config=args.envoy_config,
    )
    with fleet:
        if not serving:
            return run_scenario(fleet, args)
        print(describe(fleet), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while fleet.envoy is not None and fleet.envoy.poll() is None:
                time.sleep(0.5)
        print("\nfleet: stopping", flush=True)
    return 0


def describe(fleet: Fleet) -> str:
    lines = [
        f"fleet: Envoy on http://127.0.0.1:{fleet.gateway_port}/ (the page, gRPC-web, "
        f"POST / with Zoom's sample JSON); admin on http://127.0.0.1:{fleet.admin_port}/",
    ]
    for replica in fleet.replicas:
        pids = ", ".join(str(pid) for pid in replica.pids)
        lines.append(
            f"fleet: replica {replica.index} on {replica.address} (pids {pids}); "
            f"kill it: kill -9 -{replica.pids[0]}"
        )
    lines.append(
        f"fleet: meeting SDK key {fleet.env.get('ZOOM_MEETING_SDK_KEY')}; Ctrl-C stops all"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
