"""Rate limits behind the real Envoy (gateway/envoy.yaml): a caller refused because the rate
limit store cannot be reached ([rate_limits] on_store_error = "refuse") is answered once, not
retried by the gateway (whose retry policy retries UNAVAILABLE), with HTTP 429, not a 503 that
would count toward ejecting the replica."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import pytest

from sdksign.server.access.ratestore import RETRY_INTERVAL, STORE_UNAVAILABLE
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import RedisServer, ServerProcess, log_lines, redis_password
from tests.gateway.conftest import serve_gateway
from tests.gateway.test_routes import GRPC_WEB, SIGN_JSON, frame

pytestmark = pytest.mark.usefixtures("gateway_files")

SECRET = "gateway-rate-secret-0123456789abcdef"


def refusing_config(redis: RedisServer) -> str:
    """One meeting app; anonymous callers rate-limited in `redis`, refused without it."""
    return (
        '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "GatewayKey0123"\n'
        'secret_env = "S"\n[anonymous]\nroles = ["participant"]\nrate = 100\n'
        f'[rate_limits]\nstore = "{redis.url}"\npassword_env = "REDIS_PASSWORD"\n'
        'timeout = 0.5\non_store_error = "refuse"\n'
    )


def logged(server: ServerProcess) -> Counter[tuple[object, object]]:
    """The server's calls so far, by method and status code."""
    return Counter(
        (line["method"], line["code"])
        for line in log_lines(server.logs())
        if line["event"] == "rpc"
    )


def test_a_call_refused_without_the_store_reaches_the_server_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    (tmp_path / "sdksign.toml").write_text(refusing_config(redis_server))
    env = {"S": SECRET, "REDIS_PASSWORD": redis_password(redis_server)}
    redis_server.kill()
    args = ["--config", str(tmp_path / "sdksign.toml")]
    for gateway in serve_gateway(tmp_path, env, args):
        for _ in range(3):
            status, headers, body = gateway.request(
                "POST", "/", SIGN_JSON, {"content-type": "application/json"}
            )
            # Zoom's sample's error shape, and when to try again as HTTP says it.
            assert (status, json.loads(body)) == (
                429,
                {"errors": [{"property": "$request", "reason": STORE_UNAVAILABLE}]},
            )
            assert headers["retry-after"] == str(math.ceil(RETRY_INTERVAL))
        sign = pb.SignRequest(
            meeting=pb.MeetingClaims(meeting_number="1", role=pb.ROLE_PARTICIPANT)
        )
        _, headers, _ = gateway.request(
            "POST", "/sdksign.v1.SignatureService/Sign", frame(sign.SerializeToString()), GRPC_WEB
        )
        assert headers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
        # Then a call refused before any rate limit (role 7): once the server has logged it,
        # it has logged every attempt before it.
        sentinel = json.dumps({"meetingNumber": "1", "role": 7}).encode()
        assert (
            gateway.request("POST", "/", sentinel, {"content-type": "application/json"})[0] == 400
        )
        deadline = time.monotonic() + 10
        while "got 7" not in gateway.server.logs():
            assert time.monotonic() < deadline, gateway.server.logs()
            time.sleep(0.05)
        calls = +Counter(
            {key: n for key, n in logged(gateway.server).items() if key[1] != "INVALID_ARGUMENT"}
        )  # the probes' and the last call's left out
        assert calls == {
            ("/sdksign.v1.ZoomSampleService/Sign", "RESOURCE_EXHAUSTED"): 3,
            ("/sdksign.v1.SignatureService/Sign", "RESOURCE_EXHAUSTED"): 1,
        }
        assert redis_password(redis_server) not in gateway.server.logs()
