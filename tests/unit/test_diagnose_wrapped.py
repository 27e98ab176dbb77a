"""diagnose(): a token pasted inside a wrapper (quotes, Bearer, signature=, JSON, URL-encoding) is
named as TOKEN_WRAPPED, and the token inside is diagnosed as if sent bare."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.server import App, diagnose, encode
from sdksign.server.tokens.diagnose.problems import ProblemCode
from sdksign.server.tokens.signature import SignatureCheck
from sdksign.server.tokens.wrapped import AS_SENT
from tests.conftest import MEETING_KEY
from tests.helpers import HS256, b64url, meeting_claims, raw_token
from tests.unit.diagnose_helpers import NOW, assert_no_secret, codes, only

# Each wrapper people paste a token in, and words its message must hold (the wrapper, what to do).
WRAPPERS: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    "double quotes": (lambda t: f'"{t}"', ("double quotes", "send what is between them")),
    "single quotes": (lambda t: f"'{t}'", ("single quotes", "send what is between them")),
    "backticks": (lambda t: f"`{t}`", ("backticks", "between them")),
    "Bearer": (lambda t: f"Bearer {t}", ("'Bearer '", "without 'Bearer '")),
    "bearer, lower case": (lambda t: f"bearer  {t}", ("'Bearer '",)),
    "Authorization header": (lambda t: f"Authorization: Bearer {t}", ("HTTP header line",)),
    # Parameters' values URL-encoded, as form encoders write them (a bare token is unchanged).
    "signature=": (
        lambda t: f"signature={quote(t, safe='')}",
        ('parameter "signature"', "only its value"),
    ),
    "form body": (lambda t: f"mn=123&token={quote(t, safe='')}&role=1", ('parameter "token"',)),
    "query string": (lambda t: f"?jwt={quote(t, safe='')}", ('parameter "jwt"',)),
    "URL": (
        lambda t: f"https://example.com/join?signature={quote(t, safe='')}",
        ("in a URL", '"signature"'),
    ),
    "JSON member": (
        lambda t: f'"signature": {json.dumps(t)}',
        ('JSON member "signature"', "only its value"),
    ),
    "JSON member, comma": (lambda t: f'"sdkJWT":{json.dumps(t)},', ('JSON member "sdkJWT"',)),
    "JSON object": (
        lambda t: json.dumps({"signature": t, "sdkKey": MEETING_KEY}),
        ('"signature" field', "JSON object"),
    ),
    "JSON object, other name": (
        lambda t: json.dumps({"ok": True, "result": t}),
        ('"result" field',),
    ),
    # A bare token has nothing to URL-encode; a JSON string of it does (%22).
    "URL-encoded": (lambda t: quote(f'"{t}"', safe=""), ("URL-encoded", "%22", "double quotes")),
    "stray quote and comma": (lambda t: f'{t}",', ("quote or comma",)),
}


@pytest.fixture
def token(meeting_app: App) -> str:
    return encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)


@pytest.mark.parametrize("name", WRAPPERS)
def test_each_wrapper_is_named_and_the_token_inside_is_read(
    meeting_app: App, token: str, name: str
) -> None:
    wrap, words = WRAPPERS[name]
    d = diagnose(wrap(token), [meeting_app], NOW)
    assert codes(d) <= {"TOKEN_WRAPPED"} and d.problems, d.problems
    first = d.problems[0]
    assert first.code == ProblemCode.TOKEN_WRAPPED and first.message.endswith(AS_SENT)
    for word in words:
        assert word in " ".join(p.message for p in d.problems), (word, d.problems)
    # The token inside, diagnosed: its app, kind and signature, as if it had been sent bare.
    assert d.app == meeting_app and d.kind == "meeting_web"
    assert d.signature == SignatureCheck.MATCHED and d.claims == meeting_claims(MEETING_KEY, NOW)
    assert all(token not in p.message and token.split(".")[2] not in p.message for p in d.problems)
    assert_no_secret(d, meeting_app)


def test_wrappers_inside_wrappers_are_named_outermost_first(meeting_app: App, token: str) -> None:
    # An Authorization value, stored as a JSON string, pasted with its quotes and a newline.
    pasted = json.dumps(f" Bearer {token}\n")
    d = diagnose(pasted, [meeting_app], NOW)
    messages = [only_wrapped.message for only_wrapped in d.problems]
    assert codes(d) == {"TOKEN_WRAPPED"} and len(messages) == 2
    assert "double quotes" in messages[0] and "white space" in messages[0]
    assert messages[0].endswith(AS_SENT)
    assert "'Bearer '" in messages[1] and not messages[1].endswith(AS_SENT)
    assert d.valid is False and d.app == meeting_app


def test_the_token_inside_is_fully_diagnosed(meeting_app: App) -> None:
    # Expired and signed with the secret base64-decoded, inside quotes: all three are said.
    expired = meeting_claims(MEETING_KEY, NOW - 7201)
    inner = raw_token(HS256, expired, b"not the secret of this app at all, no")
    d = diagnose(f"Bearer {inner}", [meeting_app], NOW)
    assert codes(d) == {"TOKEN_WRAPPED", "BAD_SIGNATURE", "EXPIRED"}
    assert d.signature == SignatureCheck.MISMATCHED


def test_a_url_encoded_padded_token_names_both(meeting_app: App) -> None:
    # PHP's urlencode(base64_encode(...)) style: '=' padding sent as %3D.
    claims = meeting_claims(MEETING_KEY, NOW)
    padded = raw_token(HS256, claims, meeting_app.secret).split(".")
    padded[2] += "="
    d = diagnose(".".join(padded).replace("=", "%3D"), [meeting_app], NOW)
    assert codes(d) == {"TOKEN_WRAPPED", "MALFORMED"}
    assert "%3D" in only(d, "TOKEN_WRAPPED").message
    assert "padding" in only(d, "MALFORMED").message


def test_white_space_outside_stays_malformed_and_inside_is_named(
    meeting_app: App, token: str
) -> None:
    d = diagnose(f'\n  "  {token}\n"  ', [meeting_app], NOW)
    assert [p.code for p in d.problems] == ["MALFORMED", "TOKEN_WRAPPED"]
    assert "white space" in d.problems[0].message and "white space" in d.problems[1].message


@pytest.mark.parametrize(
    "text",
    [
        # Padding before a dot looks like name=value; it is a bare (if malformed) token.
        b64url(json.dumps(HS256).encode()) + "=.eyJzZGtLZXkiOiJrIn0.c2ln",
        b64url(json.dumps(HS256).encode()) + "==.eyJzZGtLZXkiOiJrIn0.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.eyJzZGtLZXkiOiJrIn0.c2lnbmF0dXJl=",
        "role=0&mn=94843468909",  # parameters, none of them a token
        '{"error": "forbidden"}',
        "plain words",
    ],
)
def test_what_is_not_wrapped_is_not_called_wrapped(meeting_app: App, text: str) -> None:
    assert "TOKEN_WRAPPED" not in codes(diagnose(text, [meeting_app], NOW))


def test_a_wrapper_name_that_is_the_secret_is_hidden(meeting_app: App, token: str) -> None:
    secret = meeting_app.secret.decode()
    d = diagnose(json.dumps({secret: token}), [meeting_app], NOW)
    assert codes(d) == {"TOKEN_WRAPPED"}
    assert "<the secret of app 'meeting'>" in d.problems[0].message
    assert_no_secret(d, meeting_app)


# Not stacked: a stray quote is a copy cut a character off, of the outermost text only; a field
# not named as tokens are is taken for one when its value has a JWT's two dots, as a bare one does.
_ALONE = {"stray quote and comma", "JSON object, other name"}
_LAYERS = st.lists(st.sampled_from(sorted(set(WRAPPERS) - _ALONE)), min_size=1, max_size=3)


@settings(max_examples=500, deadline=None)
@given(layers=_LAYERS)
def test_any_stack_of_wrappers_leaves_the_token_inside_valid(
    meeting_app: App, layers: list[str]
) -> None:
    token = encode(meeting_claims(MEETING_KEY, NOW), meeting_app.secret)
    text = token
    for name in layers:
        text = WRAPPERS[name][0](text)
    d = diagnose(text, [meeting_app], NOW)
    # Every problem is a wrapper (at most six are taken off); the token inside is valid.
    assert codes(d) <= {"TOKEN_WRAPPED"} and d.problems
    if len(d.problems) < 6:
        assert d.app == meeting_app and d.signature == SignatureCheck.MATCHED, (text, d.problems)
    assert all(token not in p.message for p in d.problems)
