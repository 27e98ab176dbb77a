"""The table of docs/gateway.md that holds Zoom's sample endpoint's contract: each body, what
Zoom's sample answers, what sdksign answers, the token's claims, and why the two differ.

tests/gateway/test_zoom_sample.py sends every row through the real Envoy; bench/sample_table.py
sends them to Zoom's sample itself (a local checkout), to check the sample's column.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from harness import ROOT

TABLE = ROOT / "docs" / "gateway.md"
MARKER = "<!-- zoom-sample-cases"
# A body of no bytes, as the table writes it (Markdown has no empty code span).
EMPTY = "(no body)"


@dataclass(frozen=True)
class Case:
    body: str
    sample: str  # "200", "400 $schema, role", or "400" (a body that is no JSON object)
    ours: str
    token: str  # "mn 123, role 0, 7200 s[, video_webrtc_mode 1]" or "native, 3600 s"
    why: str


def cases() -> list[Case]:
    """The rows of the table after MARKER, until the first line that is not one."""
    lines = TABLE.read_text().split(MARKER, 1)[1].splitlines()[1:]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        body, sample, ours, token, why = (cell.strip() for cell in line.strip()[1:-1].split("|"))
        rows.append(Case("" if body == EMPTY else body.strip("`"), sample, ours, token, why))
    return rows


def answer_of(status: int, data: bytes) -> str:
    """An answer as the table writes it: "200", or the status and the properties in order
    ("400 $schema, role"); the status alone when the body is not the sample's error JSON."""
    if status == 200:
        return "200"
    try:
        errors = json.loads(data)["errors"]
        return f"{status} " + ", ".join(str(error["property"]) for error in errors)
    except (ValueError, KeyError, TypeError):
        return str(status)


def claims_of(token: str) -> dict[str, Any]:
    """A token's payload, decoded without any check."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def expected_claims(token: str) -> dict[str, Any]:
    """The table's Token cell as the claims it means: "mn 123, role 0, 7200 s" (and
    "video_webrtc_mode 1"), or "native, 3600 s" (neither mn nor role)."""
    claims: dict[str, Any] = {"mn": None, "role": None, "video_webrtc_mode": None}
    for part in token.split(", "):
        if part.endswith(" s"):
            claims["lifetime"] = int(part.removesuffix(" s"))
        elif part != "native":
            name, value = part.split(" ")
            claims[name] = value if name == "mn" else int(value)
    return claims


def seen_claims(token: str) -> dict[str, Any]:
    """What of a token's claims the table's Token cell speaks of."""
    claims = claims_of(token)
    return {
        "mn": claims.get("mn"),
        "role": claims.get("role"),
        "lifetime": claims["exp"] - claims["iat"],
        "video_webrtc_mode": claims.get("video_webrtc_mode"),
    }
