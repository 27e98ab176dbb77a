"""Every commit subject since the rule began (issue 20) is at most 72 characters.

The body says why and gives the figures; the subject says what changed, short enough for
`git log --oneline` and for every tool that shows one line. Skipped, with a line saying so,
where the history does not reach back that far (a shallow clone, an export).
"""

from __future__ import annotations

import subprocess
import sys

# The last commit before the rule: subjects from the next one on are checked.
SINCE = "bf042f0"
LIMIT = 72


def main() -> int:
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{SINCE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        print(f"commit subjects: not checked ({SINCE} is not in this history)")
        return 0
    log = subprocess.run(
        ["git", "log", "--format=%h %s", f"{SINCE}..HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    long = [line for line in log.stdout.splitlines() if len(line.split(" ", 1)[1]) > LIMIT]
    for line in long:
        print(f"commit subject over {LIMIT} characters: {line}", file=sys.stderr)
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
