"""Callers and rules, as pure logic: every rule allowed and denied."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from sdksign.server.access.policy import (
    ANONYMOUS,
    UNKNOWN_CREDENTIALS,
    Caller,
    Grant,
    Policy,
    Rule,
    authorize,
    authorize_verify,
    certificate_names,
)
from sdksign.server.errors import PermissionDenied, Unauthenticated

TOKEN = "scheduler-bearer-token-0123456789"
SCHEDULER = Caller(
    name="scheduler",
    rule=Rule(
        apps=frozenset({"meeting"}),
        roles=frozenset({"participant", "host"}),
        max_ttl=7200,
        meetings=("9484*",),
    ),
    token_sha256=hashlib.sha256(TOKEN.encode()).digest(),
)
CLASSROOM = Caller(
    name="classroom",
    rule=Rule(roles=frozenset({"participant"}), verify=False),
    cert_identity="spiffe://corp/classroom",
)
ROOMS = Caller(name="rooms", rule=Rule(sessions=("room-*",)), cert_identity="rooms.corp")
POLICY = Policy(callers=(SCHEDULER, CLASSROOM, ROOMS), anonymous=Rule(roles=frozenset()))


def no_peer() -> dict[str, list[bytes]]:
    return {}


def peer(**properties: list[bytes]) -> Callable[[], dict[str, list[bytes]]]:
    return lambda: properties


def meeting(role: str = "host", ttl: int = 3600, number: str = "94841234567") -> Grant:
    return Grant(app="meeting", sdk="meeting", role=role, ttl=ttl, meeting_number=number)


# --- who is calling ---------------------------------------------------------------------


def test_a_known_bearer_token_names_its_caller() -> None:
    caller = POLICY.identify([("authorization", f"Bearer {TOKEN}")], no_peer)
    assert caller is SCHEDULER


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", "Bearer someone-elses-token", f"bearer {TOKEN[:-1]}"]
)
def test_an_unknown_bearer_token_is_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated) as raised:
        POLICY.identify([("authorization", header)], no_peer)
    # The same words whatever was wrong: nothing tells which tokens exist.
    assert raised.value.message == UNKNOWN_CREDENTIALS
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("header", [TOKEN, "Basic abc", "Bearer ", "Bearer"])
def test_a_malformed_authorization_says_how_to_write_it(header: str) -> None:
    with pytest.raises(Unauthenticated, match="Bearer <token>"):
        POLICY.identify([("authorization", header)], no_peer)


def test_a_certificate_names_its_caller_by_uri_san_dns_san_or_cn() -> None:
    uri = POLICY.identify([], peer(peer_uri=[b"spiffe://corp/classroom"]))
    assert uri is CLASSROOM
    assert POLICY.identify([], peer(peer_dns=[b"rooms.corp"])) is ROOMS
    assert POLICY.identify([], peer(x509_common_name=[b"rooms.corp"])) is ROOMS


@pytest.mark.parametrize(
    "properties",
    [
        # A URI identity spelled in every other kind of name.
        {"x509_common_name": [b"spiffe://corp/classroom"]},
        {"peer_dns": [b"spiffe://corp/classroom"], "x509_common_name": [b"x"]},
        {"peer_email": [b"spiffe://corp/classroom"], "x509_common_name": [b"x"]},
        {"x509_subject_alternative_name": [b"spiffe://corp/classroom"], "x509_subject": [b"CN=x"]},
        # A DNS identity spelled as a URI SAN, or as the CN of a certificate with SANs.
        {"peer_uri": [b"rooms.corp"], "x509_common_name": [b"x"]},
        {"peer_uri": [b"spiffe://corp/other"], "x509_common_name": [b"rooms.corp"]},
        {"peer_dns": [b"other.corp"], "x509_common_name": [b"rooms.corp"]},
    ],
    ids=[
        "uri-as-cn",
        "uri-as-dns",
        "uri-as-email",
        "uri-in-any-san",
        "dns-as-uri",
        "cn-with-uri",
        "cn-with-dns",
    ],
)
def test_a_name_of_one_kind_never_matches_an_identity_of_another(
    properties: dict[str, list[bytes]],
) -> None:
    with pytest.raises(Unauthenticated, match=UNKNOWN_CREDENTIALS):
        POLICY.identify([], peer(**properties))


def test_certificate_names_reads_each_kind_apart() -> None:
    properties = {
        "x509_subject_alternative_name": [b"host.corp", b"spiffe://corp/a"],
        "peer_uri": [b"spiffe://corp/a"],
        "peer_dns": [b"host.corp"],
        "x509_common_name": [b"cn-name"],
    }
    names = certificate_names(properties)
    assert names is not None
    assert tuple(names) == (("spiffe://corp/a",), ("host.corp",), "cn-name")
    assert names.name("spiffe://corp/a") and names.name("host.corp")
    assert not names.name("cn-name")  # a certificate with SANs is named by them
    assert certificate_names({"x509_common_name": [b"cn-name"]}).name("cn-name")  # type: ignore[union-attr]
    assert certificate_names({}) is None


def test_an_unknown_certificate_is_unauthenticated_like_an_unknown_token() -> None:
    with pytest.raises(Unauthenticated) as raised:
        POLICY.identify([], peer(x509_common_name=[b"stranger"]))
    assert raised.value.message == UNKNOWN_CREDENTIALS


def test_no_credentials_is_anonymous_when_allowed_else_unauthenticated() -> None:
    open_policy = Policy(callers=(SCHEDULER,), anonymous=Rule(roles=frozenset({"participant"})))
    assert open_policy.identify([], no_peer).name == ANONYMOUS
    with pytest.raises(Unauthenticated, match="credentials are required"):
        Policy(callers=(SCHEDULER,), anonymous=None).identify([], no_peer)


def test_the_token_wins_over_a_certificate() -> None:
    caller = POLICY.identify(
        [("authorization", f"Bearer {TOKEN}")], peer(x509_uri=[b"spiffe://corp/classroom"])
    )
    assert caller is SCHEDULER


# --- what a caller may mint --------------------------------------------------------------


def test_a_grant_inside_every_rule_is_allowed() -> None:
    authorize(SCHEDULER, meeting())
    authorize(SCHEDULER, meeting(role="participant", ttl=7200))


@pytest.mark.parametrize(
    ("grant", "rule"),
    [
        (Grant(app="video", sdk="video", role="host", ttl=3600, session_name="x"), "app"),
        (meeting(ttl=7201), "ttl"),
        (meeting(number="123456789"), "meeting"),
        (meeting(number=""), "meeting"),
    ],
)
def test_a_grant_outside_a_rule_is_denied_naming_it(grant: Grant, rule: str) -> None:
    with pytest.raises(PermissionDenied) as raised:
        authorize(SCHEDULER, grant)
    assert raised.value.rule == rule
    assert "scheduler" in raised.value.message


def test_roles() -> None:
    authorize(CLASSROOM, meeting(role="participant"))
    with pytest.raises(PermissionDenied, match="may not mint host tokens") as raised:
        authorize(CLASSROOM, meeting(role="host"))
    assert raised.value.rule == "role"
    # A native meeting token has no role claim: it counts as a participant's.
    authorize(CLASSROOM, meeting(role="", number=""))


def test_sessions() -> None:
    video = Grant(app="video", sdk="video", role="host", ttl=3600, session_name="room-12")
    authorize(ROOMS, video)
    with pytest.raises(PermissionDenied) as raised:
        authorize(ROOMS, video._replace(session_name="lobby"))
    assert raised.value.rule == "session"


def test_anonymous_callers_outside_their_rule_are_unauthenticated() -> None:
    anonymous = Caller(name=ANONYMOUS, rule=Rule(roles=frozenset({"participant"})))
    authorize(anonymous, meeting(role="participant"))
    with pytest.raises(Unauthenticated, match="anonymous callers may not mint host"):
        authorize(anonymous, meeting(role="host"))


def test_verify_rule() -> None:
    authorize_verify(SCHEDULER)
    with pytest.raises(PermissionDenied) as raised:
        authorize_verify(CLASSROOM)
    assert raised.value.rule == "verify"
    with pytest.raises(Unauthenticated):
        authorize_verify(Caller(name=ANONYMOUS, rule=Rule(verify=False)))
