"""Every key that can hold a secret by mistake hides it: a secret pasted where a name, a
path, a field or a user belongs never reaches a start error (nor, since a reload reads the
file the same way and logs the same message, a "reload refused" line) or a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdksign.server import ConfigError, load_config
from sdksign.server.config.checks import config_warnings
from sdksign.server.config.wording import may_be_secret
from tests.certs import Authority

# The shapes of what gets pasted: a Zoom Client Secret (32 letters and digits), a
# token_urlsafe() secret, a Vault token, a hex key.
PASTED = (
    "Zq8xR2mK9vL4nB7cW1pT6yH3jF5gD0sA",
    "k3J9-xQ2_vL8mN4pR7sT1wY6zB0cD5fG8hJ2kL4nP6q",
    "hvs.CAESIJxk2l3m4n5o6p7q8r9sT0uV1wX2",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c",
)
APP = '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\n'
ENV = {"S": "s" * 32, "VAULT_TOKEN": "t" * 24, "REDIS_PASSWORD": "p" * 24}
# Nothing listens on port 1: a read from Vault or Redis fails at once.
VAULT = '[vault]\naddress = "http://127.0.0.1:1"\ntoken_env = "VAULT_TOKEN"\n'
STORE = '[rate_limits]\nstore = "redis://127.0.0.1:1"\n'

S2S = APP + 'secret_env = "S"\n[apps.s2s]\naccount_id = "a"\nclient_id = "c"\n'

CERT = Authority().issue("localhost", server=True).cert

# Each key that can hold a secret, with the secret (X) where its value goes.
WHERE = {
    "secret_env": APP + 'secret_env = "X"\n',
    "secret_file": APP + 'secret_file = "X"\n',
    "previous_secret_envs": APP + 'secret_env = "S"\nprevious_secret_envs = ["X"]\n',
    "previous_secret_files": APP + 'secret_env = "S"\nprevious_secret_files = ["X"]\n',
    "secret_vault (whole)": APP + 'secret_vault = "X"\n' + VAULT,
    "secret_vault (path)": APP + 'secret_vault = "secret/data/zoom/X#secret"\n' + VAULT,
    "secret_vault (field)": APP + 'secret_vault = "secret/data/zoom/meeting#X"\n' + VAULT,
    "secret_vault (mount)": APP + 'secret_vault = "X/data/zoom#secret"\n' + VAULT,
    "secret_vault (no field)": APP + 'secret_vault = "secret/data/X"\n' + VAULT,
    "[vault] token_env": APP
    + 'secret_vault = "s/data/z#f"\n[vault]\naddress = "http://127.0.0.1:1"\ntoken_env = "X"\n',
    "[vault] token_file": APP
    + 'secret_vault = "s/data/z#f"\n[vault]\naddress = "http://127.0.0.1:1"\ntoken_file = "X"\n',
    "[vault] address": APP
    + 'secret_vault = "s/data/z#f"\n[vault]\naddress = "https://u:X@vault.corp"\ntoken_env = "VAULT_TOKEN"\n',
    "[rate_limits] password_env": APP + 'secret_env = "S"\n' + STORE + 'password_env = "X"\n',
    "[rate_limits] password_file": APP + 'secret_env = "S"\n' + STORE + 'password_file = "X"\n',
    "[rate_limits] username": APP
    + 'secret_env = "S"\n'
    + STORE
    + 'username = "X"\npassword_env = "REDIS_PASSWORD"\n',
    "[rate_limits] store": APP
    + 'secret_env = "S"\n[rate_limits]\nstore = "redis://:X@127.0.0.1:1"\n',
    "[[callers]] token_sha256": APP
    + 'secret_env = "S"\n[[callers]]\nname = "c"\ntoken_sha256 = "X"\n',
    "[apps.s2s] client_secret_env": S2S + 'client_secret_env = "X"\n',
    "[apps.s2s] client_secret_file": S2S + 'client_secret_file = "X"\n',
    "[apps.s2s] client_secret_vault (whole)": S2S + 'client_secret_vault = "X"\n' + VAULT,
    "[apps.s2s] client_secret_vault (path)": S2S
    + 'client_secret_vault = "secret/data/zoom/X#secret"\n'
    + VAULT,
    "[zoom] api_url": APP + 'secret_env = "S"\n[zoom]\napi_url = "https://u:X@api.zoom.us"\n',
    "[zoom] oauth_url": APP + 'secret_env = "S"\n[zoom]\noauth_url = "https://u:X@zoom.us"\n',
    "[server] tls_key_file": APP
    + 'secret_env = "S"\n[server]\ntls_cert_file = "c.pem"\ntls_key_file = "X"\n',
}


@pytest.mark.parametrize("pasted", PASTED, ids=["zoom", "urlsafe", "vault-token", "hex"])
@pytest.mark.parametrize("key", list(WHERE))
def test_a_secret_in_any_secret_bearing_key_is_never_echoed(
    tmp_path: Path, key: str, pasted: str
) -> None:
    (tmp_path / "c.pem").write_bytes(CERT)
    path = tmp_path / "sdksign.toml"
    path.write_text(WHERE[key].replace("X", pasted))
    try:
        said = config_warnings(load_config(path, ENV))
    except ConfigError as exc:
        said = [str(exc)]
    text = "\n".join(said)
    assert key.split()[-1].strip("()") in text or "not shown" in text or said == [], text
    for piece in (pasted, pasted[:12], pasted[-12:]):
        assert piece not in text, text


@pytest.mark.parametrize(
    "name",
    ["secret/data/zoom/meeting#secret", "ZOOM_MEETING_SECRET", "zoom-prod", "kv1/data/zoom#f"],
)
def test_names_are_still_shown(name: str) -> None:
    assert not may_be_secret(name)
