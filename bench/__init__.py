"""Load and reliability tools, run on real servers (none of them is part of `make test`):

- run.py: `make bench`, h2load on one server, one table (BENCHMARKS.md);
- compare.py: `python bench/compare.py A B`, two checkouts served at once (store.py: --store);
- soak.py: `make soak`, the reliability scenarios of reliability/ (RELIABILITY.md);
- fleet.py: `make fleet`, replicas behind Envoy (gateway_load.py: the load, losing a replica);
- h2load.py, framing.py: what they share.

The servers, Redis, Envoy and fleets they start come from harness/. Each script runs as
`python bench/NAME.py` (it puts the checkout first on sys.path) and imports `bench.*`.
"""
