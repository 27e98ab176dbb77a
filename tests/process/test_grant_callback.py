"""The grant callback handlers of docs/join.md (examples/grant-callback/callback.py,
examples/node-backend/grant-callback.mjs), each run as its own process against a real server
and the stand-in of Zoom's API, as a user's browser would: the authorize route sends it to
Zoom, Zoom back to the callback, and the grant is stored; a callback from another browser
(no state cookie) is refused. The page shows the handlers as they are here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest

from harness.process import free_port
from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from tests.conftest import ROOT
from tests.process.test_on_behalf import METADATA, SDK_KEY, SECRET, TOKEN, start

HANDLERS = {
    "python": ROOT / "examples" / "grant-callback" / "callback.py",
    "node": ROOT / "examples" / "node-backend" / "grant-callback.mjs",
}


@pytest.fixture
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        api.user_oauth.apps[SDK_KEY] = SECRET
        yield api


@pytest.fixture(params=sorted(HANDLERS))
def handler(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def run_handler(kind: str, target: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {
        "PATH": os.environ["PATH"],
        "SDKSIGN_TARGET": target,
        "SDKSIGN_URL": f"http://{target}",
        "SDKSIGN_BEARER_TOKEN": TOKEN,
        "CALLBACK_URL": "",
        "PORT": "0",
    }
    if kind == "python":
        command = [sys.executable, str(HANDLERS["python"])]
    else:
        node = shutil.which("node")
        assert node, "Node.js is needed: make test installs it"
        command = [node, str(HANDLERS["node"])]
    port = free_port()  # the callback URL names the handler's own port
    env |= {"PORT": str(port), "CALLBACK_URL": f"http://127.0.0.1:{port}/zoom/callback"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on ")
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_callback_handler_completes_a_grant(
    handler: str, tmp_path: Path, zoom: ZoomApi
) -> None:
    server = start(tmp_path / "server", zoom, f"sqlite:{tmp_path / 'grants.db'}")
    try:
        with run_handler(handler, server.target) as (base, _):
            async with httpx.AsyncClient() as browser:
                authorize = await browser.get(f"{base}/zoom/authorize")
                assert authorize.status_code == 302
                at_zoom = await browser.get(authorize.headers["location"])
                assert at_zoom.status_code == 302
                callback = at_zoom.headers["location"]
                assert callback.startswith(f"{base}/zoom/callback?")
                elsewhere = await httpx.AsyncClient().get(callback)  # no state cookie
                assert elsewhere.status_code == 400
                state = re.search(r"zoom_state=([^;]+)", authorize.headers["set-cookie"])
                assert state is not None
                back = await browser.get(callback, headers={"cookie": f"zoom_state={state[1]}"})
                assert back.status_code == 200, back.text
                assert "alice@example.com" in back.text
                again = await browser.get(callback, headers={"cookie": f"zoom_state={state[1]}"})
                assert again.status_code == 400  # the state is single use
        async with grpc.aio.insecure_channel(server.target) as channel:
            listed = await pb_grpc.SignatureServiceStub(channel).ListGrants(
                pb.ListGrantsRequest(), metadata=METADATA, timeout=10
            )
        assert [grant.email for grant in listed.grants] == ["alice@example.com"]
    finally:
        assert server.stop(timeout=15) is not None


def test_the_page_shows_the_handlers_as_they_are() -> None:
    page = (ROOT / "docs" / "join.md").read_text()
    for path in HANDLERS.values():
        assert path.read_text().strip() in page, f"docs/join.md does not show {path.name} as it is"
