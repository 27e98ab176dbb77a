"""Durations as people write them: "30s", "90m", "2h", "1h30m", "2d".

One reader for the configuration file (the server's config.schema) and the command's flags.
"""

from __future__ import annotations

import re

# Longer strings are no duration anyone writes (and int() refuses more than 4300 digits).
LONGEST_DURATION = 64
_FORM = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration_seconds(text: str) -> int | None:
    """Seconds from a string such as "30s", "90m", "2h" or "1h30m"; None when it is not one."""
    if len(text) > LONGEST_DURATION:
        return None
    parts = _FORM.fullmatch(text.strip())
    if not parts or not any(parts.groups()):
        return None
    d, h, m, s = (int(g) if g else 0 for g in parts.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def span(seconds: int) -> str:
    """`seconds` the way a person says it: "30 min", "48 h", "90 s"."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
