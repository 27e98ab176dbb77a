"""What the schema refuses, in our words: one line naming the table, the key and what it
allows.

msgspec's own message is never shown (it may quote a value, and a value may be a secret
written in the wrong place): only the path at its end is read, " - at `$.apps[0].kind`",
and the message is written from the document as it was.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import msgspec

from ..errors import ConfigError
from ..zoom.rules import SDKS
from .model import (
    MAX_BURST,
    MAX_PREVIOUS_VERSIONS,
    MAX_RATE,
    MAX_STORE_TIMEOUT,
    MAX_ZOOM_TIMEOUT,
    StoreError,
)
from .schema import (
    LOG_LEVELS,
    NOT_A_DURATION,
    TABLES,
    CallerTable,
    ConfigFile,
    RateLimitsTable,
    keys,
)
from .urls import STORE_URL, VAULT_ADDRESS
from .wording import named, show

# What each key allows, as the one-line message for a value the schema refuses: {where} is
# its table, {value} the value as written (cut short), {least} the least burst.
_REQUIRED = "{where}: {key} is required (a non-empty string)"
_STRING = "{where}: {key} must be a non-empty string"
_STRINGS = "{where}: {key} must be a list of non-empty strings"
_DURATION = "{where} {key}: {value} " + NOT_A_DURATION
ALLOWED: dict[str, str] = {
    "listen": "{where} listen: must be a string HOST:PORT",
    "admin_listen": "{where} admin_listen: must be a string HOST:PORT",
    "clock_skew": _DURATION,
    "drain": _DURATION,
    "shutdown_grace": _DURATION,
    "log_level": "{where} log_level: {value} is not one of " + ", ".join(LOG_LEVELS),
    "trace_meeting_numbers": "{where} trace_meeting_numbers: {value} is not true or false",
    "tls_cert_file": _STRING,
    "tls_key_file": _STRING,
    "tls_client_ca_file": _STRING,
    "name": _REQUIRED,
    "kind": _REQUIRED,  # or _NOT_AN_SDK
    "sdk_key": _REQUIRED,
    "secret_env": _STRING,
    "secret_file": _STRING,
    "previous_secret_envs": _STRINGS,
    "previous_secret_files": _STRINGS,
    "apps": _STRINGS,
    "roles": _STRINGS,
    "max_ttl": "{where}: max_ttl: {value} " + NOT_A_DURATION,
    "meetings": _STRINGS,
    "sessions": _STRINGS,
    "verify": "{where}: verify must be true or false",
    "verify_apps": _STRINGS,
    "rate": "{where}: rate must be a number of requests per second from 1/86400 (one a day) "
    f"to {MAX_RATE:g}",
    "burst": f"{{where}}: burst must be a whole number of requests from {{least}} to {MAX_BURST}",
    "token_sha256": "{where}: token_sha256 must be 64 hex digits (sha256sum of the token, "
    'e.g. printf %s "$TOKEN" | sha256sum)',
    "cert_identity": "{where}: cert_identity must be a URI SAN (spiffe://...), a DNS SAN or a CN",
    "store": "{where}: store must be " + STORE_URL,
    "username": _STRING,
    "password_env": _STRING,
    "password_file": _STRING,
    "tls_ca_file": _STRING,
    "timeout": f"{{where}}: timeout must be a number of seconds above 0 and at most {MAX_STORE_TIMEOUT:g}",
    "on_store_error": "{where}: on_store_error {value} is not one of "
    + ", ".join(get_args(StoreError)),
    "secret_vault": _STRING,
    "address": VAULT_ADDRESS,
    "token_file": _STRING,
    "token_env": _STRING,
    "request_timeout": _DURATION,
    "refresh": _DURATION,
    "previous_versions": "{where}: previous_versions must be a whole number from 0 to "
    + str(MAX_PREVIOUS_VERSIONS),
    "start_as": _STRINGS,
    "on_behalf_of": _STRINGS,
    "grants": "{where}: grants must be true or false, or the [grants] table",
    "key_env": _STRING,
    "key_file": _STRING,
    "key_vault": _STRING,
    "previous_key_envs": _STRINGS,
    "s2s": "{where}: s2s must be a table: [apps.s2s] with account_id, client_id and one of "
    "client_secret_env, client_secret_file and client_secret_vault",
    "account_id": _REQUIRED,
    "client_id": _REQUIRED,
    "client_secret_env": _STRING,
    "client_secret_file": _STRING,
    "client_secret_vault": _STRING,
    "oauth_url": "{where} oauth_url: must be a URL such as https://zoom.us",
    "api_url": "{where} api_url: must be a URL such as https://api.zoom.us",
}
# Where a key means something else in [zoom] than elsewhere.
_ZOOM_ALLOWED = {
    "timeout": f"{{where}} timeout: must be a number of seconds above 0 and at most {MAX_ZOOM_TIMEOUT:g}",
}
_NOT_AN_SDK = "{where}: kind {value} is not one of " + ", ".join(SDKS)
_NO_APPS = "no apps: add at least one [[apps]] table with name, kind, sdk_key, secret_env"
# Only if msgspec words its errors in a way this module does not know.
_TABLE_NAMES = "[server], [[apps]], [[callers]], [anonymous], [rate_limits], [vault], [zoom]"
_UNREADABLE = f"not a configuration file: tables {_TABLE_NAMES}"


def described(document: dict[str, Any]) -> ConfigFile:
    """The document as the schema's objects, or a ConfigError naming what it refused."""
    try:
        return msgspec.convert(document, type=ConfigFile)
    except msgspec.ValidationError as exc:
        at = _AT.search(str(exc))
        steps = [name or int(index) for name, index in _STEP.findall(at[1])] if at else []
        raise ConfigError(_refusal(document, steps)) from None


