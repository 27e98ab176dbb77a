"""Bad configuration files: load_config returns a Config or raises one ConfigError line.

Two ways in. A sweep sets every key of every table, one at a time, to each of a list
of awkward values (NaN, infinities, huge integers, NUL characters, dates, nested
tables, the names of files that are empty, not UTF-8, too big or directories).
Hypothesis then builds documents from the real table and key names with up to three
values of any TOML type, and also plain random text and bytes. Nothing but a
ConfigError may escape, and its message is one line that starts with the file's
name and holds no secret.
"""

from __future__ import annotations

import copy
import datetime
import math
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdksign.server import Config, ConfigError, load_config
from sdksign.server.config.files import MAX_SECRET_BYTES
from sdksign.server.config.schema import TABLES as _TABLES
from sdksign.server.config.schema import keys as _keys

SECRET = "fuzz-secret-that-must-never-be-shown-0123456789"
# A secret file in Latin-1, not UTF-8; nothing of it may reach a message either.
LATIN1_SECRET = "sécret-latin1-never-shown-0123456789"
ENVIRON = {"S": SECRET, "UNDECODABLE": "bad-\udcff-bytes", "EMPTY": ""}

FILES = {
    "good.secret": SECRET.encode() + b"\n",
    "latin1.secret": LATIN1_SECRET.encode("latin-1"),
    "empty.secret": b"  \n",
    "big.secret": b"x" * (MAX_SECRET_BYTES + 1),
    "cert.pem": b"-----BEGIN CERTIFICATE-----\n",
    "key.pem": b"-----BEGIN PRIVATE KEY-----\n",
    "plain.txt": b"hello",
}
FILE_NAMES = [*FILES, "folder", "missing.secret", "/", "a\0b", "../" * 40 + "x"]
ENV_NAMES = ["S", "UNDECODABLE", "EMPTY", "UNSET", "a\0b"]

TABLES = {name: _keys(table) for name, table in _TABLES.items()}
# The tables at the top of a file ([apps.s2s] is inside the first app).
TOP_TABLES = {name: keys for name, keys in TABLES.items() if name != "s2s"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuzz")
    for name, data in FILES.items():
        (path / name).write_bytes(data)
    (path / "folder").mkdir()
    yield path


def assert_loads_or_refuses(path: Path) -> Config | None:
    """load_config(path): a Config, or None after checking the ConfigError's message."""
    try:
        return load_config(path, ENVIRON)
    except ConfigError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and message.startswith(f"{path}: "), message
        for secret in (SECRET, LATIN1_SECRET, "\\xe9", "0xe9"):
            assert secret not in message, message
        return None


# --- a TOML writer: one line per top-level key, inline tables and arrays --------------------


def toml_string(text: str) -> str:
    escaped = "".join(
        c
        if c.isprintable() and c not in '"\\'
        else f"\\u{ord(c):04x}"
        if ord(c) <= 0xFFFF
        else f"\\U{ord(c):08x}"
        for c in text
    )
    return f'"{escaped}"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return f"[{', '.join(toml_value(item) for item in value)}]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(tables: Mapping[str, object]) -> str:
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in tables.items())


def test_the_writer_writes_toml_that_reads_back() -> None:
    import tomllib

    value = {
        "a": [1, 2.5, 'x\n"\\\x7f\U0001f600', 10**400],
        "b": {"c": True, "": datetime.date(2024, 1, 2), "t": datetime.time(1, 2, 3)},
    }
    assert tomllib.loads(toml_document(value)) == value
    assert math.isnan(tomllib.loads(toml_document({"n": math.nan}))["n"])


# --- the sweep: each key, one at a time, set to each awkward value ---------------------------

AWKWARD: list[object] = [
    math.nan,
    math.inf,
    -math.inf,
    0,
    -1,
    1,
    0.5,
    1e-300,
    1e300,
    2**63,
    10**400,
    -(10**400),
    True,
    "",
    " ",
    "\0",
    "x" * 10_000,
    "9" * 70 + "s",
    "9" * 5000 + "s",
    "-5",
    *FILE_NAMES,
    *ENV_NAMES,
    [],
    [""],
    [1],
    [math.nan],
    ["x" * 10_000],
    [[]],
    *[[name] for name in FILE_NAMES + ENV_NAMES],
    {},
    {"a": 1},
    datetime.date(2024, 1, 2),
    datetime.time(1, 2, 3),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
]


def good_document() -> dict[str, object]:
    """A valid document with every table, for the sweep to change one key of."""
    return {
        "server": {
            "listen": "127.0.0.1:0",
            "log_level": "info",
            "tls_cert_file": "cert.pem",
            "tls_key_file": "key.pem",
        },
        "apps": [
            {
                "name": "m",
                "kind": "meeting",
                "sdk_key": "k",
                "secret_file": "good.secret",
                "s2s": {"account_id": "a", "client_id": "c", "client_secret_env": "S"},
            }
        ],
        "callers": [{"name": "c", "token_sha256": "a" * 64, "apps": ["m"]}],
        "anonymous": {"roles": ["participant"]},
        # Loading never connects to the store.
        "rate_limits": {"store": "redis://127.0.0.1:1/0", "password_env": "S"},
        # No app reads from it (a sweep of secret_vault may): nothing listens on port 1.
        "vault": {"address": "http://127.0.0.1:1", "token_env": "S", "request_timeout": 1},
        # Loading never connects to Zoom either.
        "zoom": {"oauth_url": "http://127.0.0.1:1", "api_url": "https://api.zoom.us", "timeout": 2},
    }


