"""Zoom's rules in zoom.rules, held against the proto, Sign and Verify.

Every optional claim in the rules module is checked here by its form: a claim
added there (with its proto field) is signed, read back and diagnosed by these
tests with nothing else to write.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from google.protobuf.descriptor import FieldDescriptor

from sdksign.client._claims import claim_flags
from sdksign.server import Config, InvalidArgument, diagnose, mint
from sdksign.server.access.policy import Caller, Rule
from sdksign.server.tokens.diagnose.problems import (
    PROBLEM_CODES,
    SIGNATURE_CHECKS,
    TOKEN_KINDS,
    ProblemCode,
    TokenKind,
)
from sdksign.server.tokens.signature import SignatureCheck
from sdksign.server.zoom.rules import (
    MEETING_CLAIMS,
    MEETING_OPTIONAL,
    VIDEO_CLAIMS,
    VIDEO_OPTIONAL,
    Form,
    OptionalClaim,
)
from sdksign.v1 import signature_service_pb2 as pb
from tests.helpers import HS256, meeting_claims, raw_token, video_claims

NOW = 1_790_000_000
ANYONE = Caller(name="test", rule=Rule())
OPTIONAL = [("meeting", claim) for claim in MEETING_OPTIONAL] + [
    ("video", claim) for claim in VIDEO_OPTIONAL
]
OPTIONAL_IDS = [f"{sdk}.{claim.name}" for sdk, claim in OPTIONAL]


def proto_names(enum: Any, prefix: str) -> set[str]:
    names: list[str] = enum.keys()
    return {name.removeprefix(prefix) for name in names if not name.endswith("UNSPECIFIED")}


def test_problem_codes_are_the_protos() -> None:
    assert {str(code) for code in ProblemCode} == proto_names(pb.ProblemCode, "PROBLEM_CODE_")
    assert all(pb.ProblemCode.Name(PROBLEM_CODES[code]).endswith(code) for code in ProblemCode)


def test_token_kinds_are_the_protos() -> None:
    ours = {kind.upper() for kind in TokenKind if kind}
    assert ours == proto_names(pb.TokenKind, "TOKEN_KIND_")
    assert TOKEN_KINDS[TokenKind.UNKNOWN] == pb.TOKEN_KIND_UNSPECIFIED


def test_signature_checks_are_the_protos() -> None:
    # Both ways: every proto value but UNSPECIFIED is one of ours (which never sends it).
    assert {str(c) for c in SignatureCheck} == proto_names(pb.SignatureCheck, "SIGNATURE_CHECK_")
    assert all(
        pb.SignatureCheck.Name(SIGNATURE_CHECKS[check]) == f"SIGNATURE_CHECK_{check}"
        for check in SignatureCheck
    )


# Each form of optional claim, and the proto field that carries it in a SignRequest.
FIELD_SHAPES = {
    Form.FLAG: (FieldDescriptor.TYPE_BOOL, False, True),  # type, repeated, optional (presence)
    Form.TEXT: (FieldDescriptor.TYPE_STRING, False, False),
    Form.REGIONS: (FieldDescriptor.TYPE_STRING, True, False),
}


@pytest.mark.parametrize(("sdk", "claim"), OPTIONAL, ids=OPTIONAL_IDS)
def test_optional_claim_is_a_field_of_the_proto(sdk: str, claim: OptionalClaim) -> None:
    message = pb.MeetingClaims if sdk == "meeting" else pb.VideoClaims
    field = message.DESCRIPTOR.fields_by_name.get(claim.name)
    assert field is not None, f"{message.__name__} has no field {claim.name}"
    assert (field.type, field.is_repeated, field.has_presence) == FIELD_SHAPES[claim.form]
    assert (claim.form is Form.TEXT) == (claim.max_length > 0)


def test_claim_lists_have_no_repeats() -> None:
    assert len(set(MEETING_CLAIMS)) == len(MEETING_CLAIMS)
    assert len(set(VIDEO_CLAIMS)) == len(VIDEO_CLAIMS)


def good_value(claim: OptionalClaim) -> tuple[Any, Any]:
    """A value for the request's field, and what the token's claim then holds."""
    if claim.form is Form.FLAG:
        return True, 1
    if claim.form is Form.REGIONS:
        return ["US", "DE"], "US,DE"
    return "x" * claim.max_length, "x" * claim.max_length


def base_request(sdk: str) -> pb.SignRequest:
    """A valid request with no optional claim set."""
    if sdk == "meeting":
        return pb.SignRequest(
            meeting=pb.MeetingClaims(meeting_number="94843468909", role=pb.ROLE_HOST)
        )
    return pb.SignRequest(video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST))


def request_with(sdk: str, claim: OptionalClaim, value: Any) -> pb.SignRequest:
    request = base_request(sdk)
    claims = request.meeting if sdk == "meeting" else request.video
    if claim.form is Form.REGIONS:
        getattr(claims, claim.name).extend(value)
    else:
        setattr(claims, claim.name, value)
    return request


@pytest.mark.parametrize(("sdk", "claim"), OPTIONAL, ids=OPTIONAL_IDS)
def test_optional_claim_is_signed_last_and_verifies(
    config: Config, sdk: str, claim: OptionalClaim
) -> None:
    value, in_token = good_value(claim)
    minted = mint(request_with(sdk, claim, value), config, NOW, ANYONE)
    claims = jwt.decode(
        minted.token, minted.app.secret, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims[claim.name] == in_token
    order = MEETING_CLAIMS if sdk == "meeting" else VIDEO_CLAIMS
    assert list(claims) == [name for name in order if name in claims]
    assert diagnose(minted.token, config.apps, NOW).problems == []


@pytest.mark.parametrize(("sdk", "claim"), OPTIONAL, ids=OPTIONAL_IDS)
def test_optional_claim_unset_is_not_written(
    config: Config, sdk: str, claim: OptionalClaim
) -> None:
    minted = mint(base_request(sdk), config, NOW, ANYONE)
    assert claim.name not in jwt.decode(
        minted.token, minted.app.secret, algorithms=["HS256"], options={"verify_exp": False}
    )


def bad_values(claim: OptionalClaim) -> list[tuple[Any, ProblemCode]]:
    """Values of the claim in a token that Verify must report, and the code it reports."""
    if claim.form is Form.FLAG:
        return [("1", ProblemCode.WRONG_CLAIM_TYPE), (2, ProblemCode.INVALID_CLAIM)]
    if claim.form is Form.REGIONS:
        return [(["US"], ProblemCode.WRONG_CLAIM_TYPE), ("US,XX", ProblemCode.INVALID_CLAIM)]
    too_long = "x" * (claim.max_length + 1)
    return [(7, ProblemCode.WRONG_CLAIM_TYPE), (too_long, ProblemCode.INVALID_CLAIM)]


@pytest.mark.parametrize(("sdk", "claim"), OPTIONAL, ids=OPTIONAL_IDS)
def test_optional_claim_broken_in_a_token_is_reported(
    config: Config, sdk: str, claim: OptionalClaim
) -> None:
    app = config.apps_of_kind("meeting" if sdk == "meeting" else "video")[0]
    for value, code in bad_values(claim):
        payload = (meeting_claims if sdk == "meeting" else video_claims)(app.sdk_key, NOW)
        payload[claim.name] = value
        d = diagnose(raw_token(HS256, payload, app.secret), config.apps, NOW)
        assert [(p.code, p.claim) for p in d.problems] == [(code, claim.name)], value


# A flag is a bool in the request: it cannot be wrong there.
CHECKED = [(sdk, claim) for sdk, claim in OPTIONAL if claim.form is not Form.FLAG]


@pytest.mark.parametrize(("sdk", "claim"), CHECKED, ids=[f"{s}.{c.name}" for s, c in CHECKED])
def test_optional_claim_broken_in_a_request_is_refused(
    config: Config, sdk: str, claim: OptionalClaim
) -> None:
    value = ["US", "XX"] if claim.form is Form.REGIONS else "x" * (claim.max_length + 1)
    with pytest.raises(InvalidArgument) as caught:
        mint(request_with(sdk, claim, value), config, NOW, ANYONE)
    fields = [v.field for v in caught.value.violations]
    assert fields == [f"{sdk}.{claim.name}" + ("[1]" if claim.form is Form.REGIONS else "")]


def test_each_optional_claim_of_the_rules_has_its_cli_flag_and_no_other() -> None:
    # The CLI makes its flags from the proto's fields; the rules name the same claims.
    flags = {claim.claim: set(claim.sdks) for claim in claim_flags()}
    rules: dict[str, set[str]] = {}
    for sdk, optional in (("meeting", MEETING_OPTIONAL), ("video", VIDEO_OPTIONAL)):
        for claim in optional:
            rules.setdefault(claim.name, set()).add(sdk)
    assert flags == rules
