"""secret_vault and [vault] without a Vault: the refusals, one line each, and the pure parts
(references, which versions count, a version's field). Reads from a real OpenBao are in
tests/process/test_vault_config.py."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdksign.server import ConfigError, load_config
from sdksign.server.config.vault import (
    KvRef,
    VaultError,
    _Version,
    field_secret,
    live_versions,
    parse_reference,
)
from tests.certs import Authority

TOKEN = "s.vault-token-never-shown-0123456789"
ENV = {"VAULT_TOKEN": TOKEN, "S": "zoom-secret-never-shown-0123456789abcdef"}
VAULT_APP = '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\n'
REFERENCE = 'secret_vault = "secret/data/zoom/meeting#secret"\n'
# Nothing listens on port 1: a read fails at once.
VAULT = '[vault]\naddress = "http://127.0.0.1:1"\ntoken_env = "VAULT_TOKEN"\n'


def refusal(tmp_path: Path, text: str, env: dict[str, str] = ENV) -> str:
    path = tmp_path / "sdksign.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert TOKEN not in message and ENV["S"] not in message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            VAULT_APP + REFERENCE + 'secret_env = "S"\n' + VAULT,
            "apps[0] ('m'): give exactly one of secret_env, secret_file and secret_vault",
        ),
        (
            VAULT_APP + REFERENCE,
            "apps[0] ('m'): secret_vault needs a [vault] table (address, and token_file or "
            "token_env)",
        ),
        (
            VAULT_APP + 'secret_vault = "secret/data/zoom/meeting"\n' + VAULT,
            "apps[0] ('m'): secret_vault 'secret/data/zoom/meeting' is not a KV version 2 field: "
            "write '<mount>/data/<path>#<field>', e.g. 'secret/data/zoom/meeting#secret'",
        ),
        (
            VAULT_APP + 'secret_vault = "secret/zoom/meeting#secret"\n' + VAULT,
            "secret_vault 'secret/zoom/meeting#secret' is not a KV version 2 field",
        ),
        (
            VAULT_APP + 'secret_vault = "secret/data/#secret"\n' + VAULT,
            "is not a KV version 2 field",
        ),
        (
            VAULT_APP + 'secret_vault = "secret/data/a/../b#secret"\n' + VAULT,
            "is not a KV version 2 field",
        ),
        (
            VAULT_APP + 'secret_vault = "secret/data/zoom#"\n' + VAULT,
            "is not a KV version 2 field",
        ),
        (
            # A secret pasted there is not echoed: a reference has a '/'.
            VAULT_APP + f'secret_vault = "{ENV["S"]}"\n' + VAULT,
            "secret_vault (not shown: it may be a secret written there by mistake) is not a KV",
        ),
        (
            VAULT_APP + REFERENCE + 'previous_secret_envs = ["S"]\n' + VAULT,
            "previous_secret_envs and previous_secret_files go with secret_env or secret_file",
        ),
        (VAULT_APP + REFERENCE + "secret_vault = 3\n", "not valid TOML"),
        (VAULT_APP + 'secret_vault = ""\n' + VAULT, "secret_vault must be a non-empty string"),
    ],
)
def test_secret_vault_refusals(tmp_path: Path, text: str, says: str) -> None:
    assert says in refusal(tmp_path, text)


APP_AND_VAULT = VAULT_APP + REFERENCE + "[vault]\n"
ADDRESS = 'address = "https://vault.internal:8200"\n'


@pytest.mark.parametrize(
    ("vault", "says"),
    [
        (
            'token_env = "VAULT_TOKEN"\n',
            "[vault]: address must be a URL such as https://vault.internal:8200",
        ),
        (ADDRESS, "[vault]: give exactly one of token_file and token_env"),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\ntoken_file = "/t"\n',
            "[vault]: give exactly one of token_file and token_env",
        ),
        (
            ADDRESS + 'token_env = "UNSET_TOKEN"\n',
            "[vault]: environment variable 'UNSET_TOKEN' is empty or not set",
        ),
        (
            'address = "vault.internal:8200"\ntoken_env = "VAULT_TOKEN"\n',
            "[vault]: address must be a URL such as https://vault.internal:8200",
        ),
        (
            'address = "https://vault.internal:port"\ntoken_env = "VAULT_TOKEN"\n',
            "[vault]: address must be a URL",
        ),
        (
            'address = "https://user:pw@vault.internal"\ntoken_env = "VAULT_TOKEN"\n',
            "[vault] address: credentials are never written in the URL",
        ),
        (
            'address = "http://vault.internal:8200"\ntoken_env = "VAULT_TOKEN"\n',
            "[vault] address: http:// only to loopback (the token would cross the network in "
            "clear text); use https://",
        ),
        (
            'address = "http://127.0.0.1:8200"\ntoken_env = "VAULT_TOKEN"\ntls_ca_file = "ca.pem"\n',
            "[vault] tls_ca_file needs an https:// address",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\ntls_ca_file = "missing-ca.pem"\n',
            "[vault] tls_ca_file",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nrequest_timeout = "2m"\n',
            "[vault] request_timeout: from 1 s to 60 s",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nrequest_timeout = 0\n',
            "[vault] request_timeout: from 1 s to 60 s",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nrefresh = "soon"\n',
            "[vault] refresh: 'soon' is not a duration",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nrefresh = "2d"\n',
            "[vault] refresh: at most 86400 s (0: only on SIGHUP)",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nprevious_versions = 11\n',
            "[vault]: previous_versions must be a whole number from 0 to 10",
        ),
        (
            ADDRESS + 'token_env = "VAULT_TOKEN"\nprevious_versions = -1\n',
            "previous_versions must be a whole number from 0 to 10",
        ),
        (ADDRESS + 'token_env = "VAULT_TOKEN"\ntoken = "x"\n', "[vault]: unknown key 'token'"),
    ],
)
def test_vault_table_refusals(tmp_path: Path, vault: str, says: str) -> None:
    assert says in refusal(tmp_path, APP_AND_VAULT + vault)


def test_an_unknown_table_names_vault_among_those_allowed(tmp_path: Path) -> None:
    assert "[vault]" in refusal(tmp_path, VAULT_APP + 'secret_env = "S"\n[vualt]\n')


def test_a_ca_file_that_is_a_certificate_is_taken(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(Authority().pem)
    vault = 'address = "https://127.0.0.1:1"\ntoken_env = "VAULT_TOKEN"\ntls_ca_file = "ca.pem"\n'
    # The file is taken: what stops the load is Vault, which is not there.
    assert "cannot reach Vault at https://127.0.0.1:1" in refusal(tmp_path, APP_AND_VAULT + vault)


def test_vault_without_an_app_that_reads_it_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sdksign.toml"
    path.write_text(VAULT_APP + 'secret_env = "S"\n' + VAULT + 'refresh = "1m"\n')
    config = load_config(path, ENV)
    assert config.vault is not None and config.vault.refresh == 60
    assert TOKEN not in repr(config)


# --- Vault out of reach, and the token's file ------------------------------------------------


def test_vault_out_of_reach_is_one_line_naming_it(tmp_path: Path) -> None:
    assert refusal(tmp_path, VAULT_APP + REFERENCE + VAULT) == (
        "apps[0] ('m'): secret_vault secret/data/zoom/meeting#secret: "
        "cannot reach Vault at http://127.0.0.1:1: Connection refused"
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_vault_that_does_not_answer_is_one_line_after_the_request_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    vault = VAULT.replace("127.0.0.1:1", f"127.0.0.1:{silent_port}") + "request_timeout = 1\n"
    assert refusal(tmp_path, VAULT_APP + REFERENCE + vault).endswith(
        f"Vault at http://127.0.0.1:{silent_port} did not answer within 1 s"
    )


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("./missing-token", None, "[vault] token_file './missing-token': No such file"),
        (
            TOKEN,  # a token written where the file's name belongs is not echoed
            None,
            "[vault] token_file (the file named there; not shown: it may be a secret written "
            "there by mistake): No such file",
        ),
        ("./token", b"  \n", "[vault] token_file './token' is empty"),
        ("./token", b"\xff\xfe", "[vault] token_file './token' is not UTF-8 text"),
    ],
)
def test_token_file_problems(tmp_path: Path, name: str, content: bytes | None, says: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    vault = VAULT.replace('token_env = "VAULT_TOKEN"', f'token_file = "{name}"')
    assert refusal(tmp_path, VAULT_APP + REFERENCE + vault).startswith(says)


def test_without_the_vault_extra_one_line_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # import hvac raises ImportError
    assert refusal(tmp_path, VAULT_APP + REFERENCE + VAULT) == (
        "[vault]: secret_vault needs hvac, the vault extra: pip install 'sdksign[vault]'"
    )


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("secret/data/zoom/meeting#secret", KvRef("secret", "zoom/meeting", "secret")),
        ("kv/team/data/app#key", KvRef("kv/team", "app", "key")),
        ("secret/data/data/x#f", KvRef("secret", "data/x", "f")),
        ("secret/data/x#a field", KvRef("secret", "x", "a field")),
        ("secret/data/x", None),
        ("secret/metadata/x#f", None),
        ("/data/x#f", None),
        ("secret/data/x#", None),
        ("secret/data/x#a#b", None),
        ("secret/data//x#f", None),
        ("secret/data/./x#f", None),
        ("sec ret/data/x#f", None),
    ],
)
def test_references(text: str, ref: KvRef | None) -> None:
    assert parse_reference(text) == ref
    if ref is not None:
        assert str(ref) == text


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def deleted(delta: timedelta) -> _Version:
    return _Version(deletion_time=(NOW + delta).isoformat().replace("+00:00", "Z"))


def test_live_versions_newest_first_without_deleted_or_destroyed() -> None:
    versions = {
        "1": _Version(),
        "2": _Version(destroyed=True),
        "3": deleted(-timedelta(seconds=1)),
        "4": deleted(timedelta(hours=1)),  # deletion scheduled, not yet done
        "10": _Version(),
        "5": _Version(),
    }
    assert live_versions(versions, NOW, 10) == [10, 5, 4, 1]
    assert live_versions(versions, NOW, 2) == [10, 5]
    assert live_versions({"1": _Version(destroyed=True)}, NOW, 2) == []


def test_a_deletion_time_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(VaultError, match="not that of a KV version 2 secret"):
        live_versions({"1": _Version(deletion_time="yesterday")}, NOW, 1)


REF = KvRef("secret", "zoom", "secret")


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"data": {"data": {"other": "x"}}}, "version 3 has no field 'secret'"),
        ({"data": {"data": {"secret": 7}}}, "version 3 has a field that is not a string, 'secret'"),
        ({"data": {"data": {"secret": " "}}}, "version 3 has an empty 'secret'"),
        ({"data": {"data": None}}, "not that of a KV version 2 secret"),
        ("<html>", "not that of a KV version 2 secret"),
    ],
)
def test_field_problems(answer: object, says: str) -> None:
    with pytest.raises(VaultError) as caught:
        field_secret(answer, REF, 3)
    assert str(caught.value).endswith(says)


def test_a_field_is_read_as_utf8_without_surrounding_whitespace() -> None:
    assert field_secret({"data": {"data": {"secret": " sécret\n"}}}, REF, 1) == "sécret".encode()
