"""Who may mint what: callers, their rules, and the check of a Sign request against them.

Pure: identification takes the call's metadata and its TLS peer properties as
plain values, and the rule check takes a request already validated (a Grant).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, NoReturn, Protocol, TypeVar

from ..errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    unknown_app,
)
from ..zoom.rules import ROLES, is_app_name, is_meeting_number, is_zoom_user, quoted, shown


@dataclass(frozen=True)
class Rule:
    """What one caller (or every anonymous caller) may do."""

    apps: frozenset[str] | None = None  # None: every configured app
    roles: frozenset[str] = frozenset(ROLES)
    max_ttl: int | None = None  # None: the service's own maximum
    meetings: tuple[str, ...] | None = None  # patterns; None: any meeting
    sessions: tuple[str, ...] | None = None  # patterns; None: any Video SDK session
    verify: bool = True
    # The apps whose tokens Verify checks for this caller; None: the same as `apps`.
    verify_apps: frozenset[str] | None = None
    rate: float | None = None  # requests per second; None: no limit
    burst: int = 0
    # The Zoom users (emails or user IDs, patterns) whose meetings these callers may start.
    start_as: tuple[str, ...] = ()
    # The Zoom users (patterns) these callers may join on behalf of (OBF tokens).
    on_behalf_of: tuple[str, ...] = ()
    # Whether these callers may begin, complete, list and remove users' grants.
    grants: bool = False

    @property
    def verified_apps(self) -> frozenset[str] | None:
        """The apps Verify checks tokens against for this caller (None: every app)."""
        return self.apps if self.verify_apps is None else self.verify_apps


@dataclass(frozen=True)
class Caller:
    """A known caller: its name in logs and errors, how it proves who it is, its rule."""

    name: str
    rule: Rule
    token_sha256: bytes | None = field(default=None, repr=False)
    cert_identity: str | None = None


ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Policy:
    """Every caller, and what callers without credentials may do (None: nothing)."""

    callers: tuple[Caller, ...] = ()
    anonymous: Rule | None = Rule()

    def identify(
        self,
        metadata: Iterable[tuple[str, str | bytes]],
        peer: Callable[[], Mapping[str, Sequence[bytes]]],
    ) -> Caller:
        """The caller of an RPC, from its `authorization` metadata or its client certificate.

        `peer` gives the TLS peer's properties (grpc's auth context); it is asked
        only when no bearer token came.

        Raises Unauthenticated: an unknown bearer token and an unknown certificate get
        one message (UNKNOWN_CREDENTIALS), so that nobody learns which credentials
        exist; a malformed authorization, or none at all where anonymous callers are
        refused, gets one that says what to send.
        """
        bearer = next((value for key, value in metadata if key == "authorization"), None)
        if bearer is not None:
            return self._by_token(bearer if isinstance(bearer, str) else bearer.decode("latin-1"))
        names = certificate_names(peer())
        if names is not None:
            caller = next((c for c in self.callers if names.name(c.cert_identity)), None)
            if caller is None:
                raise Unauthenticated(UNKNOWN_CREDENTIALS)
            return caller
        if self._anonymous_caller is None:
            raise Unauthenticated(
                "credentials are required: send 'authorization: Bearer <token>' metadata "
                "or a client certificate"
            )
        return self._anonymous_caller

    @cached_property
    def _anonymous_caller(self) -> Caller | None:
        return None if self.anonymous is None else Caller(name=ANONYMOUS, rule=self.anonymous)

    def _by_token(self, header: str) -> Caller:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for caller in self.callers:  # every entry is compared: the time says nothing
            if caller.token_sha256 is not None and hmac.compare_digest(caller.token_sha256, digest):
                found = caller
        if found is None:
            raise Unauthenticated(UNKNOWN_CREDENTIALS)
        return found


UNKNOWN_CREDENTIALS = "the credentials are not valid for this service"


class CertificateNames(NamedTuple):
    """The names a client certificate holds, each of its own kind: its URI SANs, its DNS
    SANs and its subject's CN. Email and IP SANs name no caller."""

    uris: tuple[str, ...]
    dns: tuple[str, ...]
    common_name: str | None

    def name(self, identity: str | None) -> bool:
        """Whether this certificate names the caller whose `cert_identity` is `identity`.

        Each kind only matches its own: a URI identity (it has "://") a URI SAN, never a
        DNS SAN, an email SAN or the CN that spells the same text; any other identity a
        DNS SAN, or the CN of a certificate that has no URI or DNS SAN at all (as RFC 6125
        reads the CN only when the certificate has no SAN of the kind asked for)."""
        if identity is None:
            return False
        if "://" in identity:
            return identity in self.uris
        if self.uris or self.dns:
            return identity in self.dns
        return identity == self.common_name


