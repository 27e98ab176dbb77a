"""The redactor against real tokens glued, repeated, nested, embedded and cut, checked with
the oracle of `make soak`'s log scan (bench/reliability/logscan.py) and against the tokens
themselves: no live token can be rebuilt from what a log line or span keeps."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reliability.logscan import whole_tokens
from sdksign.server.observe.redact import redact_and_bound
from sdksign.server.zoom.jwt import encode, fingerprint

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

claims = st.fixed_dictionaries(
    {
        "appKey": st.text(B64URL, min_size=1, max_size=24),
        "mn": st.text("0123456789", min_size=9, max_size=11),
        "role": st.integers(0, 1),
        "iat": st.integers(0, 2**31),
        "exp": st.integers(0, 2**31),
    },
    optional={"tokenExp": st.integers(0, 2**31), "x": st.text(max_size=30)},
)
tokens = st.builds(encode, claims, st.binary(min_size=1, max_size=32))
glue = st.text(B64URL + ".", max_size=4)  # "", "A", ".", "x.y"...
around = st.text(max_size=12) | st.text(B64URL + "./+=", max_size=12)


@st.composite
def cut(draw: st.DrawFn, token: str) -> str:
    """`token` (or tokens) with its end cut off, or its start cut off short of its signature: a bare
    signature, with not one character of its payload before it, is no token anyone can
    rebuild, and nothing marks it as one (it is 43 random characters)."""
    # A token cut before already may start with its last dot: then only its end is cut.
    if token.rfind(".") < 1 or draw(st.booleans()):
        return token[: draw(st.integers(1, len(token)))]
    return token[draw(st.integers(0, token.rindex(".") - 1)) :]


@st.composite
def tangled(draw: st.DrawFn, pool: list[str]) -> str:
    """Tokens of `pool` put together the ways a caller can: glued with or without something
    between, repeated, one inside another, cut, among other text; nested a few levels."""
    pick = st.sampled_from(pool)
    how = draw(st.sampled_from(["glued", "repeated", "nested", "cut", "embedded"]))
    inner = draw(pick) if draw(st.integers(0, 3)) else draw(tangled(pool))
    if how == "glued":
        return inner + draw(glue) + draw(pick)
    if how == "repeated":
        return inner * draw(st.integers(2, 4))
    if how == "nested":
        outer = draw(pick)
        at = draw(st.integers(0, len(outer)))
        return outer[:at] + inner + outer[at:]
    if how == "cut":
        return draw(cut(inner))
    return draw(around) + inner + draw(around)


def assert_nothing_rebuildable(kept: str, pool: list[str]) -> None:
    """The log scan's oracle finds nothing, and no token has its whole payload and its
    whole signature left (the header is the same in every token: with those two, anyone
    has the token), also once every whole token is taken out of what is left (a token
    put inside another splits the outer one's payload or signature in two)."""
    assert list(whole_tokens(kept)) == []
    unnested = kept
    for token in pool:
        unnested = unnested.replace(token, "")
    for token in pool:
        _, payload, signature = token.split(".")
        for text in (kept, unnested):
            assert not (payload in text and signature in text), token


@settings(max_examples=1000, deadline=None)
@given(data=st.data(), pool=st.lists(tokens, min_size=1, max_size=3, unique=True))
def test_no_token_can_be_rebuilt_from_a_log_field_however_it_is_tangled(
    data: st.DataObject, pool: list[str]
) -> None:
    text = data.draw(tangled(pool))
    field = data.draw(st.sampled_from(["meeting", "app", "detail", "exception"]))
    event = redact_and_bound(None, "info", {"event": "rpc", field: text, "problems": [text]})
    assert_nothing_rebuildable(json.dumps(event), pool)


def test_the_second_of_two_glued_tokens_leaves_nothing_behind() -> None:
    # What the adversarial run found: T+T and T+"A"+T kept the second token's
    # payload.signature, and the header is the same in every token.
    first = encode({"appKey": "a", "mn": "123456789", "iat": 1}, b"one")
    second = encode({"appKey": "a", "mn": "987654321", "iat": 2}, b"two")
    for text in (first + second, first + "A" + second, first + "." + second, first * 3):
        meeting = redact_and_bound(None, "info", {"event": "rpc", "meeting": text})["meeting"]
        assert meeting == f"<token {fingerprint(text)}>"
        assert_nothing_rebuildable(meeting, [first, second])


def test_a_token_without_its_header_is_still_hidden() -> None:
    token = encode({"appKey": "a", "mn": "123456789", "iat": 1}, b"one")
    headless = token[token.index(".") + 1 :]
    for text in (headless, "zz" + token[5:], "A" * 200 + token):
        detail = redact_and_bound(None, "info", {"event": "e", "detail": f"got {text}!"})["detail"]
        assert detail.startswith("got <token ") and detail.endswith(">!")
        assert_nothing_rebuildable(detail, [token])


def test_the_log_scan_oracle_finds_what_it_should() -> None:
    token = encode({"appKey": "a", "iat": 1}, b"one")
    assert token in whole_tokens(f"x {token} y")
    assert list(whole_tokens(token[token.index(".") + 1 :])) != []  # payload.signature
    assert list(whole_tokens(token + token)) != []
    for clean in ("ipv4:127.0.0.1:1", "/sdksign.v1.SignatureService/Sign", "<token abc>"):
        assert list(whole_tokens(clean)) == []
