"""The scenarios of `make soak` (bench/soak.py runs them; RELIABILITY.md has the latest table).

common: outcomes, a row of the table, the settings; server: `sdksign serve` as the soak
configures it; load and h2load: the two loads (the project's AsyncClient, h2load paced).
One module per kind of scenario: steady, process (drain, worker and parent kills), gateway
(a replica lost behind Envoy), reload (SIGHUP), fuzz (with cases), frames, halfopen; then
logscan reads every log line the run wrote.
"""
