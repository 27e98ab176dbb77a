"""[rate_limits]: the shared store's URL, its password and CA, and every refusal in one line
that never shows a password."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sdksign.server import load_config
from sdksign.server.config.model import DEFAULT_STORE_TIMEOUT, RateLimitStore
from tests.certs import Authority
from tests.unit.test_config import APP, refusal, write
from tests.unit.test_security import MEETING_SECRET, example_config

PASSWORD = "redis-password-never-shown-0123"
ENV = {"S": "s" * 32, "REDIS_PASSWORD": PASSWORD}


def store_of(tmp_path: Path, table: str) -> RateLimitStore | None:
    return load_config(write(tmp_path, APP + "[rate_limits]\n" + table), ENV).rate_limits


def test_without_the_table_each_worker_keeps_its_own_buckets(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, APP), ENV).rate_limits is None


def test_a_store_with_its_defaults(tmp_path: Path) -> None:
    store = store_of(tmp_path, 'store = "redis://cache.internal"\n')
    assert store == RateLimitStore(host="cache.internal")
    assert (store.port, store.db, store.tls, store.timeout, store.on_store_error) == (
        6379,
        0,
        False,
        DEFAULT_STORE_TIMEOUT,
        "local",
    )
    assert store.address == "redis://cache.internal:6379/0"


def test_every_key(tmp_path: Path) -> None:
    authority = Authority()
    (tmp_path / "ca.pem").write_bytes(authority.pem)
    (tmp_path / "redis.password").write_text(PASSWORD + "\n")
    store = store_of(
        tmp_path,
        'store = "rediss://[::1]:6380/3"\nusername = "sdksign"\npassword_file = "redis.password"\n'
        'tls_ca_file = "ca.pem"\ntimeout = 0.25\non_store_error = "refuse"\n',
    )
    assert store == RateLimitStore(
        host="::1",
        port=6380,
        db=3,
        tls=True,
        ca=authority.pem,
        username="sdksign",
        password=PASSWORD.encode(),
        timeout=0.25,
        on_store_error="refuse",
    )
    assert store.address == "rediss://[::1]:6380/3"
    assert PASSWORD not in repr(store)
    from_env = store_of(tmp_path, 'store = "redis://h:1"\npassword_env = "REDIS_PASSWORD"\n')
    assert from_env is not None and from_env.password == PASSWORD.encode()


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("", "[rate_limits]: store must be a redis:// or rediss:// URL such as redis://"),
        ("store = 6379\n", "store must be a redis:// or rediss:// URL"),
        ('store = "  "\n', "store must be a redis:// or rediss:// URL"),
        ('store = "http://cache:6379"\n', "[rate_limits] store must be a redis:// or rediss://"),
        ('store = "unix:///run/redis.sock"\n', "store must be a redis:// or rediss://"),
        ('store = "cache:6379"\n', "store must be a redis:// or rediss://"),
        ('store = "redis://"\n', "store must be a redis:// or rediss://"),
        ('store = "redis://cache:port"\n', "store must be a redis:// or rediss://"),
        ('store = "redis://[::1"\n', "store must be a redis:// or rediss://"),
        ('store = "redis://cache:99999"\n', "store must be a redis:// or rediss://"),
        ('store = "redis://cache:0"\n', "(a port from 1, a database number)"),
        ('store = "redis://cache/db1"\n', "(a port from 1, a database number)"),
        ('store = "redis://cache/0?db=1"\n', "options are keys of [rate_limits], not part of"),
        ('store = "redis://h"\ntimeout = 0\n', "timeout must be a number of seconds above 0"),
        ('store = "redis://h"\ntimeout = -1\n', "timeout must be a number of seconds above 0"),
        ('store = "redis://h"\ntimeout = nan\n', "at most 5"),
        ('store = "redis://h"\ntimeout = 10\n', "at most 5"),
        ('store = "redis://h"\ntimeout = "1s"\n', "at most 5"),
        ('store = "redis://h"\non_store_error = "retry"\n', "'retry' is not one of local, refuse"),
        ('store = "redis://h"\nretries = 3\n', "[rate_limits]: unknown key 'retries'; allowed:"),
        (
            'store = "redis://h"\npassword_env = "REDIS_PASSWORD"\npassword_file = "p"\n',
            "[rate_limits]: give at most one of password_env and password_file",
        ),
        ('store = "redis://h"\npassword_env = "UNSET"\n', "'UNSET' is empty or not set"),
        ('store = "redis://h"\npassword_file = "missing.password"\n', "password_file"),
        ('store = "redis://h"\ntls_ca_file = "ca.pem"\n', "tls_ca_file needs a rediss:// store"),
    ],
)
def test_refusals_name_the_key(tmp_path: Path, table: str, says: str) -> None:
    message = refusal(tmp_path, APP + "[rate_limits]\n" + table, ENV)
    assert says in message


def test_rate_limits_that_is_not_a_table(tmp_path: Path) -> None:
    assert "[rate_limits] must be a table" in refusal(tmp_path, "rate_limits = 5\n" + APP, ENV)
    unknown = refusal(tmp_path, APP + "[rate_limit]\n", ENV)
    assert "unknown table or key 'rate_limit'" in unknown and "[rate_limits]" in unknown


@pytest.mark.parametrize(
    "table",
    [
        f'store = "redis://:{PASSWORD}@cache:6379/0"\n',
        f'store = "rediss://sdksign:{PASSWORD}@cache/0"\n',
        f'store = "redis://{PASSWORD}@cache"\n',
        f'store = "redis://cache/0#{PASSWORD}@"\n',
        f'store = "http://:{PASSWORD}@cache"\n',
        f'store = "redis://cache"\npassword = "{PASSWORD}"\n',
    ],
)
def test_a_password_in_the_file_is_refused_without_showing_it(tmp_path: Path, table: str) -> None:
    message = refusal(tmp_path, APP + "[rate_limits]\n" + table, ENV)
    assert PASSWORD not in message and "sdksign:" not in message
    assert "password_env or password_file" in message


def test_the_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "plain.txt").write_text("hello")
    for file, says in [
        ("key.pem", "key.pem' holds no PEM certificate"),
        ("plain.txt", "plain.txt' is not PEM"),
        ("missing.pem", "missing.pem': No such file"),
    ]:
        table = f'[rate_limits]\nstore = "rediss://cache"\ntls_ca_file = "{file}"\n'
        message = refusal(tmp_path, APP + table, ENV)
        assert "[rate_limits] tls_ca_file" in message and says in message


def test_without_the_redis_extra_one_line_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    message = refusal(tmp_path, APP + '[rate_limits]\nstore = "redis://cache"\n', ENV)
    assert message.endswith(
        "[rate_limits] store needs the redis extra, not installed: pip install 'sdksign[redis]'"
    )


@pytest.mark.parametrize("example", ["production.toml", "production-gateway.toml"])
def test_the_examples_commented_table_loads_once_uncommented(tmp_path: Path, example: str) -> None:
    (tmp_path / "redis-password").write_text(PASSWORD + "\n")
    secrets = {"/run/secrets/redis-password": str(tmp_path / "redis-password")}
    path = example_config(tmp_path, Authority(), example, **secrets)
    env = {"ZOOM_MEETING_SDK_SECRET": MEETING_SECRET}
    assert load_config(path, env).rate_limits is None  # as shipped: each worker on its own
    path.write_text(UNCOMMENT.sub("", path.read_text()))
    assert load_config(path, env).rate_limits == RateLimitStore(
        host="redis.internal", port=6380, tls=True, password=PASSWORD.encode()
    )


# The commented lines of an example's [rate_limits] table, and nothing else commented.
UNCOMMENT = re.compile(
    r"^# (?=\[rate_limits\]$|(store|password_file|on_store_error) = )", re.MULTILINE
)
