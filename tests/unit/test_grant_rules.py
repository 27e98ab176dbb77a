"""Joins outside the account, the pure parts: [grants] and the callers' keys read from a
file, on_behalf_of checked and authorized before anything is asked of Zoom, tokens sealed
(and opened only with their key and place), Zoom's token answers read, the PKCE pair and the
authorize URL."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sdksign.server import ConfigError, load_config
from sdksign.server.access.policy import Caller, Rule, authorize_grants
from sdksign.server.config import App, Config
from sdksign.server.config.grants import dev_grant_key
from sdksign.server.config.keys import read_key
from sdksign.server.errors import InvalidArgument, PermissionDenied, Unauthenticated
from sdksign.server.tokens.mint import mint
from sdksign.server.zoomapi.answers import Failure
from sdksign.server.zoomapi.grantstore import StoredGrant, Tokens, needs_refresh
from sdksign.server.zoomapi.sealing import Sealer, Unsealable, new_key_text
from sdksign.server.zoomapi.userauth import authorize_url, pkce_pair, read_tokens, usable_until
from sdksign.v1 import signature_service_pb2 as pb

SECRET = "app-secret-never-shown-0123456789abcdef"
KEY = base64.b64encode(bytes(range(32))).decode()
APP = '[[apps]]\nname = "web"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "sdksign.toml"
    path.write_text(text)
    return load_config(path, {"S": SECRET, "K": KEY, "OLD": new_key_text(), "P": "redis-pw"})


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and SECRET not in message and KEY not in message
    return message


def test_grants_and_the_callers_keys_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        APP + '[[callers]]\nname = "b"\ntoken_sha256 = "' + "a" * 64 + '"\n'
        'on_behalf_of = ["*@example.com"]\ngrants = true\n'
        '[grants]\nstore = "sqlite:state/grants.db"\nkey_env = "K"\nprevious_key_envs = ["OLD"]\n',
    )
    assert config.grants.sqlite == tmp_path / "state" / "grants.db"
    assert config.grants.key == bytes(range(32)) and len(config.grants.previous_keys) == 1
    rule = config.policy.callers[0].rule
    assert rule.on_behalf_of == ("*@example.com",) and rule.grants
    assert KEY not in repr(config.grants)


def test_grants_default_to_the_state_folder_and_a_development_key(tmp_path: Path) -> None:
    config = load(tmp_path, APP)
    assert config.grants.sqlite is None and config.grants.redis is None
    assert config.grants.key is None  # made on first use, not at load
    assert not config.policy.anonymous or not config.policy.anonymous.grants


def test_a_redis_store_takes_the_rate_limits_credential_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        APP + '[grants]\nstore = "redis://127.0.0.1:6390/2"\nusername = "u"\npassword_env = "P"\n',
    )
    assert config.grants.redis is not None
    assert (config.grants.redis.port, config.grants.redis.db) == (6390, 2)
    assert config.grants.redis.password == b"redis-pw" and config.grants.redis.username == "u"


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('key_env = "S"\n', "a grant key is 32 bytes"),
        ('key_env = "K"\nkey_file = "k"\n', "key_env"),
        ('store = "memcached://x"\n', "sqlite:PATH"),
        ('store = "sqlite:x.db"\npassword_env = "P"\n', "for Redis"),
        ('previous_key_envs = ["UNSET"]\n', "UNSET"),
    ],
)
def test_grants_refuse_what_they_cannot_use(tmp_path: Path, table: str, says: str) -> None:
    assert says in refusal(tmp_path, APP + "[grants]\n" + table)


def test_a_short_key_is_refused_by_its_length() -> None:
    with pytest.raises(ConfigError, match="holds 16 bytes"):
        read_key(base64.b64encode(b"x" * 16), "key_env")
    assert read_key(base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"="), "k") == bytes(
        range(32)
    )


def test_the_development_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = dev_grant_key(tmp_path / "state")
    assert dev_grant_key(tmp_path / "state") == first and len(first) == 32
    assert oct(os.stat(tmp_path / "state" / "grant-key").st_mode & 0o777) == "0o600"


WEB = App(name="web", kind="meeting", sdk_key="k", secret=SECRET.encode())
BACKEND = Caller(name="backend", rule=Rule(on_behalf_of=("*@example.com", "u-alice")))


def on_behalf(user: str, claims: pb.SignRequest | None = None) -> pb.SignRequest:
    request = claims or pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
    )
    request.on_behalf_of = user
    return request


@pytest.mark.parametrize(
    "request_",
    [
        on_behalf("a@example.com", pb.SignRequest(meeting=pb.MeetingClaims())),  # native
        on_behalf(
            "a@example.com",
            pb.SignRequest(video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST)),
        ),
        on_behalf("a/../b@example.com"),
        on_behalf("x" * 129),
    ],
)
def test_on_behalf_of_is_refused_where_it_cannot_be(request_: pb.SignRequest) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(request_, Config(apps=(WEB,), source="t"), 1.8e9, BACKEND)
    assert "on_behalf_of" in [v.field for v in caught.value.violations]


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("Alice@Example.COM", True), ("u-alice", True), ("U-ALICE", False), ("m@example.net", False)],
)
def test_on_behalf_of_patterns(user: str, allowed: bool) -> None:
    config = Config(apps=(WEB,), source="t")
    if allowed:
        assert mint(on_behalf(user), config, 1.8e9, BACKEND).token
        return
    with pytest.raises(PermissionDenied) as caught:
        mint(on_behalf(user), config, 1.8e9, BACKEND)
    assert caught.value.rule == "on_behalf_of" and user in caught.value.message


def test_grant_calls_need_grants_true() -> None:
    authorize_grants(Caller(name="b", rule=Rule(grants=True)))
    with pytest.raises(PermissionDenied, match="grants = true"):
        authorize_grants(Caller(name="b", rule=Rule()))
    with pytest.raises(Unauthenticated):
        authorize_grants(Caller(name="anonymous", rule=Rule()))


def test_a_sealed_token_opens_only_with_its_key_and_place() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = Sealer(old).seal("standin-urt-secret", "web\0u-alice\0refresh")
    assert "standin" not in sealed and sealed != Sealer(old).seal("standin-urt-secret", "x")
    rotated = Sealer(new, previous=[old])
    assert rotated.open(sealed, "web\0u-alice\0refresh") == "standin-urt-secret"
    assert rotated.stale(sealed) and not rotated.stale(rotated.seal("t", "p"))
    with pytest.raises(Unsealable):
        rotated.open(sealed, "web\0u-bob\0refresh")  # copied onto another user's grant
    with pytest.raises(Unsealable) as caught:
        Sealer(new).open(sealed, "web\0u-alice\0refresh")  # the old key dropped
    assert "standin" not in str(caught.value)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(Unsealable):
        rotated.open(tampered, "web\0u-alice\0refresh")


def test_the_pkce_pair_and_the_authorize_url() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == digest.decode()
    url = authorize_url("https://zoom.us", "key", "https://b.example/cb?x=1", "st", challenge)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://zoom.us/oauth/authorize?")
    assert query == {
        "response_type": ["code"],
        "client_id": ["key"],
        "redirect_uri": ["https://b.example/cb?x=1"],
        "state": ["st"],
        "code_challenge": [challenge],
        "code_challenge_method": ["S256"],
    }


def test_zoom_token_answers_are_read_never_echoed() -> None:
    body = {"access_token": "at", "refresh_token": "rt", "expires_in": 3599, "scope": "a b"}
    read = read_tokens(200, {}, json.dumps(body).encode(), 1000.0, "the refresh")
    assert read == Tokens("at", "rt", 1000.0 + 3599 - 60, ("a", "b"))
    assert usable_until(0.0, 2) == 1.0  # a 2-second token is used for half its life
    refused = read_tokens(
        400, {}, b'{"reason": "Invalid Token! rt-secret", "error": "invalid_request"}', 0, "x"
    )
    assert isinstance(refused, Failure) and "rt-secret" not in refused.error.message
    assert isinstance(read_tokens(200, {}, b'{"access_token": "at"}', 0, "x"), Failure)
    assert isinstance(read_tokens(503, {}, b"", 0, "x"), Failure)


def grant(access: str, until: float, broken: bool = False) -> StoredGrant:
    return StoredGrant("web", "u", "e@x", (), 0.0, Tokens(access, "r", until, ()), broken)


def test_a_refresh_is_skipped_when_another_worker_made_it_or_zoom_refused() -> None:
    assert needs_refresh(grant("old", 5.0), stale_access="old", now=10.0)
    assert needs_refresh(grant("old", 50.0), stale_access="old", now=10.0)  # Zoom's 124
    assert not needs_refresh(grant("new", 50.0), stale_access="old", now=10.0)
    assert needs_refresh(grant("new", 5.0), stale_access="old", now=10.0)
    assert not needs_refresh(grant("old", 5.0, broken=True), stale_access="old", now=10.0)
