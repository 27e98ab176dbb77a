"""Role-scoped access through a real TLS server built from examples/production.toml.

Certificates come from a throwaway CA made here; callers prove who they are with
bearer tokens or client certificates, and every rule is shown allowed and denied.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sdksign.client import AsyncClient, Role
from sdksign.server import App, Config, load_config
from sdksign.server.observe.log import configure_logging
from sdksign.server.runtime.serve import add_port, build_server
from sdksign.server.zoom.jwt import fingerprint
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.certs import Authority, Issued
from tests.conftest import ROOT, rpc_lines
from tests.helpers import HS256, b64url, raw_token

SCHEDULER_TOKEN = secrets.token_urlsafe(24)
CLASSROOM_TOKEN = secrets.token_urlsafe(24)
ROOMS_TOKEN = secrets.token_urlsafe(24)
MEETING_SECRET = secrets.token_urlsafe(32)
VIDEO_SECRET = secrets.token_urlsafe(32)
SCHEDULER_MEETING = "94841234567"
# The placeholder hashes of examples/production.toml -> this run's tokens.
EXAMPLE_HASHES = {
    "8f40e201fb42ef15350e408d21c92642e918cc538feaf4044709c2a3ecdd5d6d": SCHEDULER_TOKEN,
    "00840ca99e10b329f71b741d02092be774e25da1870d0f3cb9de99b794885880": CLASSROOM_TOKEN,
    "fe03433b51424512681950ea0f4018c65e29988417d535d03298a584d6b02285": ROOMS_TOKEN,
}


@dataclass
class Deployment:
    """An example configuration served with TLS on loopback, and its log."""

    port: int
    authority: Authority
    config: Config
    logs: io.BytesIO

    def credentials(self, cert: Issued | None = None) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.authority.pem,
            private_key=cert.key if cert else None,
            certificate_chain=cert.cert if cert else None,
        )

    def channel(self, cert: Issued | None = None) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(f"localhost:{self.port}", self.credentials(cert))

    def client(self, cert: Issued | None = None, bearer: str | None = None) -> AsyncClient:
        return AsyncClient(
            f"localhost:{self.port}",
            credentials=self.credentials(cert),
            bearer_token=bearer,
            retries=0,
        )


def example_config(tmp_path: Path, authority: Authority, example: str, **replace: str) -> Path:
    """An example from examples/ with this test's files, tokens and loopback address."""
    server = authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",), server=True)
    (tmp_path / "server.crt").write_bytes(server.cert)
    (tmp_path / "server.key").write_bytes(server.key)
    (tmp_path / "ca.crt").write_bytes(authority.pem)
    (tmp_path / "video-secret").write_text(VIDEO_SECRET)
    text = (ROOT / "examples" / example).read_text()
    substitutions = {
        '"0.0.0.0:50051"': '"127.0.0.1:0"',
        "/etc/sdksign/tls/server.crt": str(tmp_path / "server.crt"),
        "/etc/sdksign/tls/server.key": str(tmp_path / "server.key"),
        "/run/secrets/zoom-video-sdk-secret": str(tmp_path / "video-secret"),
        **replace,
    }
    for old, new in substitutions.items():
        assert old in text, old
        text = text.replace(old, new)
    text = text.replace("/etc/sdksign/tls/clients-ca.crt", str(tmp_path / "ca.crt"))
    for placeholder, token in EXAMPLE_HASHES.items():
        text = text.replace(placeholder, hashlib.sha256(token.encode()).hexdigest())
    path = tmp_path / example
    path.write_text(text)
    return path


async def serve_example(tmp_path: Path, example: str, **replace: str) -> AsyncIterator[Deployment]:
    authority = Authority()
    path = example_config(tmp_path, authority, example, **replace)
    config = load_config(path, {"ZOOM_MEETING_SDK_SECRET": MEETING_SECRET})
    logs = io.BytesIO()
    configure_logging("info", logs)
    server, _ = build_server(config)
    port = add_port(server, "127.0.0.1:0", config.tls)
    await server.start()
    try:
        yield Deployment(port, authority, config, logs)
    finally:
        await server.stop(None)
        structlog.reset_defaults()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async for served in serve_example(tmp_path, "production.toml"):
        yield served


@pytest.fixture
async def mtls(tmp_path: Path) -> AsyncIterator[Deployment]:
    async for served in serve_example(tmp_path, "production-mtls.toml"):
        yield served


def sign_meeting(
    number: str = SCHEDULER_MEETING, role: pb.Role = pb.ROLE_HOST, ttl: int = 0
) -> pb.SignRequest:
    request = pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=number, role=role))
    if ttl:
        request.ttl.seconds = ttl
    return request


