"""gateway/envoy.yaml with one more CORS origin: `make gateway CORS_ORIGIN=...` runs
`python gateway/origin.py ORIGIN > .build/envoy-gateway.yaml` and serves that.

The origin is taken exactly (an `exact` match, never a pattern): scheme http or https,
a host, an optional port, nothing else. Anything else exits 2 naming what is wrong.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("envoy.yaml")
# The development origins' line, after which the extra origin goes.
ANCHOR = '- safe_regex: { regex: "http://(localhost|127'
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def with_origin(text: str, origin: str) -> str:
    """`text` (gateway/envoy.yaml) with `origin` allowed too; ValueError for a bad origin."""
    if not ORIGIN.fullmatch(origin):
        raise ValueError(
            f"CORS_ORIGIN {origin!r} is not an origin: http:// or https://, a host and an "
            "optional :port, with no path or wildcard (e.g. https://dev.example.com:8443)"
        )
    lines = text.splitlines(keepends=True)
    (at,) = [i for i, line in enumerate(lines) if line.lstrip().startswith(ANCHOR)]
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}- exact: {origin}\n")
    return "".join(lines)


def main(argv: list[str]) -> int:
    try:
        (origin,) = argv
        sys.stdout.write(with_origin(CONFIG.read_text(), origin))
    except ValueError as exc:
        message = str(exc) if len(argv) == 1 else "usage: origin.py ORIGIN"
        print(f"gateway/origin.py: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
