"""A token's claims: those Meeting and Video SDK tokens need, their types, and the limits
Zoom sets on them (zoom.rules); its times are checked last (times)."""

from __future__ import annotations

from typing import Any

from ...zoom.rules import (
    DEPRECATED_CLAIMS,
    FLAG,
    GEO_REGIONS,
    MEETING_NUMBER,
    MEETING_NUMBER_RULE,
    MEETING_OPTIONAL,
    MEETING_ROLE,
    MEETING_TIMES,
    REGIONS,
    ROLE_NAME_OF_CLAIM,
    SESSION_NAME,
    SESSION_NAME_LENGTH,
    TEXT,
    VERSION,
    VIDEO_OPTIONAL,
    VIDEO_ROLE,
    VIDEO_TIMES,
    VIDEO_VERSION,
    OptionalClaim,
    Sdk,
)
from .problems import Diagnosis, ProblemCode, TokenKind
from .times import check_times
from .words import json_type, show


def check_claims(
    claims: dict[str, Any], sdk: Sdk, d: Diagnosis, now: int, expected: str | None
) -> None:
    """The claims of `sdk`'s tokens, their times, and the token's kind."""
    if sdk == "meeting":
        web = _meeting_claims(claims, d, expected)
        d.kind = TokenKind.MEETING_WEB if web else TokenKind.MEETING_NATIVE
        check_times(claims, d, now, MEETING_TIMES)
    else:
        d.kind = TokenKind.VIDEO
        _video_claims(claims, d)
        check_times(claims, d, now, VIDEO_TIMES)


def _meeting_claims(claims: dict[str, Any], d: Diagnosis, expected: str | None) -> bool:
    """Check mn, role and the optional claims; return whether this is a web token."""
    has_mn, has_role = MEETING_NUMBER in claims, MEETING_ROLE in claims
    if has_mn != has_role:
        present, absent = (
            (MEETING_NUMBER, MEETING_ROLE) if has_mn else (MEETING_ROLE, MEETING_NUMBER)
        )
        d.add(
            ProblemCode.MISSING_CLAIM,
            f"{present} is present but {absent} is not: a web token needs both, a native SDK token neither",
            absent,
        )
    mn = _meeting_number(claims, d) if has_mn else None
    if has_role:
        _role(claims, MEETING_ROLE, d)
    _optional_claims(claims, MEETING_OPTIONAL, d)
    if expected is not None:
        if not has_mn:
            d.add(
                ProblemCode.MEETING_MISMATCH,
                f"expected a token for meeting {expected}, but the token has no {MEETING_NUMBER} (a "
                f"native SDK token); the web SDK needs {MEETING_NUMBER} and {MEETING_ROLE}",
                MEETING_NUMBER,
            )
        elif mn is not None and mn != expected:
            d.add(
                ProblemCode.MEETING_MISMATCH,
                f"the token is for meeting {mn}, not {expected}",
                MEETING_NUMBER,
            )
    return has_mn or has_role


def _meeting_number(claims: dict[str, Any], d: Diagnosis) -> str | None:
    """The mn claim as text (a JSON number is allowed); None when it is no number at all."""
    mn = claims[MEETING_NUMBER]
    if isinstance(mn, bool) or not isinstance(mn, str | int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{MEETING_NUMBER} is {json_type(mn)}; write the meeting number as a string or number of digits",
            MEETING_NUMBER,
        )
        return None
    if isinstance(mn, str) and not (mn.isascii() and mn.isdigit()):
        d.add(
            ProblemCode.INVALID_CLAIM,
            f"{MEETING_NUMBER} {show(mn)} is not a meeting number: {MEETING_NUMBER_RULE}",
            MEETING_NUMBER,
        )
    return str(mn)


