"""Our encoder against PyJWT's: same bytes for the same claims."""

from __future__ import annotations

import json

import jwt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sdksign.server.zoom.jwt import b64decode_lenient, b64url, encode, fingerprint, parse_json

SECRET = b"a-secret-of-forty-three-characters-abcdefgh"


def test_same_bytes_as_pyjwt_for_a_meeting_token() -> None:
    payload = {
        "appKey": "k",
        "sdkKey": "k",
        "mn": "94843468909",
        "role": 1,
        "iat": 1790000000,
        "exp": 1790007200,
        "tokenExp": 1790007200,
    }
    assert encode(payload, SECRET) == jwt.encode(payload, SECRET, algorithm="HS256")


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.integers(), st.text(max_size=40), st.booleans(), st.none()),
        max_size=8,
    ),
    secret=st.binary(min_size=1, max_size=64),
)
@example(payload={"\x7f": None}, secret=b"\x00")  # DEL: json escapes it, orjson does not
def test_same_bytes_as_pyjwt_for_any_claims(payload: dict[str, object], secret: bytes) -> None:
    assert encode(payload, secret) == jwt.encode(payload, secret, algorithm="HS256")


def test_header_and_segments() -> None:
    token = encode({"x": 1}, SECRET)
    header, _, signature = token.split(".")
    assert json.loads(b64decode_lenient(header)) == {"alg": "HS256", "typ": "JWT"}
    assert "=" not in token and "+" not in token and "/" not in token
    assert len(b64decode_lenient(signature)) == 32
    assert jwt.decode(token, SECRET, algorithms=["HS256"]) == {"x": 1}


@pytest.mark.parametrize("data", [b"", b"\xff", b"\xfb\xff", b"hello world", bytes(range(256))])
def test_b64url_round_trip_and_lenient_decoding(data: bytes) -> None:
    encoded = b64url(data).decode()
    assert b64decode_lenient(encoded) == data
    standard = encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4)
    assert b64decode_lenient(standard) == data


def test_lenient_decoding_still_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        b64decode_lenient("not base64!")


def test_fingerprint_is_short_stable_and_one_way() -> None:
    token = encode({"x": 1}, SECRET)
    assert fingerprint(token) == fingerprint(token.encode())
    assert len(fingerprint(token)) == 12
    assert fingerprint(token) not in token
    assert fingerprint(token) != fingerprint(token + "x")


def _same(a: object, b: object) -> bool:
    """Equal, with the same types throughout (1 and 1.0 and True differ); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    # b is of a's type: each isinstance of b below holds whenever that of a does.
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 3, max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=6))
def test_parse_json_reads_what_json_loads_reads(value: dict[str, object]) -> None:
    text = json.dumps(value).encode()
    assert _same(parse_json(text), json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        b'{"iat":123456789012345678901234567890}',  # orjson would round it to a float
        b'{"iat":1e400}',
        b'{"a":NaN}',
        b'{"a":"\\ud800"}',
        b'{"a":1,"a":2}',
        b"\xef\xbb\xbf{}",
        '{"a":"\u00e9"}'.encode("utf-16"),
        b"[1, 2]",
    ],
)
def test_parse_json_agrees_with_json_loads_on_edge_cases(text: bytes) -> None:
    assert _same(parse_json(text), json.loads(text))


@pytest.mark.parametrize("text", [b"", b"{", b'{"a":1,}', b"\xff", b"[" * 100_000])
def test_parse_json_refuses_what_json_loads_refuses(text: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as ours:
        parse_json(text)
    with pytest.raises((ValueError, RecursionError)) as theirs:
        json.loads(text)
    assert type(ours.value) is type(theirs.value)
