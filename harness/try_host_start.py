"""`make try-host-start`: a host start on this machine in one command, against the stand-in of
Zoom's API (harness.zoomapi), not Zoom.

It starts the stand-in on a free loopback port, writes a configuration whose meeting app has
an [apps.s2s] table and a [zoom] table pointing at it, starts `sdksign serve` with it, and
runs what a backend would:

    sdksign sign --meeting-number 123456789 --role host --start-as alice@example.com

which prints the host token, then the ZAK. Then it stops both and says where the
configuration is, to read or to point at the real Zoom (docs/join.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.server import start_server
from harness.zoomapi import SECRET_VARIABLE, config_tables, running_zoom_api

MEETING = "123456789"
USER = "alice@example.com"
APP = """[[apps]]
name = "meeting"
kind = "meeting"
sdk_key = "TryHostStartKey"
secret_env = "TRY_APP_SECRET"
"""
CALLER = """
# Callers without credentials may start meetings as the stand-in's users here: fine on
# loopback for a try, never in production (docs/security.md).
[anonymous]
roles = ["participant", "host"]
start_as = ["*@example.com"]
"""


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="sdksign-host-start-"))
    with running_zoom_api() as zoom:
        config = folder / "sdksign.toml"
        # [apps.s2s] belongs to the app just above it; [zoom] to the whole file.
        zoom_table, s2s_table = config_tables(zoom).split("# under your meeting app's [[apps]]:\n")
        config.write_text(APP + s2s_table + CALLER + "\n" + zoom_table)
        env = {"TRY_APP_SECRET": os.urandom(24).hex(), SECRET_VARIABLE: zoom.client_secret}
        server = start_server(folder, ["--config", str(config), "--drain", "0"], env)
        try:
            command = [
                *(sys.executable, "-m", "sdksign.server", "sign", "--target", server.target),
                *("--meeting-number", MEETING, "--role", "host", "--start-as", USER),
            ]
            print(
                f"$ sdksign sign --meeting-number {MEETING} --role host --start-as {USER}",
                flush=True,
            )
            done = subprocess.run(command, env={**os.environ, **env}, check=False)
        finally:
            server.stop()
    print(
        f"\nThe first line is the host token, the second {USER}'s ZAK, issued by a stand-in of "
        f"Zoom's API (harness/zoomapi.py), not by Zoom: it starts no real meeting.\n"
        f"The configuration: {config}; the server's log: {folder / 'server.stderr'}.\n"
        "docs/join.md says how to point it at the real Zoom."
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
