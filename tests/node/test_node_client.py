"""The Node.js client (client/node) and its example backend, on real servers: `node --test`."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.server import encode
from tests.certs import Authority
from tests.conftest import MEETING_KEY, ROOT, VIDEO_KEY, ServerProcess, start_server_process
from tests.helpers import video_claims

HERE = Path(__file__).parent
CLIENT = ROOT / "client" / "node"
EXAMPLE = ROOT / "examples" / "node-backend"
BACKEND_TOKEN = secrets.token_urlsafe(24)  # a caller that may mint both roles
KIOSK_TOKEN = secrets.token_urlsafe(24)  # a caller that may mint participant tokens only
# On the mutual TLS server: a caller named by its client certificate's URI SAN, both roles.
CERT_CALLER = '[[callers]]\nname = "scheduler"\ncert_identity = "spiffe://corp/scheduler"\n'


def caller(name: str, token: str, roles: str, start_as: str = "", more: str = "") -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return (
        f'[[callers]]\nname = "{name}"\ntoken_sha256 = "{digest}"\nroles = [{roles}]\n'
        f"start_as = [{start_as}]\n{more}"
    )


# The backend joins outside the account on behalf of users who granted the meeting app.
GRANTS = 'on_behalf_of = ["*@example.com"]\ngrants = true\n'


def config(zoom: ZoomApi, tls: str = "", more_callers: str = "") -> str:
    apps = "".join(
        f'[[apps]]\nname = "{kind}"\nkind = "{kind}"\nsdk_key = "{key}"\nsecret_env = "{env}"\n'
        for kind, key, env in (("meeting", MEETING_KEY, "M"), ("video", VIDEO_KEY, "V"))
    )
    # The meeting app starts meetings through the stand-in of Zoom's API (the backend may).
    apps = apps.replace(
        'secret_env = "M"\n',
        f'secret_env = "M"\n[apps.s2s]\naccount_id = "{zoom.account_id}"\n'
        f'client_id = "{zoom.client_id}"\nclient_secret_env = "S2S"\n',
    )
    callers = caller(
        "backend", BACKEND_TOKEN, '"participant", "host"', '"*@example.com"', GRANTS
    ) + caller("kiosk", KIOSK_TOKEN, '"participant"')
    urls = f'[zoom]\noauth_url = "{zoom.url}"\napi_url = "{zoom.url}"\n'
    # Grants in the default store (the state folder) with a key from the environment.
    urls += '[grants]\nkey_env = "GRANT_KEY"\n'
    return f"{tls}{apps}{callers}{more_callers}[anonymous]\nroles = []\nverify = false\n{urls}"


def start(
    folder: Path, env: dict[str, str], zoom: ZoomApi, tls: str = "", more_callers: str = ""
) -> ServerProcess:
    folder.mkdir()
    (folder / "sdksign.toml").write_text(config(zoom, tls, more_callers))
    args = ["--config", str(folder / "sdksign.toml"), "--workers", "1"]
    return start_server_process(folder, env, args)


@pytest.fixture(scope="module")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A plaintext, a TLS and a mutual TLS server with the same apps and callers (and, with
    mutual TLS, one named by its certificate); what the Node tests read."""
    assert (CLIENT / "dist" / "index.js").is_file(), "run `make node-client` (make test does)"
    assert (EXAMPLE / "node_modules" / "@sdksign" / "client").exists(), "run `make node-client`"
    base = tmp_path_factory.mktemp("node-client")
    meeting_secret = secrets.token_urlsafe(32)
    env = {"M": meeting_secret, "V": secrets.token_urlsafe(32)}
    authority = Authority()
    issued = authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",), server=True)
    client = authority.issue("scheduler", uris=("spiffe://corp/scheduler",))
    for name, data in {
        "server.crt": issued.cert,
        "server.key": issued.key,
        "client.crt": client.cert,
        "client.key": client.key,
    }.items():
        (base / name).write_bytes(data)
    (base / "ca.crt").write_bytes(authority.pem)
    tls = f'[server]\ntls_cert_file = "{base}/server.crt"\ntls_key_file = "{base}/server.key"\n'
    mtls = f'{tls}tls_client_ca_file = "{base}/ca.crt"\n'
    stack = ExitStack()  # the stand-in of Zoom's API, stopped once the servers are
    zoom = stack.enter_context(running_zoom_api())
    env["S2S"] = zoom.client_secret
    env["GRANT_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    zoom.user_oauth.apps[MEETING_KEY] = meeting_secret
    servers = [
        start(base / "plain", env, zoom),
        start(base / "tls", env, zoom, tls),
        start(base / "mtls", env, zoom, mtls, CERT_CALLER),
    ]
    try:
        yield {
            "SDKSIGN_URL": f"http://{servers[0].target}",
            "SDKSIGN_TLS_URL": f"https://{servers[1].target}",
            "SDKSIGN_MTLS_URL": f"https://{servers[2].target}",
            "SDKSIGN_CA_FILE": str(base / "ca.crt"),
            "SDKSIGN_CERT_FILE": str(base / "client.crt"),
            "SDKSIGN_KEY_FILE": str(base / "client.key"),
            "BACKEND_TOKEN": BACKEND_TOKEN,
            "KIOSK_TOKEN": KIOSK_TOKEN,
            "MEETING_KEY": MEETING_KEY,
            "VIDEO_KEY": VIDEO_KEY,
            "MEETING_SECRET": meeting_secret,
            # A Video SDK token with the deprecated audio_compatible_mode claim.
            "DEPRECATED_TOKEN": encode(
                video_claims(VIDEO_KEY, int(time.time()), audio_compatible_mode=1),
                env["V"].encode(),
            ),
        }
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=15)
        stack.close()
        zaks = [zak for issued in zoom.issued.values() for zak in issued]
        for server in servers:
            logs = server.logs()
            assert BACKEND_TOKEN not in logs and KIOSK_TOKEN not in logs
            assert meeting_secret not in logs
            assert not [secret for secret in (*zaks, *zoom.access_tokens) if secret in logs]
            assert not [value for value in zoom.user_oauth.handed_out if value in logs]


def node(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    executable = shutil.which("node")
    assert executable, "Node.js is needed for the Node client's tests: install nodejs and npm"
    done = subprocess.run(
        [executable, *args],
        input=stdin,
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("script", ["client.test.mjs", "example.test.mjs"])
def test_node_test_files_pass(node_env: dict[str, str], script: str) -> None:
    # TAP, for its summary: every test that ran passed, none skipped, none left as todo.
    tap = node(
        ["--test", "--test-reporter=tap", "--test-timeout=30000", script], node_env, cwd=HERE
    )
    summary = dict(re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", tap, re.M))
    assert int(summary["tests"]) > 0, tap
    assert summary == {**summary, "pass": summary["tests"], "fail": "0", "cancelled": "0"}, tap
    assert (summary["skipped"], summary["todo"]) == ("0", "0"), tap
