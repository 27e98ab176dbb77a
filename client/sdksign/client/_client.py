"""AsyncClient and Client: SignatureService with deadlines, retries on UNAVAILABLE only, typed results.

The two classes have the same methods, with the same parameters, defaults and docstrings;
only `async` sets them apart. Each sign_* and verify takes the parameters of the request
builder it calls (_types.meeting_request, video_request, verify_request), and
tests/unit/test_client_signatures.py holds all three in step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import grpc

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

from ._errors import SIGN, VERIFY, from_rpc_error
from ._grants import GRANTS, BeganGrant, GrantInfo, GrantPage, began_grant, grant_info, grant_page
from ._types import (
    Role,
    SignedToken,
    Verification,
    _raise_if_unparsed,
    meeting_request,
    signed_token,
    verification,
    verify_request,
    video_request,
)

DEFAULT_TARGET = "localhost:50051"
# Each call's deadline, in seconds, unless the client is given another.
DEFAULT_TIMEOUT = 5.0
# The authorization scheme the bearer token is sent with.
BEARER = "Bearer "


MAX_RETRIES = 4  # gRPC caps a retry policy at 5 attempts


# After a failed connection attempt gRPC waits this long before the next (its default is
# 1 s): a replica or worker that went away mid-call is replaced within the retries' backoff.
RECONNECT_BACKOFF_MS = 100


def channel_options(retries: int) -> list[tuple[str, Any]]:
    """gRPC's own retry policy: up to `retries` more attempts, on UNAVAILABLE only."""
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be from 0 to {MAX_RETRIES}, not {retries}")
    reconnect = ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS)
    if retries == 0:
        return [("grpc.enable_retries", 0), reconnect]
    policy = {
        "methodConfig": [
            {
                "name": [{"service": "sdksign.v1.SignatureService"}],
                "retryPolicy": {
                    "maxAttempts": retries + 1,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    return [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(policy)), reconnect]


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that carries a bearer token (none without one)."""
    if token is None:
        return ()
    if not token.strip() or any(c in token for c in "\r\n"):
        raise ValueError("bearer_token must be a non-empty single line")
    if token.strip()[: len(BEARER)].lower() == BEARER.lower():
        raise ValueError(f"bearer_token is the token alone: leave out {BEARER!r}, sent with it")
    return (("authorization", f"{BEARER}{token.strip()}"),)


class AsyncClient:
    """An asyncio client. Use `async with AsyncClient(target) as client: ...`.

    Every call has a deadline (`timeout` seconds) and is retried by gRPC itself
    on UNAVAILABLE, up to `retries` more times; any other failure raises
    SdkSignError at once.

    `credentials` are TLS channel credentials (`grpc.ssl_channel_credentials`,
    with a client certificate for mTLS); `bearer_token` is sent as
    `authorization: Bearer ...` metadata on every call.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        bearer_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
    ) -> None:
        """Open a channel to `target` (connected on the first call)."""
        options = channel_options(retries)
        self._metadata = bearer_metadata(bearer_token)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._stub = pb_grpc.SignatureServiceStub(self._channel)
        self._timeout = timeout

    async def sign(self, request: pb.SignRequest) -> SignedToken:
        """Sign with a raw SignRequest."""
        try:
            return signed_token(
                await self._stub.Sign(request, timeout=self._timeout, metadata=self._metadata)
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, SIGN) from None

    async def sign_meeting(
        self,
        meeting_number: str | int | None = None,
        role: Role | None = None,
        *,
        app: str = "",
        ttl: timedelta | int | None = None,
        video_webrtc_mode: bool | None = None,
        start_as: str = "",
        on_behalf_of: str = "",
    ) -> SignedToken:
        """A Meeting SDK token: with meeting number and role for the web SDK, neither for native
        SDKs. `start_as` (a Zoom user's email or ID, with Role.HOST) asks for that user's ZAK
        too, in the answer's `zak`: the web SDK needs it to start the meeting. `on_behalf_of`
        (a Zoom user who granted the app) asks for their OBF token, in `obf_token`: the web
        SDK needs it to join a meeting outside the app's account."""
        return await self.sign(
            meeting_request(
                meeting_number,
                role,
                app=app,
                ttl=ttl,
                video_webrtc_mode=video_webrtc_mode,
                start_as=start_as,
                on_behalf_of=on_behalf_of,
            )
        )

    async def sign_video(
        self,
        session_name: str,
        role: Role,
        *,
        app: str = "",
        ttl: timedelta | int | None = None,
        user_identity: str = "",
        session_key: str = "",
        geo_regions: Iterable[str] = (),
        telemetry_tracking_id: str = "",
        cloud_recording_option: bool | None = None,
        cloud_recording_election: bool | None = None,
        video_webrtc_mode: bool | None = None,
        audio_webrtc_mode: bool | None = None,
    ) -> SignedToken:
        """A Video SDK token; each flag left at None leaves its claim out."""
        return await self.sign(
            video_request(
                session_name,
                role,
                app=app,
                ttl=ttl,
                user_identity=user_identity,
                session_key=session_key,
                geo_regions=geo_regions,
                telemetry_tracking_id=telemetry_tracking_id,
                cloud_recording_option=cloud_recording_option,
                cloud_recording_election=cloud_recording_election,
                video_webrtc_mode=video_webrtc_mode,
                audio_webrtc_mode=audio_webrtc_mode,
            )
        )

    async def verify(
        self,
        token: str,
        *,
        app: str | None = None,
        expected_meeting_number: str | int | None = None,
    ) -> Verification:
        """Diagnose any token; an invalid token is a result (valid=False), not an exception."""
        request = verify_request(token, app=app, expected_meeting_number=expected_meeting_number)
        try:
            response = await self._stub.Verify(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, VERIFY) from None
        return verification(response)

    async def begin_grant(self, redirect_uri: str, *, app: str = "") -> BeganGrant:
        """Begin a Zoom user's grant to `app`: send the user to the answer's authorize_url;
        Zoom sends them back to `redirect_uri` with `code` and `state`."""
        request = pb.BeginGrantRequest(app=app, redirect_uri=redirect_uri)
        return began_grant(await self._call(self._stub.BeginGrant, request))

    async def complete_grant(self, state: str, code: str) -> GrantInfo:
        """Complete the grant with the `state` and `code` Zoom sent to the callback."""
        request = pb.CompleteGrantRequest(state=state, code=code)
        return grant_info(await self._call(self._stub.CompleteGrant, request))

    async def remove_grant(self, user: str, *, app: str = "") -> GrantInfo:
        """Revoke the grant of `user` (an email or Zoom user ID) at Zoom, and delete it."""
        request = pb.RemoveGrantRequest(app=app, user=user)
        return grant_info((await self._call(self._stub.RemoveGrant, request)).grant)

    async def list_grants(
        self, *, app: str = "", page_size: int = 0, page_token: str = ""
    ) -> GrantPage:
        """One page of `app`'s grants (no tokens); pass next_page_token for the next."""
        request = pb.ListGrantsRequest(app=app, page_size=page_size, page_token=page_token)
        return grant_page(await self._call(self._stub.ListGrants, request))

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            response = await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, GRANTS) from None
        _raise_if_unparsed(response)
        return response

    async def close(self) -> None:
        """Close the channel; calls still in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Client:
    """A blocking client with the same calls, deadlines and retries as AsyncClient.

    Use `with Client(target) as client: ...`; its methods are AsyncClient's, without `await`.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        bearer_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
    ) -> None:
        """Open a channel to `target` (connected on the first call)."""
        options = channel_options(retries)
        self._metadata = bearer_metadata(bearer_token)
        self._channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.insecure_channel(target, options=options)
        )
        self._stub = pb_grpc.SignatureServiceStub(self._channel)
        self._timeout = timeout

    def sign(self, request: pb.SignRequest) -> SignedToken:
        """Sign with a raw SignRequest."""
        try:
            return signed_token(
                self._stub.Sign(request, timeout=self._timeout, metadata=self._metadata)
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, SIGN) from None

    def sign_meeting(
        self,
        meeting_number: str | int | None = None,
        role: Role | None = None,
        *,
        app: str = "",
        ttl: timedelta | int | None = None,
        video_webrtc_mode: bool | None = None,
        start_as: str = "",
        on_behalf_of: str = "",
    ) -> SignedToken:
        """A Meeting SDK token: with meeting number and role for the web SDK, neither for native
        SDKs. `start_as` (a Zoom user's email or ID, with Role.HOST) asks for that user's ZAK
        too, in the answer's `zak`: the web SDK needs it to start the meeting. `on_behalf_of`
        (a Zoom user who granted the app) asks for their OBF token, in `obf_token`: the web
        SDK needs it to join a meeting outside the app's account."""
        return self.sign(
            meeting_request(
                meeting_number,
                role,
                app=app,
                ttl=ttl,
                video_webrtc_mode=video_webrtc_mode,
                start_as=start_as,
                on_behalf_of=on_behalf_of,
            )
        )

    def sign_video(
        self,
        session_name: str,
        role: Role,
        *,
        app: str = "",
        ttl: timedelta | int | None = None,
        user_identity: str = "",
        session_key: str = "",
        geo_regions: Iterable[str] = (),
        telemetry_tracking_id: str = "",
        cloud_recording_option: bool | None = None,
        cloud_recording_election: bool | None = None,
        video_webrtc_mode: bool | None = None,
        audio_webrtc_mode: bool | None = None,
    ) -> SignedToken:
        """A Video SDK token; each flag left at None leaves its claim out."""
        return self.sign(
            video_request(
                session_name,
                role,
                app=app,
                ttl=ttl,
                user_identity=user_identity,
                session_key=session_key,
                geo_regions=geo_regions,
                telemetry_tracking_id=telemetry_tracking_id,
                cloud_recording_option=cloud_recording_option,
                cloud_recording_election=cloud_recording_election,
                video_webrtc_mode=video_webrtc_mode,
                audio_webrtc_mode=audio_webrtc_mode,
            )
        )

    def verify(
        self,
        token: str,
        *,
        app: str | None = None,
        expected_meeting_number: str | int | None = None,
    ) -> Verification:
        """Diagnose any token; an invalid token is a result (valid=False), not an exception."""
        request = verify_request(token, app=app, expected_meeting_number=expected_meeting_number)
        try:
            response = self._stub.Verify(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, VERIFY) from None
        return verification(response)

    def begin_grant(self, redirect_uri: str, *, app: str = "") -> BeganGrant:
        """Begin a Zoom user's grant to `app`: send the user to the answer's authorize_url;
        Zoom sends them back to `redirect_uri` with `code` and `state`."""
        request = pb.BeginGrantRequest(app=app, redirect_uri=redirect_uri)
        return began_grant(self._call(self._stub.BeginGrant, request))

    def complete_grant(self, state: str, code: str) -> GrantInfo:
        """Complete the grant with the `state` and `code` Zoom sent to the callback."""
        request = pb.CompleteGrantRequest(state=state, code=code)
        return grant_info(self._call(self._stub.CompleteGrant, request))

    def remove_grant(self, user: str, *, app: str = "") -> GrantInfo:
        """Revoke the grant of `user` (an email or Zoom user ID) at Zoom, and delete it."""
        request = pb.RemoveGrantRequest(app=app, user=user)
        return grant_info((self._call(self._stub.RemoveGrant, request)).grant)

    def list_grants(self, *, app: str = "", page_size: int = 0, page_token: str = "") -> GrantPage:
        """One page of `app`'s grants (no tokens); pass next_page_token for the next."""
        request = pb.ListGrantsRequest(app=app, page_size=page_size, page_token=page_token)
        return grant_page(self._call(self._stub.ListGrants, request))

    def _call(self, method: Any, request: Any) -> Any:
        try:
            response = method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, GRANTS) from None
        _raise_if_unparsed(response)
        return response

    def close(self) -> None:
        """Close the channel; calls still in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