async def refused(
    deployment: Deployment,
    request: object,
    cert: Issued | None = None,
    token: str | None = None,
    method: str = "Sign",
) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """Call and expect a refusal: its code, its message and its ErrorInfo (reason, metadata)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with deployment.channel(cert) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await getattr(stub, method)(request, metadata=metadata, timeout=10)
    error = raised.value
    status = rpc_status.from_call(error)
    info: dict[str, str] = {}
    for detail in status.details if status is not None else ():
        unpacked = error_details_pb2.ErrorInfo()
        if detail.Unpack(unpacked):
            info = {"reason": unpacked.reason, **unpacked.metadata}
    return error.code(), error.details() or "", info


# --- the issue's "done when", with the production example -------------------------------


async def test_no_credentials_is_unauthenticated(deployment: Deployment) -> None:
    for method, request in (
        ("Sign", sign_meeting(role=pb.ROLE_PARTICIPANT)),
        ("Verify", pb.VerifyRequest(token="x.y.z")),
    ):
        code, message, _ = await refused(deployment, request, method=method)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "credentials are required" in message


async def test_participant_only_caller_asking_for_host_is_denied(deployment: Deployment) -> None:
    code, message, info = await refused(deployment, sign_meeting(), token=CLASSROOM_TOKEN)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "may not mint host tokens" in message and "classroom" in message
    assert info == {"reason": "ROLE_NOT_ALLOWED", "rule": "role"}


async def test_allowed_callers_get_their_tokens(deployment: Deployment) -> None:
    async with deployment.client(bearer=CLASSROOM_TOKEN) as client:
        student = await client.sign_meeting("123456789", Role.PARTICIPANT)
    async with deployment.client(bearer=SCHEDULER_TOKEN) as client:
        host = await client.sign_meeting(SCHEDULER_MEETING, Role.HOST)
        for signed in (student, host):
            verified = await client.verify(signed.token)
            assert verified.valid, verified.explain()
    async with deployment.client(bearer=ROOMS_TOKEN) as client:
        video = await client.sign_video("room-7", Role.HOST)
    assert video.app == "video"


# --- every rule, denied -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (sign_meeting(number="123456789"), "meeting"),
        (sign_meeting(ttl=3 * 3600), "ttl"),
        (pb.SignRequest(video=pb.VideoClaims(session_name="room-1", role=pb.ROLE_HOST)), "app"),
    ],
    ids=["meeting", "ttl", "app"],
)
async def test_scheduler_outside_its_rule_is_denied_naming_it(
    deployment: Deployment, request_: pb.SignRequest, rule: str
) -> None:
    code, message, info = await refused(deployment, request_, token=SCHEDULER_TOKEN)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert info["rule"] == rule
    assert "scheduler" in message


async def test_session_rule(deployment: Deployment) -> None:
    lobby = pb.SignRequest(video=pb.VideoClaims(session_name="lobby", role=pb.ROLE_HOST))
    code, _, info = await refused(deployment, lobby, token=ROOMS_TOKEN)
    assert (code, info["rule"]) == (grpc.StatusCode.PERMISSION_DENIED, "session")


async def test_unknown_tokens_are_refused_without_a_hint(deployment: Deployment) -> None:
    answers = [
        await refused(deployment, sign_meeting(), token=token)
        for token in ("not-a-known-token", SCHEDULER_TOKEN[:-1], SCHEDULER_TOKEN + "x")
    ]
    assert {(code, message) for code, message, _ in answers} == {
        (grpc.StatusCode.UNAUTHENTICATED, "the credentials are not valid for this service")
    }


async def test_rate_limit_answers_resource_exhausted_with_retry_info(tmp_path: Path) -> None:
    async for deployment in serve_example(
        tmp_path, "production.toml", **{"rate = 50 ": "rate = 1 ", "burst = 100": "burst = 2"}
    ):
        async with deployment.client(bearer=SCHEDULER_TOKEN) as client:
            for _ in range(2):
                await client.sign_meeting(SCHEDULER_MEETING, Role.HOST)
        async with deployment.channel() as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            metadata = (("authorization", f"Bearer {SCHEDULER_TOKEN}"),)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Sign(sign_meeting(), metadata=metadata, timeout=10)
            # Another caller has its own allowance.
            assert (
                await stub.Sign(
                    sign_meeting(number="1", role=pb.ROLE_PARTICIPANT),
                    metadata=(("authorization", f"Bearer {CLASSROOM_TOKEN}"),),
                    timeout=10,
                )
            ).token
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(raised.value)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 1.0
    assert "rate limit of 1 requests/s" in (raised.value.details() or "")


async def test_logs_name_callers_and_decisions_but_hold_no_secret_or_token(
    deployment: Deployment,
) -> None:
    await refused(deployment, sign_meeting(), token=CLASSROOM_TOKEN)
    await refused(deployment, sign_meeting(), token="wrong-" + SCHEDULER_TOKEN)
    async with deployment.client(bearer=SCHEDULER_TOKEN) as client:
        signed = await client.sign_meeting(SCHEDULER_MEETING, Role.HOST)
        await client.verify(signed.token)
    # A call is logged once its answer has left: all four lines first, then the look for
    # what must not be in them.
    await rpc_lines(deployment.logs, count=4)
    text = deployment.logs.getvalue().decode()
    for secret in (SCHEDULER_TOKEN, CLASSROOM_TOKEN, MEETING_SECRET, VIDEO_SECRET, signed.token):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    rpcs = [line for line in lines if line.get("event") == "rpc"]
    decisions = [(line.get("caller"), line["code"], line.get("rule", "")) for line in rpcs]
    assert decisions == [
        ("classroom", "PERMISSION_DENIED", "role"),
        (None, "UNAUTHENTICATED", "credentials"),
        ("scheduler", "OK", ""),
        ("scheduler", "OK", ""),
    ]
    sign = rpcs[2]
    assert (sign["meeting"], sign["role"], sign["ttl"], sign["app"]) == (
        SCHEDULER_MEETING,
        "host",
        7200,
        "meeting",
    )
    assert sign["token_fp"] == fingerprint(signed.token)
    assert "may not mint host tokens" in rpcs[0]["reason"]


# --- mutual TLS: the certificate names the caller -----------------------------------------


async def test_mtls_names_callers_by_uri_san_or_cn(mtls: Deployment) -> None:
    scheduler = mtls.authority.issue("ignored-cn", uris=("spiffe://corp/scheduler",))
    rooms = mtls.authority.issue("video-rooms.internal.corp")  # no URI SAN: its CN
    async with mtls.client(cert=scheduler) as client:
        host = await client.sign_meeting(SCHEDULER_MEETING, Role.HOST)
        assert (await client.verify(host.token)).valid
    async with mtls.client(cert=rooms) as client:
        assert (await client.sign_video("room-1", Role.HOST)).app == "video"


async def test_mtls_names_match_only_their_own_kind(mtls: Deployment) -> None:
    """Trusted certificates that spell a caller's identity in another kind of name: the
    adversarial run minted host tokens with a CN or DNS SAN of "spiffe://corp/scheduler"."""
    scheduler, rooms = "spiffe://corp/scheduler", "video-rooms.internal.corp"
    issue = mtls.authority.issue
    impostors = {
        "uri as cn": issue(scheduler),
        "uri as dns san": issue("x", dns=(scheduler,)),
        "uri as email san": issue("x", emails=(scheduler,)),
        "dns name as uri san": issue("x", uris=(rooms,)),
        "cn beside a uri san": issue(rooms, uris=("spiffe://corp/nobody",)),
        "cn beside a dns san": issue(rooms, dns=("nobody.corp",)),
    }
    for kind, cert in impostors.items():
        code, message, _ = await refused(mtls, sign_meeting(), cert=cert)
        assert (kind, code, message) == (
            kind,
            grpc.StatusCode.UNAUTHENTICATED,
            "the credentials are not valid for this service",
        )
    async with mtls.client(cert=issue("x", dns=(rooms,))) as client:  # its own kind: a DNS SAN
        assert (await client.sign_video("room-1", Role.HOST)).app == "video"


async def test_mtls_rules_apply_to_the_certificate_s_caller(mtls: Deployment) -> None:
    classroom = mtls.authority.issue("classroom", uris=("spiffe://corp/classroom",))
    code, _, info = await refused(mtls, sign_meeting(), cert=classroom)
    assert (code, info["rule"]) == (grpc.StatusCode.PERMISSION_DENIED, "role")
    code, _, info = await refused(mtls, pb.VerifyRequest(token="a.b.c"), classroom, method="Verify")
    assert (code, info["rule"]) == (grpc.StatusCode.PERMISSION_DENIED, "verify")


async def test_mtls_refuses_unknown_and_untrusted_certificates(mtls: Deployment) -> None:
    stranger = mtls.authority.issue("stranger", uris=("spiffe://corp/stranger",))
    code, message, _ = await refused(mtls, sign_meeting(), cert=stranger)
    assert (code, message) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "the credentials are not valid for this service",
    )
    # A certificate from a CA the server does not trust, or none at all, never
    # completes the TLS handshake.
    untrusted = Authority("another CA").issue("s", uris=("spiffe://corp/scheduler",))
    for cert in (untrusted, None):
        code, _, _ = await refused(mtls, sign_meeting(), cert=cert)
        assert code == grpc.StatusCode.UNAVAILABLE


# --- key rotation -----------------------------------------------------------------------

NEW_SECRET = secrets.token_urlsafe(32).encode()
OLD_SECRET = secrets.token_urlsafe(32).encode()
KEY = "RotatingMeetingKey0123"


@pytest.fixture
async def rotating() -> AsyncIterator[str]:
    app = App("meeting", "meeting", KEY, NEW_SECRET, previous_secrets=(OLD_SECRET,))
    server, _ = build_server(Config(apps=(app,), source="tests"))
    port = add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_rotation_signs_with_the_new_secret_and_verifies_old_and_new(rotating: str) -> None:
    now = __import__("time").time()
    claims = {
        "appKey": KEY,
        "sdkKey": KEY,
        "mn": "123456789",
        "role": 0,
        "iat": int(now) - 30,
        "exp": int(now) + 3600,
        "tokenExp": int(now) + 3600,
    }
    async with grpc.aio.insecure_channel(rotating) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        fresh = (await stub.Sign(sign_meeting(number="123456789", role=pb.ROLE_PARTICIPANT))).token
        answers = {
            "new": await stub.Verify(pb.VerifyRequest(token=fresh)),
            "old": await stub.Verify(pb.VerifyRequest(token=raw_token(HS256, claims, OLD_SECRET))),
            "other": await stub.Verify(pb.VerifyRequest(token=raw_token(HS256, claims, b"x" * 32))),
        }
    assert answers["new"].valid and answers["new"].secret_fingerprint == fingerprint(NEW_SECRET)
    assert answers["old"].valid and answers["old"].secret_fingerprint == fingerprint(OLD_SECRET)
    assert not answers["other"].valid and answers["other"].secret_fingerprint == ""
    for answer in answers.values():
        text = str(answer)
        assert NEW_SECRET.decode() not in text and OLD_SECRET.decode() not in text


# --- attack tokens never verify ------------------------------------------------------------


def attack_tokens(secret: bytes) -> dict[str, str]:
    import time

    now = int(time.time())
    claims = {
        "appKey": KEY,
        "sdkKey": KEY,
        "mn": "123456789",
        "role": 1,
        "iat": now - 30,
        "exp": now + 3600,
        "tokenExp": now + 3600,
    }
    body = b64url(json.dumps(claims).encode())
    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return {
        "alg none": f"{none_header}.{body}.",
        "alg none, signed": raw_token({"alg": "none", "typ": "JWT"}, claims, secret),
        "HS256 with an empty key": raw_token(HS256, claims, b""),
        "RS256 header, HMAC with the secret": raw_token(
            {"alg": "RS256", "typ": "JWT"}, claims, secret
        ),
        "HS512 header": raw_token({"alg": "HS512", "typ": "JWT"}, claims, secret),
        "large header": raw_token({**HS256, "x": "A" * 4000}, claims, b"attacker"),
        "header over the size limit": raw_token({**HS256, "x": "A" * 9000}, claims, secret),
        "kid to an empty file": raw_token({**HS256, "kid": "../../../../dev/null"}, claims, b""),
        "jku to the attacker": raw_token(
            {**HS256, "jku": "https://attacker.example/jwks.json", "kid": "k"},
            claims,
            b"attacker-key",
        ),
        "jwk embedded": raw_token(
            {**HS256, "jwk": {"kty": "oct", "k": b64url(b"attacker-key")}}, claims, b"attacker-key"
        ),
        "signature stripped": raw_token(HS256, claims, secret).rsplit(".", 1)[0] + ".",
    }


@pytest.mark.parametrize("name", list(attack_tokens(b"x")))
async def test_attack_tokens_never_verify(rotating: str, name: str) -> None:
    token = attack_tokens(NEW_SECRET)[name]
    async with grpc.aio.insecure_channel(rotating) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        try:
            answer = await stub.Verify(pb.VerifyRequest(token=token))
        except grpc.aio.AioRpcError as error:  # too long to look at: refused as a bad request
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert NEW_SECRET.decode() not in (error.details() or "")
            return
    assert not answer.valid
    assert answer.problems
    assert NEW_SECRET.decode() not in str(answer)


async def test_one_call_s_log_fields_never_reach_the_next(deployment: Deployment) -> None:
    async with deployment.client(bearer=SCHEDULER_TOKEN) as client:  # one connection
        signed = await client.sign_meeting(SCHEDULER_MEETING, Role.HOST)
        await client.verify(signed.token)
    await rpc_lines(deployment.logs, count=2)
    lines = [json.loads(line) for line in deployment.logs.getvalue().splitlines()]
    sign, verify = (line for line in lines if line.get("event") == "rpc")
    assert sign["meeting"] == SCHEDULER_MEETING and "ttl" in sign
    assert "meeting" not in verify and "ttl" not in verify and "kind" not in verify
