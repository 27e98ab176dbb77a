"""Processes for the tests and the tools in bench/: `sdksign serve` (harness.server), Redis
(harness.redis), Envoy (harness.envoy) and a fleet of servers behind Envoy (harness.fleet),
each started one way, waited for until it serves, and stopped with whatever it left behind.
harness.process holds what they share: a child in a process group of its own, stopped with
the whole group, and free loopback ports.

Development tooling, not part of the wheel: pytest and the bench/ scripts import it from the
checkout (ROOT, the folder above this one).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
