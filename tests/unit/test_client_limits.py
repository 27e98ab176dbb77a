"""The Python client and the service's size limits: a token too long is refused before it is
sent, in the server's words; a request over the message limit is told plainly."""

from __future__ import annotations

import grpc
import pytest

from sdksign.client import AsyncClient, Client, FieldViolation, Role, SdkSignError
from sdksign.client._limits import MAX_MESSAGE_BYTES, MAX_TOKEN_LENGTH


@pytest.mark.parametrize("length", [MAX_TOKEN_LENGTH + 1, 1024 * 1024])
async def test_a_token_over_the_limit_is_refused_before_sending(length: int) -> None:
    # Nothing listens at port 1: only a check made before any call answers.
    async with AsyncClient("127.0.0.1:1", retries=0) as client:
        with pytest.raises(SdkSignError) as refused:
            await client.verify("e" * length)
    error = refused.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    why = (
        f"has {length} characters; at most {MAX_TOKEN_LENGTH} are allowed (a Zoom SDK token "
        "is a few hundred characters, a few KB at most): pass the token alone"
    )
    assert error.message == f"invalid request: token: {why}"
    assert error.violations == [FieldViolation("token", why)]
    with Client("127.0.0.1:1", retries=0) as blocking, pytest.raises(SdkSignError) as again:
        blocking.verify("e" * length)
    assert again.value.message == error.message


async def test_the_server_takes_a_token_at_the_limit_and_refuses_one_over(target: str) -> None:
    async with AsyncClient(target) as client:
        assert not (await client.verify("e" * MAX_TOKEN_LENGTH)).valid  # diagnosed: not a JWT
    # The server's own check, for callers that do not use this client.
    from sdksign.v1 import signature_service_pb2 as pb
    from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.SignatureServiceStub(channel).Verify(
                pb.VerifyRequest(token="e" * (MAX_TOKEN_LENGTH + 1))
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_TOKEN_LENGTH} are allowed" in str(refused.value.details())


async def test_a_request_over_the_message_limit_names_the_limit(target: str) -> None:
    async with AsyncClient(target) as client:
        with pytest.raises(SdkSignError) as refused:
            await client.sign_video("s" * (MAX_MESSAGE_BYTES + 1), Role.HOST)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Received message larger than max (" in refused.value.message
    assert f"larger than the {MAX_MESSAGE_BYTES} bytes the server takes" in refused.value.message
