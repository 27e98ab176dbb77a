"""Verify's answer: the header and claims as JSON text in the token's own key order (the Structs
keep none), `valid` always on the wire, the signature check; secrets hidden in all of them."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf import json_format

from sdksign.client import AsyncClient
from sdksign.server import App, diagnose
from sdksign.server.runtime.service import verify_response
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import meeting_claims, raw_token, video_claims
from tests.unit.diagnose_helpers import NOW


def shuffled(value: dict[str, Any], seed: int) -> dict[str, Any]:
    items = list(value.items())
    random.Random(seed).shuffle(items)
    return dict(items)


@pytest.mark.parametrize("seed", range(8))
def test_header_and_claims_keep_the_tokens_key_order(
    meeting_app: App, video_app: App, seed: int
) -> None:
    header = shuffled({"alg": "HS256", "typ": "JWT", "kid": "k1"}, seed)
    for claims, app in (
        (shuffled(meeting_claims(MEETING_KEY, NOW, video_webrtc_mode=1), seed), meeting_app),
        (shuffled(video_claims(VIDEO_KEY, NOW, geo_regions="US,DE"), seed), video_app),
    ):
        response = verify_response(diagnose(raw_token(header, claims, app.secret), [app], NOW))
        assert response.valid, response.problems
        assert list(json.loads(response.header_json)) == list(header)
        assert list(json.loads(response.claims_json)) == list(claims)
        # Same values as the Structs, which hold numbers as doubles.
        assert json.loads(response.claims_json) == claims
        assert json_format.MessageToDict(response.claims) == json.loads(response.claims_json)


def test_nested_values_keep_their_order_and_are_cut_as_the_struct_is(meeting_app: App) -> None:
    nested: object = {"z": 1, "a": [3, {"y": 2, "b": None}]}
    for _ in range(40):
        nested = [nested]
    claims = {"extra": {"zz": nested, "aa": "x"}, **meeting_claims(MEETING_KEY, NOW)}
    response = verify_response(
        diagnose(raw_token({"alg": "HS256"}, claims, meeting_app.secret), [meeting_app], NOW)
    )
    text = json.loads(response.claims_json)
    assert list(text) == list(claims) and list(text["extra"]) == ["zz", "aa"]
    assert text == json_format.MessageToDict(response.claims)  # cut at the same depth
    assert "(nested too deeply to show)" in response.claims_json


def test_no_header_or_claims_no_json(meeting_app: App) -> None:
    response = verify_response(diagnose("not a token", [meeting_app], NOW))
    assert response.header_json == "" and response.claims_json == ""
    assert not response.HasField("claims") and not response.HasField("header")


def test_a_secret_in_the_claims_is_hidden_in_text_and_struct(meeting_app: App) -> None:
    secret = meeting_app.secret.decode()
    claims = meeting_claims(secret, NOW, note=f"it is {secret}!")  # key and secret swapped
    response = verify_response(
        diagnose(raw_token({"alg": "HS256"}, claims, meeting_app.secret), [meeting_app], NOW)
    )
    assert not response.valid
    for text in (
        response.claims_json,
        json.dumps(json_format.MessageToDict(response.claims)),
        *(p.message for p in response.problems),
    ):
        assert secret not in text and secret[:20] not in text
    assert json.loads(response.claims_json)["sdkKey"] == "<the secret of app 'meeting'>"
    assert list(json.loads(response.claims_json)) == list(claims)


def test_valid_false_is_on_the_wire(meeting_app: App) -> None:
    invalid = verify_response(diagnose("x", [meeting_app], NOW))
    assert invalid.HasField("valid") and invalid.valid is False
    # Field 1, varint 0: what a plain `bool valid = 1` never writes, and reads the same way.
    assert invalid.SerializeToString().startswith(b"\x08\x00")
    assert '"valid": false' in json_format.MessageToJson(invalid)


def test_the_signature_check_is_in_the_answer(meeting_app: App, video_app: App) -> None:
    token = raw_token({"alg": "HS256"}, meeting_claims(MEETING_KEY, NOW), video_app.secret)
    response = verify_response(diagnose(token, [meeting_app, video_app], NOW))
    assert response.signature == pb.SIGNATURE_CHECK_MATCHED_OTHER_APP
    assert response.secret_fingerprint == video_app.secret_fingerprints[0]
    bad = raw_token({"alg": "HS256"}, meeting_claims(MEETING_KEY, NOW), b"q" * 40)
    response = verify_response(diagnose(bad, [meeting_app, video_app], NOW))
    assert response.signature == pb.SIGNATURE_CHECK_MISMATCHED
    assert list(response.tried_secret_fingerprints) == [
        *meeting_app.secret_fingerprints,
        *video_app.secret_fingerprints,
    ]


@pytest.fixture
async def client(target: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(target) as client:
        yield client


async def test_the_client_gives_the_tokens_order_and_the_signature(
    client: AsyncClient, meeting_app: App
) -> None:
    claims = shuffled(meeting_claims(MEETING_KEY, NOW), 3)
    header = {"typ": "JWT", "alg": "HS256"}
    result = await client.verify(raw_token(header, claims, meeting_app.secret))
    assert result.claims is not None and list(result.claims) == list(claims)
    assert result.header is not None and list(result.header) == ["typ", "alg"]
    assert result.signature == "MATCHED"
    assert result.secret_fingerprint == meeting_app.secret_fingerprints[0]
    assert f"made with secret {result.secret_fingerprint} of app 'meeting'" in result.explain()
    wrong = await client.verify(raw_token(header, claims, b"w" * 40))
    assert wrong.signature == "MISMATCHED" and wrong.tried_secret_fingerprints
    assert "none of the secrets tried" in wrong.explain()