def with_value(table: str, key: str, value: object) -> dict[str, object]:
    """good_document() with `key` of `table` (its first item for an array) set to `value`."""
    document = good_document()
    apps = document["apps"]
    assert isinstance(apps, list)
    target = apps[0]["s2s"] if table == "s2s" else document[table]
    target = target[0] if isinstance(target, list) else target
    assert isinstance(target, dict)
    if key in ("secret_env", "secret_file", "secret_vault"):  # an app has exactly one
        target.pop("secret_file")
    if key.startswith("client_secret_"):  # and so has its s2s
        target.pop("client_secret_env")
    target[key] = value
    return document


def test_every_key_with_every_awkward_value(folder: Path) -> None:
    path = folder / "sweep.toml"
    path.write_text(toml_document(good_document()))
    assert assert_loads_or_refuses(path) is not None
    escaped = []
    for table, keys in TABLES.items():
        for key in sorted(keys):
            for value in AWKWARD:
                path.write_text(toml_document(with_value(table, key, value)))
                try:
                    assert_loads_or_refuses(path)
                except Exception as exc:  # every one is listed, not only the first
                    escaped.append(f"{table}.{key} = {str(value)[:20]!r}: {exc!r}"[:200])
    assert not escaped, "\n".join(escaped)


# --- Hypothesis: documents with up to three values changed, and any text or bytes ------------

texts = st.text(max_size=12) | st.sampled_from(FILE_NAMES + ENV_NAMES + ["x" * 300])
numbers = st.integers() | st.floats() | st.sampled_from([v for v in AWKWARD if type(v) is int])
scalars = (
    st.booleans()
    | numbers
    | texts
    | st.dates()
    | st.times()
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
) | st.sampled_from(AWKWARD).map(copy.deepcopy)  # a copy: documents() changes tables in place


@st.composite
def known_or_not(draw: st.DrawFn, keys: Collection[str]) -> str:
    """One of `keys`, or now and then any other key."""
    key = draw(st.sampled_from([*sorted(keys), ""]))
    return key or draw(texts)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    """A valid document with up to three keys set to any values, or some tables left out."""
    document = good_document()
    for table in TOP_TABLES:
        if table != "apps" and draw(st.booleans()):
            del document[table]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from([*TABLES, "top"]))
        if where == "top":
            document[draw(known_or_not(set(TOP_TABLES)))] = draw(values)
            continue
        if where == "s2s":
            apps = document["apps"]
            # An earlier step may have made apps anything: a list of strings included.
            first = apps[0] if isinstance(apps, list) and apps else None
            target = first.setdefault("s2s", {}) if isinstance(first, dict) else {}
            if isinstance(target, dict):
                target[draw(known_or_not(TABLES["s2s"]))] = draw(values)
            continue
        target = document.setdefault(where, [{}] if where in ("apps", "callers") else {})
        if isinstance(target, list):
            target = draw(st.sampled_from(target)) if target else {}
        if isinstance(target, dict):
            target[draw(known_or_not(TABLES[where]))] = draw(values)
    return document


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """Mostly a document; else one that is not UTF-8, or random text or bytes."""
    kind = draw(st.sampled_from(["document"] * 7 + ["not utf-8", "text", "bytes"]))
    if kind == "text":
        return draw(st.text()).encode()
    if kind == "bytes":
        return draw(st.binary())
    document = toml_document(draw(documents())).encode()
    return document if kind == "document" else document + b"\n\xff"


@settings(
    max_examples=int(os.environ.get("SDKSIGN_FUZZ_EXAMPLES", "500")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=files())
def test_any_file_gives_a_config_or_one_config_error_line(folder: Path, data: bytes) -> None:
    path = folder / "sdksign.toml"
    path.write_bytes(data)
    assert_loads_or_refuses(path)


@settings(max_examples=100, deadline=None)
@given(
    environ=st.fixed_dictionaries(
        {"ZOOM_MEETING_SDK_KEY": st.text(min_size=1) | st.just("key-\udcff")},
        optional={
            "ZOOM_MEETING_SDK_SECRET": st.text() | st.just(SECRET + "\udcff"),
            "ZOOM_VIDEO_SDK_KEY": st.text(),
            "ZOOM_VIDEO_SDK_SECRET": st.text(),
        },
    )
)
def test_any_environment_gives_a_config_or_one_config_error_line(
    environ: dict[str, str],
) -> None:
    # ZOOM_MEETING_SDK_KEY is always set: never the development apps (they are written to disk).
    try:
        load_config(None, environ)
    except ConfigError as exc:
        assert len(str(exc).splitlines()) == 1 and SECRET not in str(exc)
