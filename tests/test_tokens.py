"""Our encoder against PyJWT's: same bytes for the same claims."""

from __future__ import annotations

import json

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server._tokens import b64decode_lenient, b64url, encode, fingerprint

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
