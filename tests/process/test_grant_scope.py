"""The grant RPCs, and Sign's on_behalf_of, within the caller's `apps`, through a real
`sdksign serve` against the stand-in of Zoom's API: a caller limited to one meeting app can
neither begin, list nor remove the grants of another (RemoveGrant would revoke at Zoom),
nor sign on their behalf; an app outside its rule reads as one nobody configured, as for
Sign, and a rule without a meeting app is PERMISSION_DENIED with ErrorInfo rule "app".
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess, start_server_process
from tests.process.test_on_behalf import (
    CALLBACK,
    GRANT_KEY,
    METADATA,
    SDK_KEY,
    SECRET,
    TOKEN,
    follow,
    on_behalf,
    violations,
)

OTHER_KEY = "ObfOtherKey1"
SCOPED = secrets.token_urlsafe(24)
VIDEO_ONLY = secrets.token_urlsafe(24)
SCOPED_METADATA = (("authorization", f"Bearer {SCOPED}"),)
VIDEO_METADATA = (("authorization", f"Bearer {VIDEO_ONLY}"),)


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        api.user_oauth.apps[SDK_KEY] = SECRET
        api.user_oauth.apps[OTHER_KEY] = SECRET
        yield api


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_scoped(folder: Path, zoom: ZoomApi, store: str) -> ServerProcess:
    folder.mkdir(exist_ok=True)
    apps = "".join(
        f'[[apps]]\nname = "{name}"\nkind = "{kind}"\nsdk_key = "{key}"\nsecret_env = "S"\n'
        for name, kind, key in (
            ("meeting", "meeting", SDK_KEY),
            ("other", "meeting", OTHER_KEY),
            ("video", "video", "ObfVideoKey1"),
        )
    )
    users = 'on_behalf_of = ["*@example.com", "u-alice"]\ngrants = true\n'
    (folder / "sdksign.toml").write_text(
        apps
        + f'[[callers]]\nname = "backend"\ntoken_sha256 = "{_sha(TOKEN)}"\n{users}'
        + f'[[callers]]\nname = "scoped"\ntoken_sha256 = "{_sha(SCOPED)}"\n'
        + f'apps = ["meeting"]\n{users}'
        + f'[[callers]]\nname = "video-only"\ntoken_sha256 = "{_sha(VIDEO_ONLY)}"\n'
        + f'apps = ["video"]\n{users}'
        + "[anonymous]\nroles = []\nverify = false\n"
        + f'[zoom]\noauth_url = "{zoom.url}"\napi_url = "{zoom.url}"\ntimeout = 2\n'
        + f'[grants]\nstore = "{store}"\nkey_env = "GRANT_KEY"\n'
    )
    env = {"S": SECRET, "GRANT_KEY": GRANT_KEY}
    args = ["--config", str(folder / "sdksign.toml"), "--workers", "1"]
    return start_server_process(folder, env, args, listening=1)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


async def test_grant_calls_and_on_behalf_signs_stay_within_the_callers_apps(
    tmp_path: Path,
    zoom: ZoomApi,
) -> None:
    server = start_scoped(tmp_path / "one", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.SignatureServiceStub(channel)
            # A caller of every app grants alice to "other".
            begun = await stub.BeginGrant(
                pb.BeginGrantRequest(app="other", redirect_uri=CALLBACK),
                metadata=METADATA,
                timeout=10,
            )
            code = await follow(begun.authorize_url)
            await stub.CompleteGrant(
                pb.CompleteGrantRequest(state=begun.state, code=code), metadata=METADATA, timeout=10
            )
            # The caller limited to "meeting": "other" reads as an app nobody configured.
            outside = [
                (stub.BeginGrant, pb.BeginGrantRequest(app="other", redirect_uri=CALLBACK)),
                (stub.ListGrants, pb.ListGrantsRequest(app="other")),
                (stub.RemoveGrant, pb.RemoveGrantRequest(app="other", user="u-alice")),
                (stub.Sign, _other(on_behalf("alice@example.com"))),
            ]
            for method, request in outside:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await method(request, metadata=SCOPED_METADATA, timeout=10)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
                assert "app" in violations(error.value)
                assert "'other' is not an app this caller may use (allowed: meeting)" in (
                    error.value.details() or ""
                )
            assert zoom.user_oauth.revoked == 0
            assert zoom.user_oauth.obf_issued == {}
            # Without `app`, its only meeting app is taken (two are configured).
            mine = await stub.BeginGrant(
                pb.BeginGrantRequest(redirect_uri=CALLBACK), metadata=SCOPED_METADATA, timeout=10
            )
            assert f"client_id={SDK_KEY}&" in mine.authorize_url
            listed = await stub.ListGrants(
                pb.ListGrantsRequest(), metadata=SCOPED_METADATA, timeout=10
            )
            assert list(listed.grants) == []
            # A rule without a meeting app: refused, naming the rule, like Sign.
            for method, request in [
                (stub.BeginGrant, pb.BeginGrantRequest(redirect_uri=CALLBACK)),
                (stub.ListGrants, pb.ListGrantsRequest()),
                (stub.RemoveGrant, pb.RemoveGrantRequest(user="u-alice")),
                (stub.Sign, on_behalf("alice@example.com")),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await method(request, metadata=VIDEO_METADATA, timeout=10)
                assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED, request
                info = error_info(error.value)
                assert (info.reason, info.metadata["rule"]) == ("APP_NOT_ALLOWED", "app")
            # The grant of "other" is still there, for the caller that may use it.
            kept = await stub.ListGrants(
                pb.ListGrantsRequest(app="other"), metadata=METADATA, timeout=10
            )
            assert [g.user_id for g in kept.grants] == ["u-alice"]
    finally:
        assert server.stop(timeout=15) is not None
    assert zoom.user_oauth.revoked == 0


def _other(request: pb.SignRequest) -> pb.SignRequest:
    request.app = "other"
    return request