# Any of these in the auth context: the peer sent a certificate (a SPIFFE certificate may
# have an empty subject and only a URI SAN).
_CERTIFICATE_KEYS = ("x509_pem_cert", "x509_subject", "x509_common_name", "peer_uri", "peer_dns")


def certificate_names(peer: Mapping[str, Sequence[bytes]]) -> CertificateNames | None:
    """The names of the TLS peer's certificate, from gRPC's auth context (`peer_uri`,
    `peer_dns`, `x509_common_name`); None without a certificate."""
    if not peer or not any(peer.get(key) for key in _CERTIFICATE_KEYS):  # plaintext: {}
        return None
    common = peer.get("x509_common_name") or ()
    return CertificateNames(
        uris=tuple(uri.decode(errors="replace") for uri in peer.get("peer_uri", ()) or ()),
        dns=tuple(name.decode(errors="replace") for name in peer.get("peer_dns", ()) or ()),
        common_name=common[0].decode(errors="replace") if common else None,
    )


class Grant(NamedTuple):
    """What a validated Sign request asks for."""

    app: str
    sdk: str  # "meeting" or "video"
    role: str  # "participant", "host", or "" for a native meeting token
    ttl: int
    meeting_number: str = ""
    session_name: str = ""
    start_as: str = ""  # the Zoom user a host start names; "": no host start
    on_behalf_of: str = ""  # the Zoom user an OBF token is asked for; "": none


def authorize(caller: Caller, grant: Grant) -> None:
    """Raise PermissionDenied (Unauthenticated for anonymous callers) naming the rule broken."""
    rule = caller.rule
    # Always passes for an app picked within in_scope(rule.apps) (pick_app); kept so that
    # every rule is checked here.
    authorize_app(caller, grant.app)
    # A native meeting token (no meeting number) carries no role: it is a participant's.
    role = grant.role or "participant"
    if role not in rule.roles:
        allowed = ", ".join(r for r in ROLES if r in rule.roles) or "none"
        _deny(caller, f"may not mint {role} tokens (allowed roles: {allowed})", "role")
    if rule.max_ttl is not None and grant.ttl > rule.max_ttl:
        _deny(
            caller,
            f"may mint tokens of at most {rule.max_ttl} s; {grant.ttl} s was asked",
            "ttl",
        )
    meetings, sessions = rule.meetings, rule.sessions
    if (
        grant.sdk == "meeting"
        and meetings is not None
        and not _matches(grant.meeting_number, meetings)
    ):
        number = shown(grant.meeting_number, is_meeting_number) or "(none)"
        _deny(
            caller,
            f"may not mint tokens for meeting {number} (allowed: {', '.join(meetings) or 'none'})",
            "meeting",
        )
    if grant.sdk == "video" and sessions is not None and not _matches(grant.session_name, sessions):
        _deny(
            caller,
            f"may not mint tokens for this session name (allowed: {', '.join(sessions) or 'none'})",
            "session",
        )
    if grant.start_as and not may_start_as(rule, grant.start_as):
        _deny(
            caller,
            f"may not start meetings as {quoted(grant.start_as, is_zoom_user)} "
            f"(allowed: {', '.join(rule.start_as) or 'none'})",
            "start_as",
        )

    if grant.on_behalf_of and not names_user(rule.on_behalf_of, grant.on_behalf_of):
        _deny(
            caller,
            f"may not join on behalf of {quoted(grant.on_behalf_of, is_zoom_user)} "
            f"(allowed: {', '.join(rule.on_behalf_of) or 'none'})",
            "on_behalf_of",
        )


def authorize_app(caller: Caller, app: str) -> None:
    """Refuse (rule `app`) a caller whose rule's apps do not name `app`: Sign's check, and
    that of a grant call on an app the caller did not name in the request (CompleteGrant's
    app is the one its state was begun for)."""
    apps = caller.rule.apps
    if apps is not None and app not in apps:
        allowed = ", ".join(sorted(apps)) or "none"
        _deny(caller, f"may not use app {app!r} (allowed: {allowed})", "app")


def authorize_grants(caller: Caller) -> None:
    """Refuse a caller whose rule does not say grants = true (BeginGrant and the others)."""
    if not caller.rule.grants:
        _deny(caller, "may not manage users' grants (grants = true is not set)", "grants")


def names_user(patterns: Sequence[str], user: str) -> bool:
    """Whether `patterns` (a rule's start_as or on_behalf_of) name the Zoom user `user` (an
    email or a user ID).

    Email addresses are matched without regard to case, as Zoom treats them; user IDs
    exactly, since two IDs that differ in case are two users.
    """
    if "@" not in user:
        return _matches(user, patterns)
    return _matches(user.lower(), [pattern.lower() for pattern in patterns])


