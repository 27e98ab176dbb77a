"""The apps whose secrets are in Vault: [vault] checked, secret_vault read.

config.load checks [vault] and each secret_vault with the rest of the file, and reads Vault
last (vault_refreshed), once all the rest is known to be valid: the only check over the
network. The server reads it again while serving, by the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from .credentials import file_text, one_of, secret_from_env
from .files import certificates, reason
from .keys import read_key
from .model import MAX_VAULT_REFRESH, MAX_VAULT_TIMEOUT, App, Config, GrantsSettings
from .schema import AppTable, VaultTable, parse_duration
from .urls import vault_address
from .vault import KvReader, KvRef, VaultError, VaultSettings, parse_reference
from .wording import NOT_SHOWN, may_be_secret, named, show

_VAULT = "[vault]"


def vault_app(table: AppTable, reference: str, where: str) -> App:
    """An app whose secrets are the versions of a KV v2 field, read once the file is checked."""
    if table.previous_secret_envs or table.previous_secret_files:
        raise ConfigError(
            f"{where}: previous_secret_envs and previous_secret_files go with secret_env or "
            f"secret_file; with secret_vault, earlier KV versions verify ({_VAULT} previous_versions)"
        )
    ref = parsed_reference(reference, where, "secret_vault")
    return App(name=table.name, kind=table.kind, sdk_key=table.sdk_key, secret=b"", vault=ref)


def parsed_reference(reference: str, where: str, key: str) -> KvRef:
    """The KV v2 field that `key` of `where` names; ConfigError when it names none."""
    ref = parse_reference(reference)
    if ref is None:
        shown = (
            f"({NOT_SHOWN})"
            if "/" not in reference or may_be_secret(reference)
            else show(reference)
        )
        raise ConfigError(
            f"{where}: {key} {shown} is not a KV version 2 field: write "
            "'<mount>/data/<path>#<field>', e.g. 'secret/data/zoom/meeting#secret'"
        )
    return ref


def vault_settings(
    table: VaultTable | None, folder: Path, environ: Mapping[str, str]
) -> VaultSettings | None:
    """[vault]: its address and durations checked, the token's variable read (its file is read
    on every pass)."""
    if table is None:
        return None
    address = vault_address(table.address)
    one_of(_VAULT, {"token_file": table.token_file, "token_env": table.token_env})
    token = None
    if table.token_env is not None:
        token = secret_from_env(table.token_env, environ, _VAULT).decode()
    ca_file = None
    if table.tls_ca_file is not None:
        if not address.startswith("https://"):
            raise ConfigError(f"{_VAULT} tls_ca_file needs an https:// address")
        ca_file = folder / table.tls_ca_file
        certificates(ca_file, "tls_ca_file", _VAULT)
    timeout = parse_duration(table.request_timeout, f"{_VAULT} request_timeout")
    if not 1 <= timeout <= MAX_VAULT_TIMEOUT:
        raise ConfigError(f"{_VAULT} request_timeout: from 1 s to {MAX_VAULT_TIMEOUT} s")
    refresh = parse_duration(table.refresh, f"{_VAULT} refresh")
    if refresh > MAX_VAULT_REFRESH:
        raise ConfigError(f"{_VAULT} refresh: at most {MAX_VAULT_REFRESH} s (0: only on SIGHUP)")
    return VaultSettings(
        address=address,
        token_file=None if table.token_file is None else folder / table.token_file,
        token_file_shown=_token_file_shown(table.token_file),
        token=token,
        ca_file=ca_file,
        timeout=timeout,
        refresh=refresh,
        previous_versions=table.previous_versions,
    )


def _token_file_shown(name: str | None) -> str:
    """How a message names token_file: as written when it has a folder (a token has none)
    and no piece of it looks like a secret."""
    if name is None or ("/" in name and not may_be_secret(name)):
        return show(name)
    return f"(the file named there; {NOT_SHOWN})"


def _vault_token(vault: VaultSettings) -> str:
    """The token: token_env's, read at load, or token_file's, read now."""
    if vault.token is not None:
        return vault.token
    assert vault.token_file is not None
    shown = f"{_VAULT} token_file {vault.token_file_shown}"
    try:
        return file_text(vault.token_file, shown, "token")
    except OSError as exc:
        raise ConfigError(f"{shown}: {reason(exc)}") from None


def vault_refreshed(config: Config) -> Config:
    """`config` with the secrets of its apps with secret_vault read again from Vault: the
    newest live version signs, up to previous_versions before it verify."""
    wanted = [
        (i, app)
        for i, app in enumerate(config.apps)
        if app.vault is not None or (app.s2s is not None and app.s2s.vault is not None)
    ]
    grant_key = config.grants.vault
    if not wanted and grant_key is None:
        return config
    vault = config.vault
    if vault is None:
        needs = "[grants] key_vault"
        if wanted:
            index, app = wanted[0]
            key = "secret_vault" if app.vault is not None else "s2s client_secret_vault"
            needs = f"{named('apps', index, app.name)}: {key}"
        raise ConfigError(f"{needs} needs a {_VAULT} table (address, and token_file or token_env)")
    try:
        reader = KvReader(vault, _vault_token(vault))
    except VaultError as exc:
        raise ConfigError(f"{_VAULT}: {exc}") from None
    apps = list(config.apps)
    grants = config.grants
    with reader:
        for index, app in wanted:
            apps[index] = _app_read(reader, index, app)
        if grant_key is not None:
            try:
                read = reader.versions(grant_key)
            except VaultError as exc:
                raise ConfigError(f"[grants] key_vault {grant_key}: {exc}") from None
            grants = vault_keys(grants, read.newest, read.previous)
    return replace(config, apps=tuple(apps), grants=grants)


def _app_read(reader: KvReader, index: int, app: App) -> App:
    """`app` with its secret's versions, and its S2S client secret's newest, read from Vault."""
    where = named("apps", index, app.name)
    if app.vault is not None:
        try:
            read = reader.versions(app.vault)
        except VaultError as exc:
            raise ConfigError(f"{where}: secret_vault {app.vault}: {exc}") from None
        app = replace(
            app,
            secret=read.newest,
            previous_secrets=read.previous,
            vault_skipped=read.skipped,
            secrets_created=read.created,
        )
    s2s = app.s2s
    if s2s is not None and s2s.vault is not None:
        try:
            newest = reader.versions(s2s.vault).newest  # an old client secret is of no use
        except VaultError as exc:
            raise ConfigError(f"{where} s2s: client_secret_vault {s2s.vault}: {exc}") from None
        app = replace(app, s2s=replace(s2s, client_secret=newest))
    return app


def vault_keys(
    settings: GrantsSettings, newest: bytes, previous: tuple[bytes, ...]
) -> GrantsSettings:
    """`settings` with the key read from key_vault: its newest version seals, the previous
    ones (and previous_key_envs) still open."""
    where = f"[grants] key_vault {settings.vault}"
    return replace(
        settings,
        key=read_key(newest, where),
        previous_keys=(*(read_key(old, where) for old in previous), *settings.previous_keys),
    )
