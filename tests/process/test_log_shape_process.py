"""A real `sdksign serve` on loopback, sent refused Signs with a live token in the fields a
caller writes (its dots as ",", "%2E" or "\\u002e", its segments put apart by spaces or
glued): its log holds neither the token nor its payload nor its signature, by the soak's own
scan (bench/reliability/logscan.py)."""

from __future__ import annotations

import time

import grpc
import pytest

from bench.reliability.logscan import token_pieces, whole_tokens
from harness.server import ServerProcess
from sdksign.server.zoom.jwt import encode
from sdksign.server.zoom.rules import placeholder
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import MEETING_KEY, wait_until
from tests.helpers import meeting_claims


def written(token: str) -> list[str]:
    header, payload, signature = token.split(".")
    return [
        token.replace(".", ","),
        token.replace(".", "%2E"),
        token.replace(".", "\\u002e"),
        f"{header}.{payload} {signature}",
        f"{payload} {signature}",
        header + payload + signature,
        token + token,
    ]


def requests(value: str) -> list[pb.SignRequest]:
    """A refused Sign with `value` as each of the fields a refusal logs: meeting number, app,
    and the Zoom user of a host start."""
    host = pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_HOST)
    return [
        pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=value, role=pb.ROLE_HOST)),
        pb.SignRequest(app=value, meeting=host),
        pb.SignRequest(meeting=host, start_as=value),
    ]


def test_a_refused_signs_token_is_in_no_log_line(
    server_process: ServerProcess, meeting_secret: str
) -> None:
    server = server_process
    token = encode(meeting_claims(MEETING_KEY, int(time.time()), role=1), meeting_secret.encode())
    values = written(token)
    sent = [(value, request) for value in values for request in requests(value)]
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        for _, request in sent:
            with pytest.raises(grpc.RpcError) as refused:
                stub.Sign(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert token.split(".")[2] not in (refused.value.details() or "")
    wait_until(lambda: server.rpc_codes()["INVALID_ARGUMENT"] == len(sent), server.logs)
    lines = server.events("rpc")
    # Each field the caller wrote is its length and fingerprint on the line.
    shown = [
        (line["meeting"], line["app"], line.get("start_as"))
        for line in lines
        if line["code"] == "INVALID_ARGUMENT"
    ]
    for (value, _), fields in zip(sent, shown, strict=True):
        assert placeholder(value) in fields
    logs = server.logs()
    _, payload, signature = token.split(".")
    assert payload not in logs and signature not in logs
    for line in logs.splitlines():
        assert list(whole_tokens(line)) == [] and list(token_pieces(line)) == [], line