# The path that ends msgspec's message (a document-wide problem has none), and its steps.
_AT = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`\Z")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _refusal(document: dict[str, Any], steps: list[str | int]) -> str:
    """The message for what the schema refused at `steps`: the table, the key, what it allows."""
    match steps:
        case ["server" | "anonymous" | "rate_limits" | "vault" | "zoom" as name, *rest]:
            return _table_refusal(name, f"[{name}]", document[name], rest)
        case ["apps", int(index), "s2s", *_] if isinstance(
            document["apps"][index].get("s2s"), dict
        ):
            entry = document["apps"][index]
            where = f"{_entry_label('apps', index, entry)} s2s"
            return _table_refusal("s2s", where, entry["s2s"], steps[3:])
        case ["apps" | "callers" as name, int(index), *rest]:
            entry = document[name][index]
            return _table_refusal(name, _entry_label(name, index, entry), entry, rest)
        case ["apps"]:
            return _NO_APPS
        case ["callers"]:
            return "callers must be an array of tables: [[callers]]"
        case []:
            unknown = sorted(set(document) - keys(ConfigFile))
            if unknown:
                return f"unknown table or key {show(unknown[0])}; allowed: {_TABLE_NAMES}"
            if "apps" not in document:
                return _NO_APPS
    return _UNREADABLE


def _table_refusal(name: str, where: str, table: object, rest: list[str | int]) -> str:
    """What is wrong in `table` (the `name` table as written), `rest` the steps inside it."""
    if not isinstance(table, dict):
        return f"{where} must be a table"
    if rest and isinstance(rest[0], str):
        return _value_refusal(rest[0], where, table)
    schema = TABLES[name]
    unknown = sorted(set(table) - keys(schema))
    if "token" in unknown and schema is CallerTable:
        return f"{where}: tokens are never written inline; write token_sha256"
    if "client_secret" in unknown:
        return f"{where}: secrets are never written inline; use client_secret_env or client_secret_file"
    if "secret" in unknown:
        return f"{where}: secrets are never written inline; use secret_env or secret_file"
    if "password" in unknown and schema is RateLimitsTable:
        return f"{where}: passwords are never written inline; use password_env or password_file"
    if unknown:
        allowed = ", ".join(sorted(keys(schema)))
        return f"{where}: unknown key {show(unknown[0])}; allowed: {allowed}"
    missing = [f.name for f in msgspec.structs.fields(schema) if f.required and f.name not in table]
    return _value_refusal(missing[0], where, table) if missing else _UNREADABLE


def _value_refusal(key: str, where: str, table: dict[str, Any]) -> str:
    value = table.get(key)
    template = ALLOWED.get(key, "{where}: {key}: this value is not allowed")
    if where == "[zoom]":
        template = _ZOOM_ALLOWED.get(key, template)
    if key == "kind" and isinstance(value, str) and value.strip():
        template = _NOT_AN_SDK
    least = 1 if table.get("rate") else 0
    return template.format(where=where, key=key, value=show(value), least=least)


def _entry_label(array: str, index: int, entry: object) -> str:
    """apps[0] ('web'): an entry of [[apps]] or [[callers]], by its name when it has one."""
    name = entry.get("name") if isinstance(entry, dict) else None
    # An app is called by any string name, a caller only by a valid one (as they always were).
    if isinstance(name, str) and (array == "apps" or name.strip()):
        return named(array, index, name)
    return f"{array}[{index}]"
