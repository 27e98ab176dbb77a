"""The `sdksign` command's entry point (pyproject's script; `python -m sdksign.server` too).

gRPC's C core prints its own log lines on stderr ("Handshake failed ...", four a call),
under the command's own message and hint. It reads GRPC_VERBOSITY once, when grpc is
imported, and sdksign.client imports grpc: so this module, which imports neither, sets it
first. `sdksign serve` keeps gRPC's lines (the server writes them as JSON log lines), and a
GRPC_VERBOSITY of the user's own holds.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the `sdksign` command with `argv` (default: sys.argv[1:]); its exit status."""
    args = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command != "serve":
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from sdksign.client._cli import main as run  # grpc, once the variable is set

    return run(args)
