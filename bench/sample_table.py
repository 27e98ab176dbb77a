"""Check the "Zoom's sample" column of docs/gateway.md's table against Zoom's sample itself.

    ZOOM_SAMPLE_DIR=path/to/meetingsdk-auth-endpoint-sample python bench/sample_table.py

ZOOM_SAMPLE_DIR is a checkout of zoom/meetingsdk-auth-endpoint-sample with `npm ci` run in
it (as for `make bench`'s peer row); nothing of it is in this repository. Each row's body is
posted to the sample on loopback; its status and error properties (and, for a 200, the
token's mn, role, lifetime and video_webrtc_mode) are compared with the table's. Prints one
line per row and exits 1 when any differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python bench/sample_table.py`: imports start at the checkout
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import http.client
import json
import os
import secrets

from bench.run import zoom_sample
from harness.sample_table import answer_of, cases, expected_claims, seen_claims


def main() -> int:
    folder = os.environ.get("ZOOM_SAMPLE_DIR")
    if not folder:
        sys.exit("sample_table: set ZOOM_SAMPLE_DIR to an npm-installed checkout of the sample")
    differ = 0
    with zoom_sample(Path(folder), secrets.token_urlsafe(32)) as (port, _pid):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for case in cases():
            connection.request(
                "POST", "/", case.body.encode(), {"content-type": "application/json"}
            )
            response = connection.getresponse()
            data = response.read()
            got = answer_of(response.status, data)
            # The sample's claims are checked only where ours are the same answer.
            if got == "200" and case.sample == case.ours:
                seen = seen_claims(json.loads(data)["signature"])
                # The sample writes mn as it came (a number stays one); sdksign as text.
                seen["mn"] = None if seen["mn"] is None else str(seen["mn"])
                if seen != expected_claims(case.token):
                    got += f" with claims {seen}"
            same = got == case.sample
            differ += not same
            print(
                f"{'same' if same else 'DIFFERS'}  {case.body}  table: {case.sample}  sample: {got}"
            )
        connection.close()
    print(f"{differ} of {len(cases())} rows differ from the table")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
