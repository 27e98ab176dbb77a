"""A token's SDK key and the configured app it names, and what checking its signature
found (tokens.signature) told as problems: a key and secret swapped, another app's
secret, a secret read wrongly."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from ...config import App
from ...zoom.rules import (
    MEETING_KEY,
    MEETING_MARKERS,
    MEETING_OLD_KEY,
    VIDEO_KEY,
    VIDEO_MARKERS,
    Sdk,
)
from ..signature import Finding, SignatureCheck
from .claims import string_claim
from .problems import Diagnosis, Problem, ProblemCode
from .words import show


def sdk_of(claims: dict[str, Any]) -> Sdk | None:
    """Which SDK the claims are for, from the claims only that SDK has; None: neither."""
    if not claims.keys().isdisjoint(MEETING_MARKERS):
        return "meeting"
    if not claims.keys().isdisjoint(VIDEO_MARKERS):
        return "video"
    return None


def read_sdk_key(claims: dict[str, Any], sdk: Sdk | None, d: Diagnosis) -> str | None:
    if sdk == "meeting":
        return _meeting_keys(claims, d)
    if sdk == "video":
        return string_claim(claims, VIDEO_KEY, d, required=True)
    d.add(
        ProblemCode.MISSING_CLAIM,
        f"neither {MEETING_KEY} (Meeting SDK) nor {VIDEO_KEY} (Video SDK) is present, so the "
        "SDK the token is for cannot be told: add the SDK key claim",
        MEETING_KEY,
    )
    return None


def _meeting_keys(claims: dict[str, Any], d: Diagnosis) -> str | None:
    sdk_key = string_claim(claims, MEETING_KEY, d, required=False)
    app_key = string_claim(claims, MEETING_OLD_KEY, d, required=False)
    if MEETING_KEY not in claims:
        hint = (
            f"; only the older {MEETING_OLD_KEY} is there: add {MEETING_KEY} with the same value"
            if app_key
            else ""
        )
        d.add(
            ProblemCode.MISSING_CLAIM,
            f"{MEETING_KEY} is required: the SDK key (Client ID) of the Meeting SDK app{hint}",
            MEETING_KEY,
        )
    if sdk_key is not None and app_key is not None and sdk_key != app_key:
        d.add(
            ProblemCode.KEY_MISMATCH,
            f"{MEETING_OLD_KEY} {show(app_key)} and {MEETING_KEY} {show(sdk_key)} differ; when "
            "both are present they must be the same SDK key",
            MEETING_OLD_KEY,
        )
    return sdk_key if sdk_key is not None else app_key


def find_app(
    key: str, sdk: Sdk, apps: Sequence[App], only_app: App | None, d: Diagnosis
) -> App | None:
    """The app whose SDK key `key` is (among `apps`, or `only_app` alone); problems say why none."""
    claim = MEETING_KEY if sdk == "meeting" else VIDEO_KEY
    name = "Meeting SDK" if sdk == "meeting" else "Video SDK"
    owner = _secret_owner(key, apps if only_app is None else (*apps, only_app))
    if owner is not None:  # key and secret swapped: never show the value
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} holds the secret of app {owner.name!r}, not its SDK key: put the SDK key "
            f"(Client ID) in {claim} and use the secret only to sign",
            claim,
        )
        return None
    if only_app is not None and only_app.sdk_key != key:
        message = f"{claim} {show(key)} is not the SDK key of app {only_app.name!r}"
        d.add(ProblemCode.UNKNOWN_SDK_KEY, message, claim)
        return None
    app = only_app or next((a for a in apps if a.sdk_key == key), None)
    if app is None:
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} {show(key)} is not the key of any configured {name} app (that this "
            "caller may verify), so the secret that should sign it is not known. "
            f"Keys of OAuth, Server-to-Server OAuth and JWT apps are refused "
            f"by Zoom ('Invalid SDK App Keys', 3712): use the Client ID of a {name} app",
            claim,
        )
    elif app.kind != sdk:
        d.add(
            ProblemCode.UNKNOWN_SDK_KEY,
            f"{claim} {show(key)} is the key of {app.kind} app {app.name!r}, but this is a {name} token",
            claim,
        )
    return app


def _secret_owner(key: str, apps: Sequence[App]) -> App | None:
    """The app one of whose secrets `key` is (compared in constant time)."""
    raw = key.encode("utf-8", "surrogatepass")
    return next((a for a in apps for secret in a.secrets if hmac.compare_digest(secret, raw)), None)


def check_signature(d: Diagnosis, found: Finding) -> None:
    """Record what made the signature, a secret of the token's app having failed; a problem
    says what went wrong."""
    d.signature, d.tried_fingerprints = found.check, found.tried
    signer = found.app.name if found.app is not None else ""
    if found.check is SignatureCheck.MATCHED_OTHER_APP:
        d.secret_fingerprint = found.fingerprint
        made = f"the signature was made with the secret of app {signer!r} ({found.fingerprint})"
        if d.app is None:  # the key is unknown, or not only_app's: its problem says so
            _extend_key_problem(d, f"; {made}: for that app, put its SDK key in the token")
            return
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"{made}, but the token carries the SDK key of app {d.app.name!r}: sign with the "
            "Client Secret of the app whose SDK key the token carries",
        )
    elif found.reading is not None:
        d.add(
            ProblemCode.SECRET_ENCODING,
            f"the signature was made with the secret of app {signer!r} ({found.fingerprint}) "
            f"{found.reading.how}: {found.reading.fix}",
        )
    elif found.sdk_key:
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"the token was signed with the SDK key (Client ID) of app {signer!r} as the HMAC "
            "key: sign with the app's Client Secret, and put the SDK key in the token",
        )
    elif d.app is not None:
        d.add(
            ProblemCode.BAD_SIGNATURE,
            f"the signature does not match the secret of app {d.app.name!r}: the token was "
            "signed with another secret (the Client Secret of the same Meeting/Video SDK app "
            "is the right one), or its header or payload changed after signing. Secrets "
            f"tried (fingerprints, as the server logs them at start): {', '.join(found.tried)}",
        )
    elif found.tried:
        _extend_key_problem(d, f"; nor does any of the {len(found.tried)} secrets tried sign it")


def _extend_key_problem(d: Diagnosis, text: str) -> None:
    """Add `text` to the message of the problem with the token's SDK key, if there is one."""
    for index in range(len(d.problems) - 1, -1, -1):
        problem = d.problems[index]
        if problem.claim in (MEETING_KEY, VIDEO_KEY) and problem.code in (
            ProblemCode.UNKNOWN_SDK_KEY,
            ProblemCode.MISSING_CLAIM,
        ):
            d.problems[index] = Problem(problem.code, problem.message + text, problem.claim)
            return
