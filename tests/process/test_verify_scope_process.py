"""Verify scoped like Sign, through a real `sdksign serve`: a caller limited to the meeting app
cannot have video tokens checked, unless its verify_apps says so."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import grpc
import pytest

from sdksign.client import Client, Role, SdkSignError
from tests.conftest import start_server_process

MEETING_SECRET = secrets.token_urlsafe(32)
VIDEO_SECRET = secrets.token_urlsafe(32)
TOKENS = {name: secrets.token_urlsafe(24) for name in ("classroom", "auditor", "rooms")}


def caller(name: str, rule: str) -> str:
    digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
    return f'[[callers]]\nname = "{name}"\ntoken_sha256 = "{digest}"\n{rule}\n'


CONFIG = (
    '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "ScopeMeetingKey01"\nsecret_env = "M"\n'
    '[[apps]]\nname = "video"\nkind = "video"\nsdk_key = "ScopeVideoKey0123"\nsecret_env = "V"\n'
    + caller("classroom", 'apps = ["meeting"]')
    + caller("auditor", 'apps = ["meeting"]\nverify_apps = ["meeting", "video"]')
    + caller("rooms", 'apps = ["video"]')
    + "[anonymous]\nroles = []\nverify = false\n"
)


def test_verify_checks_only_the_apps_of_the_caller_s_rule(tmp_path: Path) -> None:
    (tmp_path / "sdksign.toml").write_text(CONFIG)
    env = {"M": MEETING_SECRET, "V": VIDEO_SECRET}
    server = start_server_process(tmp_path, env, ["--config", str(tmp_path / "sdksign.toml")])
    try:
        with Client(server.target, bearer_token=TOKENS["rooms"], retries=0) as rooms:
            video = rooms.sign_video("room-1", Role.HOST).token
        with Client(server.target, bearer_token=TOKENS["classroom"], retries=0) as classroom:
            meeting = classroom.sign_meeting("123456789", Role.PARTICIPANT).token
            assert classroom.verify(meeting).valid
            scoped = classroom.verify(video)
            refusals = {}
            for name in ("video", "nope"):
                with pytest.raises(SdkSignError) as refused:
                    classroom.verify(video, app=name)
                refusals[name] = refused.value
        with Client(server.target, bearer_token=TOKENS["auditor"], retries=0) as auditor:
            audited = auditor.verify(video)
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)
    assert (scoped.valid, scoped.codes, scoped.app) == (False, ["UNKNOWN_SDK_KEY"], "")
    # Naming the video app is answered as naming one nobody configured: nothing says it exists.
    for name, error in refusals.items():
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.message == (
            f"invalid request: app: {name!r} is not an app this caller may use (allowed: meeting)"
        )
    assert (audited.valid, audited.app) == (True, "video")
    logs = server.logs()
    for secret in (MEETING_SECRET, VIDEO_SECRET, video, meeting, *TOKENS.values()):
        assert secret not in logs
