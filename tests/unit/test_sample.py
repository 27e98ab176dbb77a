"""tokens.sample: the edges of Zoom's sample body that the gateway table does not reach, and
the error shape (the table itself runs through the real Envoy in tests/gateway)."""

from __future__ import annotations

import json

import pytest

from sdksign.server.errors import InvalidArgument, PermissionDenied, Unauthenticated
from sdksign.server.tokens import sample


def refused(body: bytes, content_type: str = "application/json") -> list[dict[str, str]]:
    with pytest.raises(InvalidArgument) as caught:
        sample.sign_request(content_type, body)
    errors: list[dict[str, str]] = json.loads(sample.errors(caught.value))["errors"]
    return errors


@pytest.mark.parametrize(
    ("body", "property_"),
    [
        (b'{"meetingNumber":1e400,"role":0}', "meetingNumber"),  # inf in Python's json
        (b'{"meetingNumber":"1","role":0,"expirationSeconds":1e400}', "expirationSeconds"),
        (b'{"meetingNumber":"1","role":NaN}', "$body"),  # not JSON, though Python reads it
        (b'{"meetingNumber":"1","role":Infinity}', "$body"),
        (b"\xff\xfe{}", "$body"),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, "$body"),  # deeper than Python's recursion
        (b'"text"', "$body"),
        (b"null", "$body"),
        (b'{"meetingNumber":9007199254740993,"role":0}', "meetingNumber"),  # beyond 2**53
        (b'{"meetingNumber":"1","role":0,"app":7}', "app"),
        (b'{"meetingNumber":"","role":0}', "meetingNumber"),
    ],
)
def test_bodies_the_table_does_not_show_are_refused_by_name(body: bytes, property_: str) -> None:
    assert [e["property"] for e in refused(body)] == [property_]


def test_only_json_is_read() -> None:
    assert refused(b"{}", "text/plain") == [
        {"property": "$body", "reason": "must be application/json"}
    ]
    assert sample.sign_request("Application/JSON; charset=utf-8", b"{}").HasField("meeting")


def test_a_meeting_number_may_be_a_whole_float_or_have_spaces() -> None:
    assert (
        sample.sign_request(
            "application/json", b'{"meetingNumber":123.0,"role":0}'
        ).meeting.meeting_number
        == "123"
    )
    assert (
        sample.sign_request(
            "application/json", b'{"meetingNumber":" 123 ","role":"0"}'
        ).meeting.meeting_number
        == "123"
    )


def test_refusals_name_the_field_of_their_rule() -> None:
    for error, property_ in [
        (Unauthenticated("anonymous callers may not mint host tokens", rule="role"), "role"),
        (
            PermissionDenied("caller 'x' may mint tokens of at most 60 s", rule="ttl"),
            "expirationSeconds",
        ),
        (PermissionDenied("caller 'x' may not call this", rule="verify"), "$request"),
        (Unauthenticated("unknown credentials"), "$request"),
    ]:
        assert json.loads(sample.errors(error)) == {
            "errors": [{"property": property_, "reason": error.message}]
        }


def test_no_body_is_read_as_an_empty_object_and_blank_is_not() -> None:
    # Express's JSON parser (the sample's) reads zero bytes as {} and whitespace as bad JSON.
    assert sample.sign_request("application/json", b"") == sample.sign_request(
        "application/json", b"{}"
    )
    assert [e["property"] for e in refused(b" ")] == ["$body"]
