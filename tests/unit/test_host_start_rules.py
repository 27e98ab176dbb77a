"""Host starts without a process: [zoom], [apps.s2s] and start_as in the configuration, the
caller's start_as patterns, and SignRequest.start_as's checks in tokens.mint."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sdksign.server import ConfigError, load_config
from sdksign.server.access.policy import Caller, Rule, may_start_as
from sdksign.server.config import App, Config
from sdksign.server.config.model import S2s, ZoomSettings
from sdksign.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from sdksign.server.tokens.mint import mint
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import ENV

SECRET = "app-secret-never-shown-0123456789abcdef"
CLIENT_SECRET = "s2s-client-secret-never-shown-0123456789"
APP = (
    '[[apps]]\nname = "web"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'
    '[apps.s2s]\naccount_id = "acc"\nclient_id = "cid"\n'
)


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "sdksign.toml"
    path.write_text(text)
    return load_config(path, {"S": SECRET, "C": CLIENT_SECRET})


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert SECRET not in message and CLIENT_SECRET not in message
    return message


def test_s2s_zoom_and_start_as_are_read(tmp_path: Path) -> None:
    (tmp_path / "client.secret").write_text(CLIENT_SECRET + "\n")
    config = load(
        tmp_path,
        APP
        + 'client_secret_file = "client.secret"\n'
        + '[zoom]\napi_url = "http://127.0.0.1:8765/"\noauth_url = "https://zoom.us"\ntimeout = 2.5\n'
        + '[[callers]]\nname = "b"\ntoken_sha256 = "'
        + "a" * 64
        + '"\n'
        + 'start_as = ["*@example.com", " u-1234 "]\n',
    )
    assert config.apps[0].s2s == S2s("acc", "cid", CLIENT_SECRET.encode())
    assert CLIENT_SECRET not in repr(config.apps[0].s2s)
    assert config.zoom == ZoomSettings("https://zoom.us", "http://127.0.0.1:8765", 2.5)
    assert config.policy.callers[0].rule.start_as == ("*@example.com", "u-1234")
    assert config.policy.anonymous is not None and config.policy.anonymous.start_as == ()


def test_zoom_defaults_to_zooms_own_addresses(tmp_path: Path) -> None:
    config = load(tmp_path, APP + 'client_secret_env = "C"\n')
    assert config.zoom == ZoomSettings("https://zoom.us", "https://api.zoom.us", 5.0)
    assert (
        config.apps[0].s2s is not None
        and config.apps[0].s2s.client_secret == CLIENT_SECRET.encode()
    )


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[zoom]\napi_url = "http://api.zoom.us"\n', "[zoom] api_url: http:// only to loopback"),
        ('[zoom]\noauth_url = "http://10.1.2.3"\n', "[zoom] oauth_url: http:// only to loopback"),
        ('[zoom]\napi_url = "https://api.zoom.us/v2"\n', "[zoom] api_url: must be a URL such as"),
        ('[zoom]\napi_url = "https://u:p@api.zoom.us"\n', "credentials are never written"),
        ('[zoom]\napi_url = "ftp://api.zoom.us"\n', "[zoom] api_url: must be a URL"),
        ("[zoom]\ntimeout = 0\n", "[zoom] timeout: must be a number of seconds above 0"),
        ("[zoom]\ntimeout = 61\n", "at most 60"),
        ('[zoom]\nproxy = "x"\n', "[zoom]: unknown key 'proxy'"),
    ],
)
def test_zoom_refuses_what_it_cannot_use(tmp_path: Path, table: str, says: str) -> None:
    assert says in refusal(tmp_path, APP + 'client_secret_env = "C"\n' + table)


@pytest.mark.parametrize(
    ("s2s", "says"),
    [
        ("", "give exactly one of client_secret_env, client_secret_file and client_secret_vault"),
        ('client_secret_env = "C"\nclient_secret_file = "f"\n', "give exactly one of"),
        ('client_secret = "inline"\n', "secrets are never written inline"),
        ('client_secret_env = "UNSET"\n', "apps[0] ('web') s2s: environment variable 'UNSET'"),
        (
            'client_secret_vault = "secret/data/zoom#s2s"\n',
            "s2s client_secret_vault needs a [vault]",
        ),
        ('client_secret_vault = "nonsense"\n', "client_secret_vault (not shown"),
        ('client_secret_env = "C"\naccount_id2 = "x"\n', "unknown key 'account_id2'"),
    ],
)
def test_s2s_refuses_what_it_cannot_use(tmp_path: Path, s2s: str, says: str) -> None:
    assert says in refusal(tmp_path, APP + s2s)


def test_s2s_needs_its_ids(tmp_path: Path) -> None:
    text = '[[apps]]\nname = "web"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'
    message = refusal(tmp_path, text + '[apps.s2s]\nclient_id = "c"\nclient_secret_env = "C"\n')
    assert "apps[0] ('web') s2s: account_id is required" in message


def test_s2s_is_for_meeting_apps_only(tmp_path: Path) -> None:
    text = APP.replace('kind = "meeting"', 'kind = "video"') + 'client_secret_env = "C"\n'
    assert "only a meeting app starts meetings" in refusal(tmp_path, text)


# --- the policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        ("alice@example.com", True),
        ("Alice@EXAMPLE.com", True),  # emails match whatever their case
        ("alice@example.com.evil", False),
        ("u-1234", True),
        ("U-1234", False),  # user IDs match exactly
        ("u-12345", False),
        ("", False),
    ],
)
def test_start_as_patterns(user: str, allowed: bool) -> None:
    assert may_start_as(Rule(start_as=("*@example.com", "u-1234")), user) is allowed


def test_no_start_as_allows_nobody() -> None:
    assert not may_start_as(Rule(), "alice@example.com")


# --- SignRequest.start_as in tokens.mint -------------------------------------------------------


def config_with(s2s: S2s | None) -> Config:
    app = App(name="web", kind="meeting", sdk_key="k", secret=SECRET.encode(), s2s=s2s)
    return Config(apps=(app,), source="tests")


S2S = S2s("acc", "cid", CLIENT_SECRET.encode())
BACKEND = Caller(name="backend", rule=Rule(start_as=("*@example.com",)))


def host(user: str, role: pb.Role = pb.ROLE_HOST, number: str = "123456789") -> pb.SignRequest:
    return pb.SignRequest(meeting=pb.MeetingClaims(meeting_number=number, role=role), start_as=user)


@pytest.mark.parametrize(
    "request_",
    [
        host("alice@example.com", role=pb.ROLE_PARTICIPANT),
        pb.SignRequest(meeting=pb.MeetingClaims(), start_as="alice@example.com"),  # native
        pb.SignRequest(
            video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST), start_as="alice@example.com"
        ),
        host("alice/../x@example.com"),
        host("alice@example.com?type=zpk"),
        host("x" * 129),
        host("álice@example.com"),
    ],
)
def test_start_as_is_refused_where_it_cannot_be(request_: pb.SignRequest) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(request_, config_with(S2S), 1.8e9, BACKEND)
    assert [v.field for v in caught.value.violations] == ["start_as"]


def test_a_user_outside_the_rule_is_refused_naming_the_rule() -> None:
    with pytest.raises(PermissionDenied) as caught:
        mint(host("mallory@example.net"), config_with(S2S), 1.8e9, BACKEND)
    assert caught.value.rule == "start_as"
    assert "mallory@example.net" in caught.value.message and "*@example.com" in caught.value.message


def test_anonymous_callers_are_asked_for_credentials() -> None:
    anonymous = Caller(name="anonymous", rule=Rule())
    with pytest.raises(Unauthenticated) as caught:
        mint(host("alice@example.com"), config_with(S2S), 1.8e9, anonymous)
    assert caught.value.rule == "start_as"


def test_an_app_without_s2s_cannot_start_meetings() -> None:
    with pytest.raises(FailedPrecondition, match=r"no \[apps.s2s\] table"):
        mint(host("alice@example.com"), config_with(None), 1.8e9, BACKEND)


def test_a_host_start_mints_the_token_as_a_plain_sign_does() -> None:
    with_user = mint(host("alice@example.com"), config_with(S2S), 1.8e9, BACKEND)
    without = mint(host(""), config_with(S2S), 1.8e9, BACKEND)
    assert with_user.token == without.token


# --- the zoom extra ---------------------------------------------------------------------------


def test_s2s_without_the_zoom_extra_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "httpx" else real(name, *a)
    )
    message = refusal(tmp_path, APP + 'client_secret_env = "C"\n')
    assert "needs the zoom extra, not installed: pip install 'sdksign[zoom]'" in message
    # Without [apps.s2s], httpx is not needed at all.
    load(tmp_path, APP.split("[apps.s2s]")[0])


def test_serving_imports_no_http_client_until_a_host_start() -> None:
    probe = "import sys, sdksign.server.runtime.serve; print('httpx' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