def may_start_as(rule: Rule, user: str) -> bool:
    """Whether `rule`'s start_as patterns name the Zoom user `user` (names_user)."""
    return names_user(rule.start_as, user)


def authorize_verify(caller: Caller) -> None:
    """Raise if `caller` may not call Verify."""
    if not caller.rule.verify:
        if caller.name == ANONYMOUS:
            raise Unauthenticated("Verify needs credentials here", rule="verify")
        raise PermissionDenied(f"caller {caller.name!r} may not call Verify", rule="verify")


class Named(Protocol):
    """Anything with a name: an App, here."""

    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=Named)


class Kinded(Named, Protocol):
    """A named app of a kind ("meeting" or "video"): a config.App, here."""

    @property
    def kind(self) -> str: ...


KindedT = TypeVar("KindedT", bound=Kinded)


def in_scope(allowed: frozenset[str] | None, apps: Iterable[NamedT]) -> list[NamedT]:
    """The `apps` named in `allowed` (a rule's apps or verified_apps; None: all), in order.

    A caller is told of these alone: an app outside them is answered as one nobody
    configured, so that no caller learns which other apps exist.
    """
    return [app for app in apps if allowed is None or app.name in allowed]


def refuse_kind(caller: Caller, sdk: str) -> NoReturn:
    """Raise for a Sign that names no app when `caller`'s rule has none of kind `sdk`; the
    same words whether or not one is configured."""
    allowed = ", ".join(sorted(caller.rule.apps or ())) or "none"
    _deny(caller, f"may use no {sdk} app (allowed: {allowed})", "app")


def _deny(caller: Caller, what: str, rule: str) -> NoReturn:
    """Raise the refusal of `caller` by `rule`, its message `what` after the caller's name:
    Unauthenticated for anonymous callers (credentials would help), else PermissionDenied."""
    if caller.name == ANONYMOUS:
        raise Unauthenticated(f"anonymous callers {what}", rule=rule)
    raise PermissionDenied(f"caller {caller.name!r} {what}", rule=rule)


def _matches(value: str, patterns: Sequence[str]) -> bool:
    return bool(value) and any(fnmatch.fnmatchcase(value, p) for p in patterns)


# --- the app a call is for: Sign's choice, and the grant calls' -------------------------------


def pick_app(
    name: str, sdk: str, apps: Sequence[KindedT], violations: list[FieldViolation]
) -> KindedT | None:
    """Of `apps` (those the caller may use: in_scope), the app named `name`, else the only
    one of `sdk`; violations say why there is none, except when `apps` hold none of `sdk`
    (None alone: no_app tells).

    An app outside `apps` is answered as one nobody configured: neither its existence nor
    its kind is told.
    """
    if name:
        app = next((a for a in apps if a.name == name), None)
        if app is None:
            violations.append(unknown_app(quoted(name, is_app_name), [a.name for a in apps]))
        elif app.kind != sdk:
            violations.append(
                FieldViolation(
                    "app", f"{name!r} is a {app.kind} app; {sdk} claims need a {sdk} app"
                )
            )
        return app
    candidates = [a for a in apps if a.kind == sdk]
    if len(candidates) > 1:
        names = ", ".join(a.name for a in candidates)
        violations.append(
            FieldViolation("app", f"is required: this caller may use several {sdk} apps ({names})")
        )
    return candidates[0] if len(candidates) == 1 else None


def no_app(caller: Caller, sdk: str) -> NoReturn:
    """Raise for a valid call without `app` when no app of `sdk` is there for `caller`: its
    rule's apps have none (a refusal, the same whether one is configured or not), or, for a
    rule without apps, none is configured."""
    if caller.rule.apps is not None:
        refuse_kind(caller, sdk)
    raise FailedPrecondition(
        f"no {sdk} app is configured: add one to the configuration "
        f"(or set ZOOM_{sdk.upper()}_SDK_KEY and ZOOM_{sdk.upper()}_SDK_SECRET)"
    )


def app_for(caller: Caller, name: str, sdk: str, apps: Iterable[KindedT]) -> KindedT:
    """The app of `apps` (every configured one) a call naming `name` is for, chosen within
    `caller`'s rule exactly as Sign chooses (in_scope, pick_app, no_app, authorize_app):
    InvalidArgument for an app outside it (worded as one nobody configured), a refusal
    (rule `app`) when the rule has no app of `sdk`."""
    violations: list[FieldViolation] = []
    app = pick_app(name, sdk, in_scope(caller.rule.apps, apps), violations)
    if violations:
        raise InvalidArgument(violations)
    if app is None:
        no_app(caller, sdk)
    authorize_app(caller, app.name)
    return app
