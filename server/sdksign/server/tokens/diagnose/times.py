"""A token's times: iat, exp and tokenExp in epoch seconds (not milliseconds), the lifetime
between them within Zoom's bounds, and neither expired nor issued in the future."""

from __future__ import annotations

from typing import Any

from ...zoom.rules import MAX_TTL, MILLISECONDS_FROM, MIN_TTL
from .problems import Diagnosis, ProblemCode
from .words import iso, json_type, show, span

# How far in the future `iat` may lie before it is reported (clocks drift).
FUTURE_LEEWAY = 60


def check_times(claims: dict[str, Any], d: Diagnosis, now: int, names: tuple[str, ...]) -> None:
    seconds = _epoch_seconds(claims, d, names)
    iat, exp = seconds.get("iat"), seconds.get("exp")
    if iat is not None and exp is not None:
        _lifetime(exp - iat, d)
    if iat is not None and iat > now + FUTURE_LEEWAY:
        d.add(
            ProblemCode.ISSUED_IN_FUTURE,
            f"iat lies {span(iat - now)} ({iat - now} s) in the future: the signing server's clock "
            "runs ahead; sync it, and issue with iat a little in the past (now - 30 s)",
            "iat",
        )
    for name in ("exp", "tokenExp"):
        value = seconds.get(name)
        if value is None or value > now or (name == "tokenExp" and value == exp):
            continue
        both = " (and tokenExp)" if name == "exp" and seconds.get("tokenExp") == value else ""
        d.add(
            ProblemCode.EXPIRED,
            f"{name}{both} passed {span(now - value)} ago ({now - value} s, at {iso(value)}): "
            "mint a fresh token shortly before joining",
            name,
        )


def _epoch_seconds(claims: dict[str, Any], d: Diagnosis, names: tuple[str, ...]) -> dict[str, int]:
    """Each of the time claims `names` that holds epoch seconds; milliseconds are reported."""
    seconds: dict[str, int] = {}
    for name in names:
        value = _epoch(claims, name, d)
        if value is None:
            continue
        if value >= MILLISECONDS_FROM:
            d.add(
                ProblemCode.TIMESTAMP_IN_MILLISECONDS,
                f"{name} is {value}: epoch milliseconds, not seconds; divide by 1000 "
                "(Math.floor(Date.now() / 1000) in JavaScript)",
                name,
            )
        else:
            seconds[name] = value
    return seconds


def _lifetime(life: int, d: Diagnosis) -> None:
    """exp - iat: within Zoom's bounds, and not a lifetime added in milliseconds."""
    if life > MAX_TTL and life % 1000 == 0 and MIN_TTL <= life // 1000 <= MAX_TTL:
        d.add(
            ProblemCode.TIMESTAMP_IN_MILLISECONDS,
            f"exp - iat is {life} s: a lifetime of {life // 1000} s added in milliseconds; "
            f"add seconds (exp = iat + {life // 1000})",
            "exp",
        )
    elif life < MIN_TTL:
        d.add(
            ProblemCode.LIFETIME_TOO_SHORT,
            f"exp - iat is {life} s; Zoom needs at least {MIN_TTL} s (30 min)",
            "exp",
        )
    elif life > MAX_TTL:
        d.add(
            ProblemCode.LIFETIME_TOO_LONG,
            f"exp - iat is {life} s ({span(life)}); Zoom allows at most {MAX_TTL} s (48 h)",
            "exp",
        )


def _epoch(claims: dict[str, Any], name: str, d: Diagnosis) -> int | None:
    if name not in claims:
        d.add(ProblemCode.MISSING_CLAIM, f"{name} is required: an integer of epoch seconds", name)
        return None
    value = claims[name]
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= -MILLISECONDS_FROM:  # thousands of years back: arithmetic on it is no use
            d.add(
                ProblemCode.INVALID_CLAIM,
                f"{name} is {show(value)}: not a time in epoch seconds",
                name,
            )
            return None
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # not NaN or huge
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {value}, not an integer: write whole epoch seconds (Math.floor)",
            name,
        )
        return int(value)
    if isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is the string {show(value)}; write it as a number, no quotes",
            name,
        )
        return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else None
    d.add(
        ProblemCode.WRONG_CLAIM_TYPE,
        f"{name} is {json_type(value)}; it must be an integer of epoch seconds",
        name,
    )
    return None
