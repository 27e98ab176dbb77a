"""Verify: diagnose a Zoom SDK token minted anywhere, reporting every problem found.

Pure: the caller passes the apps to check against and the clock. Zoom's rules are
in zoom.rules; docs/zoom-sdk-jwt.md explains them and the ways real code breaks them.
Messages never hold a secret or the whole token.

check() validates a VerifyRequest and diagnoses its token; diagnose() reads a token in
the order a reader would, a module for each step:

- shape: what it is wrapped in, if anything (quotes, Bearer, JSON: tokens.wrapped), then
  its three base64url segments of JSON;
- keys: its SDK key and app, then its signature (whose secret made it: tokens.signature);
- claims: its claims, then (times) its times.

problems holds what is found (ProblemCode, Problem, Diagnosis); words, how a message
shows a value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sdksign.client._limits import MAX_TOKEN_LENGTH
from sdksign.v1 import signature_service_pb2 as pb

from ...access.policy import Caller, in_scope
from ...config import App, Config, app_named
from ...errors import FieldViolation, InvalidArgument, unknown_app
from ...zoom.rules import (
    MEETING_NUMBER,
    MEETING_NUMBER_RULE,
    is_app_name,
    is_meeting_number,
    quoted,
)
from ..signature import SignatureCheck, find_signer, matching_secret
from ..wrapped import maybe_wrapped
from .claims import check_claims
from .keys import check_signature, find_app, read_sdk_key, sdk_of
from .problems import Diagnosis, Problem, ProblemCode
from .shape import not_three_segments, read_segments, unwrapped
from .words import SHOWN


def check(request: pb.VerifyRequest, config: Config, now: int, caller: Caller) -> Diagnosis:
    """Validate a VerifyRequest (raises InvalidArgument) and diagnose its token against the
    apps `caller` may verify.

    The other apps are not looked at: their tokens read as an unknown SDK key, as a key
    nobody configured does, none of their secrets is tried, and an `app` naming one is
    refused as an app nobody configured is.
    """
    violations = []
    token = request.token
    if not token:
        violations.append(
            FieldViolation("token", "is required: the whole token, header.payload.signature")
        )
    elif len(token) > MAX_TOKEN_LENGTH:
        violations.append(
            FieldViolation(
                "token", f"has {len(token)} characters; at most {MAX_TOKEN_LENGTH} are allowed"
            )
        )
    apps = in_scope(caller.rule.verified_apps, config.apps)
    only_app = None
    if request.HasField("app"):
        # An app outside the caller's rule reads as one nobody configured.
        only_app = app_named(apps, request.app)
        if only_app is None:
            violations.append(unknown_app(quoted(request.app, is_app_name), [a.name for a in apps]))
    expected = (
        request.expected_meeting_number if request.HasField("expected_meeting_number") else None
    )
    if expected is not None and not is_meeting_number(expected):
        violations.append(
            FieldViolation("expected_meeting_number", f"must be {MEETING_NUMBER_RULE}")
        )
    if violations:
        raise InvalidArgument(violations)
    return diagnose(token, apps, now, only_app=only_app, expected_meeting_number=expected)


def diagnose(
    token: str,
    apps: Sequence[App],
    now: int,
    *,
    only_app: App | None = None,
    expected_meeting_number: str | None = None,
) -> Diagnosis:
    """Diagnose `token` against `apps` (or `only_app` alone) at epoch second `now`."""
    d = Diagnosis()
    _diagnose(d, token, apps, now, only_app, expected_meeting_number)
    if d.problems:
        _hide_secrets(d, [*apps, only_app] if only_app is not None else apps)
    return d


def _hide_secrets(d: Diagnosis, apps: Sequence[App]) -> None:
    """The safety net under every message, and the header and claims shown: a value that
    happens to be a configured secret (an SDK key and secret swapped, say) is never echoed."""
    # Whole, then cut short as show() cuts a value.
    secrets = [
        (text, f"<the secret of app {a.name!r}>")
        for a in apps
        for secret in a.secrets
        if len(secret) >= 8
        for text in dict.fromkeys(
            [secret.decode(errors="ignore"), secret.decode(errors="ignore")[:SHOWN]]
        )
    ]
    if not secrets:
        return

    def hide(text: str) -> str:
        for secret, shown in secrets:
            if secret in text:
                text = text.replace(secret, shown)
        return text

    d.problems[:] = [Problem(p.code, hide(p.message), p.claim) for p in d.problems]
    for decoded in (d.header, d.claims):
        if decoded is not None:
            _hide_in(decoded, hide)


def _hide_in(decoded: dict[str, Any], hide: Callable[[str], str]) -> None:
    """Apply `hide` to every string in decoded JSON, keys too, in place and in order; without
    recursion, as JSON may nest a thousand levels deep."""
    stack: list[Any] = [decoded]
    while stack:
        container = stack.pop()
        items = list(container.items()) if isinstance(container, dict) else enumerate(container)
        if isinstance(container, dict):
            container.clear()
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append(value)
            elif isinstance(value, str):
                value = hide(value)
            container[hide(key) if isinstance(key, str) else key] = value


def _diagnose(
    d: Diagnosis,
    token: str,
    apps: Sequence[App],
    now: int,
    only_app: App | None,
    expected_meeting_number: str | None,
) -> None:
    text = token.strip()
    if text != token:
        d.add(
            ProblemCode.MALFORMED,
            "the token has leading or trailing white space (a newline?): send it as minted",
        )
    if maybe_wrapped(text):
        text = unwrapped(text, d)
    segments = text.split(".")
    if len(segments) != 3 or text.startswith("{"):  # JSON holding a token has its dots too
        not_three_segments(text, segments, d)
        return
    signature = read_segments(segments, d)
    sdk = None
    if d.claims is not None:
        sdk = sdk_of(d.claims)
        key = read_sdk_key(d.claims, sdk, d)
        if key is not None and sdk is not None:
            d.app = find_app(key, sdk, apps, only_app, d)
    if signature is not None:  # checked even when the payload is unreadable or its key unknown
        _signed(d, f"{segments[0]}.{segments[1]}".encode(), signature, apps, only_app)
    if d.claims is None:
        return
    if sdk is not None:
        check_claims(d.claims, sdk, d, now, expected_meeting_number)
    if sdk != "meeting" and expected_meeting_number is not None:
        d.add(
            ProblemCode.MEETING_MISMATCH,
            f"expected a token for meeting {expected_meeting_number}; this is not a Meeting SDK token",
            MEETING_NUMBER,
        )


def _signed(
    d: Diagnosis, signing_input: bytes, signature: bytes, apps: Sequence[App], only_app: App | None
) -> None:
    """Which secret signed the token: its app's first, then any app's (or only `only_app`)."""
    matched = matching_secret(d.app, signing_input, signature) if d.app else None
    if matched is not None:
        d.signature, d.secret_fingerprint = SignatureCheck.MATCHED, matched
    else:
        pool = apps if only_app is None else (only_app,)
        check_signature(d, find_signer(signing_input, signature, d.app, pool))
