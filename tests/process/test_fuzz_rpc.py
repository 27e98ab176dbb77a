"""Random tokens through the real server: every answer is OK or INVALID_ARGUMENT, and parses."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdksign.client import Client, SdkSignError
from sdksign.server.zoom.jwt import fingerprint
from tests.conftest import MEETING_KEY, ServerProcess, start_server_process, wait_until
from tests.helpers import CLAIM_NAMES, HS256, b64url, raw_token

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
claim_names = st.sampled_from(CLAIM_NAMES)
payloads = st.dictionaries(claim_names | st.text(max_size=8), json_values, max_size=10)
headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "none", "HS512", "RS256", ""]) | json_values}
) | st.just(HS256)
tokens = st.one_of(
    st.text(min_size=1, max_size=300),
    st.builds(lambda h, p, s: raw_token(h, p, s), headers, payloads, st.sampled_from([None, b"x"])),
    st.builds(
        lambda parts: ".".join(b64url(p.encode()) for p in parts),
        st.lists(st.text(max_size=40), min_size=1, max_size=5),
    ),
    st.builds(lambda p: raw_token(HS256, {"sdkKey": MEETING_KEY, **p}, b"x"), payloads),
)


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, meeting_secret: str
) -> Iterator[ServerProcess]:
    """One server for the whole module, so the last test sees what the fuzzing left."""
    env = {"ZOOM_MEETING_SDK_KEY": MEETING_KEY, "ZOOM_MEETING_SDK_SECRET": meeting_secret}
    server = start_server_process(tmp_path_factory.mktemp("fuzz"), env)
    yield server
    server.process.terminate()
    server.process.wait(timeout=15)


@settings(max_examples=250, deadline=None)
@given(token=tokens, expected=st.none() | st.text(max_size=12))
def test_verify_answers_anything(fuzzed: ServerProcess, token: str, expected: str | None) -> None:
    with Client(fuzzed.target, retries=0) as client:
        try:
            result = client.verify(token, expected_meeting_number=expected)
        except SdkSignError as refused:
            assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, refused
            assert refused.violations
            return
    assert result.valid == (not result.problems)
    assert all(p.code != "UNSPECIFIED" and p.message for p in result.problems)
    json.dumps(result.claims)  # plain JSON came back


def test_the_server_survived_the_fuzzing(fuzzed: ServerProcess) -> None:
    token = raw_token(HS256, {"a": 1}, b"x")
    with Client(fuzzed.target) as client:
        assert client.verify(token).valid is False
    assert fuzzed.process.poll() is None
    # This call's line comes once its answer has left, after those of the fuzzing's calls
    # (each answered before the next was made): then no line may say INTERNAL.
    wait_until(
        lambda: any(line.get("token_fp") == fingerprint(token) for line in fuzzed.events("rpc")),
        fuzzed.logs,
    )
    assert '"code":"INTERNAL"' not in fuzzed.logs()