def _video_claims(claims: dict[str, Any], d: Diagnosis) -> None:
    session_name = string_claim(claims, SESSION_NAME, d, required=True)
    if session_name == "":
        d.add(
            ProblemCode.INVALID_CLAIM, f"{SESSION_NAME} (the session name) is empty", SESSION_NAME
        )
    elif session_name is not None and len(session_name) > SESSION_NAME_LENGTH:
        d.add(
            ProblemCode.INVALID_CLAIM,
            _too_long(SESSION_NAME, session_name, SESSION_NAME_LENGTH),
            SESSION_NAME,
        )
    _role(claims, VIDEO_ROLE, d)
    version = claims.get(VERSION)
    if VERSION not in claims:
        d.add(
            ProblemCode.MISSING_CLAIM, f"{VERSION} is required and must be {VIDEO_VERSION}", VERSION
        )
    elif isinstance(version, bool) or not isinstance(version, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{VERSION} is {json_type(version)}; write the number {VIDEO_VERSION}",
            VERSION,
        )
    elif version != VIDEO_VERSION:
        d.add(
            ProblemCode.INVALID_CLAIM,
            f"{VERSION} is {version}; it must be {VIDEO_VERSION}",
            VERSION,
        )
    _optional_claims(claims, VIDEO_OPTIONAL, d)
    _deprecated(claims, DEPRECATED_CLAIMS["video"], d)


def _deprecated(claims: dict[str, Any], deprecated: dict[str, str], d: Diagnosis) -> None:
    """A warning for each deprecated claim present, naming its replacement."""
    for name, replacement in deprecated.items():
        if name in claims:
            also = (
                f"; the token has {replacement} too, which Zoom reads instead"
                if replacement in claims
                else f": write {replacement} (the same 0 or 1) instead"
            )
            d.add(
                ProblemCode.DEPRECATED_CLAIM,
                f"{name} is deprecated by Zoom in favour of {replacement}{also}. The token "
                "stays valid",
                name,
            )


def _optional_claims(
    claims: dict[str, Any], optional: tuple[OptionalClaim, ...], d: Diagnosis
) -> None:
    for name, form, max_length in optional:
        if form is FLAG:
            _flag(claims, name, d)
            continue
        value = string_claim(claims, name, d, required=False)
        if value is None:
            continue
        if form is TEXT and len(value) > max_length:
            d.add(ProblemCode.INVALID_CLAIM, _too_long(name, value, max_length), name)
        elif form is REGIONS:
            unknown = [r for r in value.split(",") if r not in GEO_REGIONS]
            if unknown:
                d.add(
                    ProblemCode.INVALID_CLAIM,
                    f"{name} has {', '.join(show(r) for r in unknown[:3])}; allowed, "
                    "comma-joined: " + ",".join(sorted(GEO_REGIONS)),
                    name,
                )


def _too_long(name: str, value: str, limit: int) -> str:
    return f"{name} has {len(value)} characters; at most {limit} are allowed"


def string_claim(claims: dict[str, Any], name: str, d: Diagnosis, *, required: bool) -> str | None:
    if name not in claims:
        if required:
            d.add(ProblemCode.MISSING_CLAIM, f"{name} is required", name)
        return None
    value = claims[name]
    if not isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {json_type(value)}; it must be a string",
            name,
        )
        return None
    return value


def _role(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        d.add(ProblemCode.MISSING_CLAIM, f"{name} is required: 0 (participant) or 1 (host)", name)
        return
    value = claims[name]
    if isinstance(value, str):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is the string {show(value)}; write it as a number: 0 or 1, no quotes",
            name,
        )
    elif isinstance(value, bool) or not isinstance(value, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {json_type(value)}; write the integer 0 or 1",
            name,
        )
    elif value not in ROLE_NAME_OF_CLAIM:
        d.add(
            ProblemCode.INVALID_ROLE,
            f"{name} is {value}; Zoom knows 0 (participant) and 1 (host)",
            name,
        )


def _flag(claims: dict[str, Any], name: str, d: Diagnosis) -> None:
    if name not in claims:
        return
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        d.add(
            ProblemCode.WRONG_CLAIM_TYPE,
            f"{name} is {json_type(value)}; write the integer 0 or 1",
            name,
        )
    elif value not in (0, 1):
        d.add(ProblemCode.INVALID_CLAIM, f"{name} is {value}; only 0 and 1 are allowed", name)
