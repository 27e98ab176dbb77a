"""load_config with secret_vault, reading a real OpenBao: which KV versions sign and verify,
and what a read that fails says (one line, never the token or a secret)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest

from sdksign.server import Config, ConfigError, load_config
from sdksign.server.config import config_warnings, vault_refreshed
from tests.openbao import OpenBao, start_openbao

APP = '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "k"\nsecret_vault = "{ref}"\n'
REF = "secret/data/zoom/meeting#secret"


def write_config(folder: Path, bao: OpenBao, ref: str = REF, vault: str = "") -> Path:
    path = folder / "sdksign.toml"
    path.write_text(
        APP.format(ref=ref)
        + f'[vault]\naddress = "{bao.address}"\ntoken_env = "VAULT_TOKEN"\n'
        + vault
    )
    return path


def load(path: Path, token: str) -> Config:
    return load_config(path, {"VAULT_TOKEN": token})


def refusal(path: Path, token: str, *hidden: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, token)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for text in (token, *hidden):
        assert text not in message
    return message.removeprefix(f"{path}: ")


def new_secrets(count: int) -> list[str]:
    return [f"v{n}-{secrets.token_urlsafe(32)}" for n in range(1, count + 1)]


def test_the_newest_version_signs_and_previous_versions_verify(
    tmp_path: Path, openbao: OpenBao
) -> None:
    values = new_secrets(4)
    assert [openbao.write("zoom/meeting", value) for value in values] == [1, 2, 3, 4]
    for previous, verify in ((0, []), (1, [3]), (2, [3, 2]), (10, [3, 2, 1])):
        path = write_config(tmp_path, openbao, vault=f"previous_versions = {previous}\n")
        (app,) = load(path, openbao.reader_token).apps
        assert app.secret == values[3].encode()
        assert app.previous_secrets == tuple(values[n - 1].encode() for n in verify)
        assert app.vault is not None and str(app.vault) == REF
        assert values[3] not in repr(app)


def test_deleted_and_destroyed_versions_are_skipped(tmp_path: Path, openbao: OpenBao) -> None:
    values = new_secrets(5)
    for value in values:
        openbao.write("zoom/meeting", value)
    kv = openbao.client().secrets.kv.v2
    kv.delete_secret_versions(path="zoom/meeting", versions=[5])  # the newest, soft-deleted
    kv.destroy_secret_versions(path="zoom/meeting", versions=[3])
    path = write_config(tmp_path, openbao, vault="previous_versions = 2\n")
    (app,) = load(path, openbao.reader_token).apps
    assert app.secrets == (values[3].encode(), values[1].encode(), values[0].encode())


def test_a_secret_with_every_version_deleted_is_refused(tmp_path: Path, openbao: OpenBao) -> None:
    value = new_secrets(1)[0]
    openbao.write("zoom/meeting", value)
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path="zoom/meeting")
    message = refusal(write_config(tmp_path, openbao), openbao.reader_token, value)
    assert message == (
        f"apps[0] ('meeting'): secret_vault {REF}: every version is deleted or destroyed"
    )


def test_a_new_version_is_read_by_a_refresh(tmp_path: Path, openbao: OpenBao) -> None:
    first, second = new_secrets(2)
    openbao.write("zoom/meeting", first)
    config = load(write_config(tmp_path, openbao), openbao.reader_token)
    openbao.write("zoom/meeting", second)
    assert vault_refreshed(config).apps[0].secrets == (second.encode(), first.encode())
    assert config.apps[0].secrets == (first.encode(),)  # the one it was made from is left alone


@pytest.mark.parametrize(
    ("ref", "write_field", "says"),
    [
        (
            "secret/data/zoom/absent#secret",
            "secret",
            "Vault at {address} has no secret there (404; is 'secret' a KV version 2 mount?)",
        ),
        ("secret/data/zoom/meeting#secret", "other", "version 1 has no field 'secret'"),
        (
            "elsewhere/data/zoom/meeting#secret",
            "secret",
            "Vault at {address}: permission denied (the token is unknown or expired, or "
            "cannot read elsewhere/data/zoom/meeting and elsewhere/metadata/zoom/meeting)",
        ),
    ],
)
def test_what_a_failed_read_says(
    tmp_path: Path, openbao: OpenBao, ref: str, write_field: str, says: str
) -> None:
    value = new_secrets(1)[0]
    openbao.write("zoom/meeting", value, field=write_field)
    message = refusal(write_config(tmp_path, openbao, ref), openbao.reader_token, value)
    assert message == f"apps[0] ('meeting'): secret_vault {ref}: " + says.format(
        address=openbao.address
    )


def test_a_kv_version_1_mount_is_not_read(tmp_path: Path, openbao: OpenBao) -> None:
    client = openbao.client()
    client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    client.secrets.kv.v1.create_or_update_secret(
        path="zoom", secret={"secret": "x" * 40}, mount_point="kv1"
    )
    message = refusal(write_config(tmp_path, openbao, "kv1/data/zoom#secret"), openbao.root_token)
    assert message.endswith("has no secret there (404; is 'kv1' a KV version 2 mount?)")


def test_a_token_without_the_policy_is_refused(tmp_path: Path, openbao: OpenBao) -> None:
    openbao.write("zoom/meeting", new_secrets(1)[0])
    weak = openbao.client().auth.token.create(policies=["default"], ttl="1h")["auth"]
    message = refusal(write_config(tmp_path, openbao), weak["client_token"])
    assert ": permission denied (the token is unknown or expired" in message
    assert "cannot read secret/data/zoom/meeting and secret/metadata/zoom/meeting" in message


def test_the_token_file_is_read_again_on_every_refresh(tmp_path: Path, openbao: OpenBao) -> None:
    openbao.write("zoom/meeting", new_secrets(1)[0])
    token_file = tmp_path / "vault-token"
    token_file.write_text(openbao.reader_token + "\n")
    path = tmp_path / "sdksign.toml"
    path.write_text(
        APP.format(ref=REF)
        + f'[vault]\naddress = "{openbao.address}"\ntoken_file = "{token_file}"\n'
    )
    config = load_config(path, {})
    revoked = "s.revoked-token-0123456789"
    token_file.write_text(revoked)
    with pytest.raises(ConfigError) as caught:
        vault_refreshed(config)
    assert "permission denied" in str(caught.value) and revoked not in str(caught.value)


def test_https_with_the_ca_file_of_the_dev_server(tmp_path: Path) -> None:
    bao = start_openbao(tmp_path / "openbao", tls=True)
    try:
        value = new_secrets(1)[0]
        bao.write("zoom/meeting", value)
        assert bao.ca_file is not None
        path = write_config(tmp_path, bao, vault=f'tls_ca_file = "{bao.ca_file}"\n')
        assert load(path, bao.reader_token).apps[0].secret == value.encode()
        without_ca = write_config(tmp_path, bao)
        assert refusal(without_ca, bao.reader_token).endswith(
            f"TLS with Vault at {bao.address} failed (is [vault] tls_ca_file the CA of its "
            "certificate?)"
        )
    finally:
        bao.stop()


def test_an_unreadable_previous_version_is_skipped_and_an_unreadable_newest_refused(
    tmp_path: Path, openbao: OpenBao
) -> None:
    first, third = new_secrets(2)
    openbao.write("zoom/meeting", first)
    openbao.write("zoom/meeting", "x", field="other")  # version 2 lacks the field
    path = write_config(tmp_path, openbao, vault="previous_versions = 1\n")
    message = refusal(path, openbao.reader_token, first)
    assert message == f"apps[0] ('meeting'): secret_vault {REF}: version 2 has no field 'secret'"
    openbao.write("zoom/meeting", third)
    for previous, verify in ((1, ()), (2, (first,))):
        path = write_config(tmp_path, openbao, vault=f"previous_versions = {previous}\n")
        (app,) = load(path, openbao.reader_token).apps
        assert app.secrets == (third.encode(), *(value.encode() for value in verify))
        assert app.vault_skipped == ("version 2 has no field 'secret'",)
    assert config_warnings(load(path, openbao.reader_token)) == [
        f"app 'meeting': secret_vault {REF}: version 2 has no field 'secret': it neither signs "
        "nor verifies (delete it to let an older version verify in its place)"
    ]


def test_an_s2s_client_secret_from_vault_is_its_newest_version_read_again(
    tmp_path: Path, openbao: OpenBao
) -> None:
    app_secret, first, second = new_secrets(3)
    openbao.write("zoom/meeting", app_secret)
    openbao.write("zoom/s2s", first, field="client_secret")
    path = write_config(tmp_path, openbao)
    path.write_text(
        path.read_text().replace(
            "[vault]",
            '[apps.s2s]\naccount_id = "acc"\nclient_id = "cid"\n'
            'client_secret_vault = "secret/data/zoom/s2s#client_secret"\n[vault]',
        )
    )
    config = load(path, openbao.reader_token)
    (app,) = config.apps
    assert app.s2s is not None and app.s2s.client_secret == first.encode()
    assert first not in repr(app)
    openbao.write("zoom/s2s", second, field="client_secret")  # a rotation
    (rotated,) = vault_refreshed(config).apps
    assert rotated.s2s is not None and rotated.s2s.client_secret == second.encode()
    assert rotated.s2s.key != app.s2s.key  # a new access token follows
    kv = openbao.client().secrets.kv.v2
    kv.delete_secret_versions(path="zoom/s2s", versions=[1, 2])
    message = refusal(path, openbao.reader_token, first, second)
    assert message == (
        "apps[0] ('meeting') s2s: client_secret_vault secret/data/zoom/s2s#client_secret: "
        "every version is deleted or destroyed"
    )


def test_a_grant_key_from_vault_seals_with_its_newest_version_and_opens_with_older(
    tmp_path: Path, openbao: OpenBao
) -> None:
    app_secret = new_secrets(1)[0]
    first, second = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    openbao.write("zoom/meeting", app_secret)
    openbao.write("sdksign/grants", first, field="key")
    path = write_config(tmp_path, openbao)
    path.write_text(path.read_text() + '\n[grants]\nkey_vault = "secret/data/sdksign/grants#key"\n')
    config = load(path, openbao.reader_token)
    assert config.grants.key == base64.b64decode(first) and config.grants.previous_keys == ()
    assert first not in repr(config.grants)
    openbao.write("sdksign/grants", second, field="key")  # a rotation: a new version
    rotated = vault_refreshed(config).grants
    assert rotated.key == base64.b64decode(second)
    assert rotated.previous_keys == (base64.b64decode(first),)  # still opens the old seals
    openbao.write("sdksign/grants", "not-a-key!", field="key")
    message = refusal(path, openbao.reader_token, first, second)
    assert message.startswith("[grants] key_vault secret/data/sdksign/grants#key")
    assert "not base64" in message
