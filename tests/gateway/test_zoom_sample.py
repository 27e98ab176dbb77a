"""POST / through the real Envoy answers as Zoom's sample auth endpoint (v3.12.0) does: every
row of docs/gateway.md's table, on one connection that stays open, each answer JSON.

The table's "Zoom's sample" column was checked against the sample itself (its src run with
Node on loopback, outside this repository); this test holds our column, and holds that the
two agree wherever the table gives no reason why they differ.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from harness.sample_table import Case, answer_of, cases, expected_claims, seen_claims
from tests.conftest import wait_until
from tests.gateway.conftest import Gateway, serve_gateway

METHOD = "/sdksign.v1.ZoomSampleService/Sign"
CASES = cases()


def test_the_table_is_read_and_covers_each_rule() -> None:
    assert len(CASES) >= 30
    answers = " ".join(case.ours for case in CASES)
    for rule in ("$schema", "role", "expirationSeconds", "videoWebRtcMode", "meetingNumber"):
        assert f" {rule}" in answers
    assert sum(case.ours == "200" for case in CASES) >= 10
    # Where we answer otherwise than the sample, the table says why.
    for case in CASES:
        assert (case.sample == case.ours) != bool(case.why), case


def answered(case: Case, status: int, headers: dict[str, str], data: bytes) -> list[str]:
    """What is wrong with one answer (nothing: [])."""
    wrong = []
    if headers.get("content-type") != "application/json":
        wrong.append(f"content-type {headers.get('content-type')}")
    if headers.get("connection") == "close":
        wrong.append("connection closed")
    answer = json.loads(data)
    if status == 200:
        if set(answer) != {"signature", "sdkKey"}:
            wrong.append(f"answer keys {sorted(answer)}")
        if (seen := seen_claims(answer["signature"])) != expected_claims(case.token):
            wrong.append(f"claims {seen}")
    else:
        errors = answer["errors"]
        assert all(set(error) == {"property", "reason"} and error["reason"] for error in errors)
    if (got := answer_of(status, data)) != case.ours:
        wrong.append(f"answered {got}")
    return wrong


def test_every_row_of_the_table_through_the_gateway(gateway: Gateway) -> None:
    before = sum(gateway.server.rpc_codes(METHOD).values())
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=15)
    wrong = {}
    try:
        for case in CASES:
            connection.request(
                "POST", "/", case.body.encode(), {"content-type": "application/json"}
            )
            response = connection.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if problems := answered(case, response.status, headers, response.read()):
                wrong[case.body] = problems
        # One connection carried every answer: the 400s did not close it.
        assert connection.sock is not None
    finally:
        connection.close()
    assert wrong == {}
    expected = {
        "OK": sum(case.ours == "200" for case in CASES),
        "INVALID_ARGUMENT": sum(case.ours.startswith("400") for case in CASES),
    }
    # Each call is logged once its answer has left: as many lines first, then their codes.
    calls = sum(expected.values())
    logged = lambda: gateway.server.rpc_codes(METHOD, after=before)  # noqa: E731
    wait_until(lambda: logged().total() >= calls, gateway.server.logs)
    assert logged() == expected


def test_another_content_type_answers_415_in_the_sample_s_shape(gateway: Gateway) -> None:
    before = sum(gateway.server.rpc_codes(METHOD).values())
    status, headers, data = gateway.request(
        "POST", "/", b'{"meetingNumber":"123456789","role":1}', {"content-type": "text/plain"}
    )
    assert status == 415
    assert headers["content-type"] == "application/json"
    assert headers.get("connection") != "close"
    assert json.loads(data)["errors"][0]["property"] == "$body"
    # Then a call that does reach the server (role 7: INVALID_ARGUMENT): once it is logged,
    # anything the 415 had made the server log would be too, and there is nothing else.
    sentinel = b'{"meetingNumber":"123456789","role":7}'
    assert gateway.request("POST", "/", sentinel, {"content-type": "application/json"})[0] == 400
    wait_until(lambda: gateway.server.rpc_codes(METHOD, after=before), gateway.server.logs)
    assert gateway.server.rpc_codes(METHOD, after=before) == {"INVALID_ARGUMENT": 1}


def test_a_query_string_is_ignored_as_the_sample_ignores_it(gateway: Gateway) -> None:
    status, headers, data = gateway.request(
        "POST", "/?userName=ann&lang=en", b'{"role":0}', {"content-type": "application/json"}
    )
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(data)["errors"][0]["property"] == "$schema"
    status, _, data = gateway.request(
        "POST", "/?userName=ann", b"{}", {"content-type": "application/json"}
    )
    assert status == 200 and set(json.loads(data)) == {"signature", "sdkKey"}


@pytest.mark.parametrize("size", [65_001, 2_000_000])
def test_a_body_over_the_limit_answers_413_in_the_sample_s_shape(
    gateway: Gateway, size: int
) -> None:
    body = b'{"meetingNumber":"1","role":0,"pad":"' + b"a" * size + b'"}'
    status, headers, data = gateway.request("POST", "/", body, {"content-type": "application/json"})
    assert (status, headers["content-type"]) == (413, "application/json")
    [error] = json.loads(data)["errors"]
    assert error["property"] == "$body" and error["reason"]
    # The limit lets through what the server takes: 64,000 bytes sign.
    fits = b'{"meetingNumber":"1","role":0,"pad":"' + b"a" * 64_000 + b'"}'
    assert gateway.request("POST", "/", fits, {"content-type": "application/json"})[0] == 200


@pytest.mark.parametrize(
    ("rule", "body", "status", "field"),
    [
        ('roles = ["participant"]\n', {"meetingNumber": "123", "role": 1}, 401, "role"),
        (
            'max_ttl = "1h"\n',
            {"meetingNumber": "123", "role": 0, "expirationSeconds": 7200},
            401,
            "expirationSeconds",
        ),
    ],
)
def test_refusals_are_json_naming_the_rule_s_field(
    tmp_path: Path, rule: str, body: object, status: int, field: str
) -> None:
    (tmp_path / "sdksign.toml").write_text(
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "GatewayKey0123"\n'
        f'secret_env = "S"\n[anonymous]\n{rule}'
    )
    env = {"S": "gateway-test-secret-0123456789abcdef"}
    for gateway in serve_gateway(tmp_path, env, ["--config", str(tmp_path / "sdksign.toml")]):
        got, headers, data = gateway.request(
            "POST", "/", json.dumps(body).encode(), {"content-type": "application/json"}
        )
        assert (got, headers["content-type"]) == (status, "application/json")
        [error] = json.loads(data)["errors"]
        assert error["property"] == field
        assert error["reason"].startswith("anonymous callers may")
