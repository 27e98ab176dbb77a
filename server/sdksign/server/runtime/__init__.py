"""The running server: the servicer, the wrapper every call goes through, serve(), the
workers' supervisor and the `sdksign serve` command.

service: SignatureService's Sign and Verify (and Zoom's sample route); rpc: the wrapper
that logs, counts, traces and turns errors into statuses; deadlines: calls whose request
or answer waited too long, and each call logged once its answer has left; serve: one
process's server, its drain and its reloads (refresh), and the memory it gives back
(memory); workers: --workers N, restarted with a delay (restarts); cli: `sdksign serve`.

The only room that imports gRPC's server; it may import every other room.
"""
