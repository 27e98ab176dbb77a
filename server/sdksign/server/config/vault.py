"""App secrets from Vault or OpenBao: the KV version 2 secrets engine.

`secret_vault = "secret/data/zoom/meeting#secret"` names a KV v2 secret (the mount
`secret`, the path `zoom/meeting`) and a field of it. Its versions are the app's
key rotation: the newest version that is neither deleted nor destroyed signs, and
up to `previous_versions` live versions before it still verify. The newest must be
readable; a previous one whose field is missing, not a string or empty is skipped,
and KvSecrets.skipped says why (never with a value).

hvac (the vault extra) is imported on first use: a server without it runs as before,
and a configuration that needs it gets one line saying so. Every failure here is a
VaultError of one line in this module's words, never hvac's or requests' own (they
quote URLs and answers): no token and no secret ever reaches a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ..observe import metrics
from .wording import NOT_SHOWN, may_be_secret

if TYPE_CHECKING:
    import hvac


class VaultError(Exception):
    """Vault did not give the secrets; the message is one line, with no token or secret."""


@dataclass(frozen=True)
class KvRef:
    """A field of a KV v2 secret: `<mount>/data/<path>#<field>`."""

    mount: str
    path: str
    field: str

    def __str__(self) -> str:
        """The reference for a message: not shown when a piece of it looks like a secret
        written there by mistake (as its path or its field)."""
        whole = f"{self.mount}/data/{self.path}#{self.field}"
        return f"(the reference written there; {NOT_SHOWN})" if may_be_secret(whole) else whole

    @property
    def field_shown(self) -> str:
        return "the field written there" if may_be_secret(self.field) else repr(self.field)

    @property
    def paths_shown(self) -> str:
        """The two paths a reader's policy must allow, for a message (or that they are
        not shown)."""
        if may_be_secret(f"{self.mount}/{self.path}"):
            return f"the reference's data/ and metadata/ paths ({NOT_SHOWN})"
        return f"{self.mount}/data/{self.path} and {self.mount}/metadata/{self.path}"


# The mount ends at the first "/data/"; segments hold no whitespace and no '#'.
_REFERENCE = re.compile(r"(?P<mount>[^\s#]+?)/data/(?P<path>[^\s#]+)#(?P<field>[^#]*[^\s#][^#]*)")


def parse_reference(text: str) -> KvRef | None:
    """The KV v2 field `text` names; None when it is not `<mount>/data/<path>#<field>`."""
    match = _REFERENCE.fullmatch(text)
    if match is None:
        return None
    segments = [*match["mount"].split("/"), *match["path"].split("/")]
    if any(segment in ("", ".", "..") for segment in segments):
        return None
    return KvRef(match["mount"], match["path"], match["field"])


@dataclass(frozen=True)
class VaultSettings:
    """[vault]: where Vault is, how this server proves who it is, and how it reads."""

    address: str  # http(s)://HOST:PORT
    # The token's file, read again on every pass (Vault Agent or bao agent renews it) ...
    token_file: Path | None = None
    token_file_shown: str = ""  # how a message names it (not at all when it may be a token)
    # ... or the token itself, from token_env, read at load.
    token: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # PEM: the CA of Vault's certificate (https)
    timeout: int = 5  # seconds for each request
    refresh: int = 300  # seconds between reads while serving; 0: only on SIGHUP
    previous_versions: int = 1


# --- the answers this module reads (msgspec ignores the rest) -------------------------------


class _Version(msgspec.Struct, frozen=True):
    deletion_time: str = ""  # RFC 3339; "" when not deleted, a future time when scheduled
    destroyed: bool = False
    created_time: str = ""  # RFC 3339


VersionNumber = Annotated[str, msgspec.Meta(pattern=r"\A[1-9][0-9]{0,9}\Z")]


class _Metadata(msgspec.Struct, frozen=True):
    versions: dict[VersionNumber, _Version]


class _MetadataAnswer(msgspec.Struct, frozen=True):
    data: _Metadata


class _SecretData(msgspec.Struct, frozen=True):
    data: dict[str, Any]


class _SecretAnswer(msgspec.Struct, frozen=True):
    data: _SecretData


def live_versions(versions: Mapping[str, _Version], now: datetime, count: int) -> list[int]:
    """The numbers of the newest `count` versions neither destroyed nor deleted by `now`,
    newest first. A deletion time that is not RFC 3339 is a VaultError."""
    live = []
    for number, version in versions.items():
        if version.destroyed:
            continue
        if version.deletion_time:
            try:
                deleted = datetime.fromisoformat(version.deletion_time)
            except ValueError:
                raise VaultError(_UNEXPECTED) from None
            if deleted <= now:
                continue
        live.append(int(number))
    return sorted(live, reverse=True)[:count]


_UNEXPECTED = "Vault's answer is not that of a KV version 2 secret"


def field_secret(answer: object, ref: KvRef, version: int) -> bytes:
    """The field `ref` names in the answer to a read of `version`, as bytes (stripped)."""
    try:
        data = msgspec.convert(answer, _SecretAnswer).data.data
    except msgspec.ValidationError:
        raise VaultError(f"version {version}: {_UNEXPECTED}") from None
    value = data.get(ref.field)
    if not isinstance(value, str):
        what = "no field" if value is None else "a field that is not a string,"
        raise VaultError(f"version {version} has {what} {ref.field_shown}")
    if not value.strip():
        raise VaultError(f"version {version} has an empty {ref.field_shown}")
    return value.strip().encode()


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KvSecrets:
    """One read of a KV v2 field: the newest live version's value (it signs), those of the
    previous versions that could be read (they verify, newest first), and why each other
    previous version could not be (e.g. "version 2 has no field 'secret'"). `created`:
    when each of newest and previous was written (epoch seconds; None if not said)."""

    newest: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)
    skipped: tuple[str, ...] = ()
    created: tuple[float | None, ...] = ()


class KvReader:
    """One connection's worth of reads from Vault (a context manager that closes it)."""

    def __init__(self, settings: VaultSettings, token: str) -> None:
        try:
            import hvac
        except ImportError:
            raise VaultError(
                "secret_vault needs hvac, the vault extra: pip install 'sdksign[vault]'"
            ) from None
        self._settings = settings
        self._client: hvac.Client = hvac.Client(
            url=settings.address,
            token=token,
            verify=str(settings.ca_file) if settings.ca_file else True,
            timeout=settings.timeout,
            # A redirect would carry the token's header to wherever it points.
            allow_redirects=False,
        )

    def __enter__(self) -> KvReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.adapter.close()

    def versions(self, ref: KvRef) -> KvSecrets:
        """The secrets of the live versions of `ref`: the newest, which must be readable,
        and those of up to previous_versions before it that are (the others skipped)."""
        count = 1 + self._settings.previous_versions
        try:
            metadata = self._client.secrets.kv.v2.read_secret_metadata(
                path=ref.path, mount_point=ref.mount
            )
            versions = _versions_of(metadata)
            numbers = live_versions(versions, datetime.now(UTC), count)
            if not numbers:
                raise VaultError("every version is deleted or destroyed")
            newest, *earlier = numbers
            return self._read(ref, newest, earlier, versions)
        except VaultError:
            metrics.vault_error("other")
            raise
        except Exception as exc:  # hvac's and requests' errors, in this module's words
            metrics.vault_error(error_kind(exc))
            raise VaultError(problem(exc, self._settings, ref)) from None

    def _read(
        self, ref: KvRef, newest: int, earlier: list[int], versions: Mapping[str, _Version]
    ) -> KvSecrets:
        signing = self._version(ref, newest)
        previous, skipped, read = [], [], [newest]
        for number in earlier:
            try:
                previous.append(self._version(ref, number))
                read.append(number)
            except VaultError as exc:  # its content (Vault's own errors fail the whole read)
                skipped.append(str(exc))
        created = tuple(_epoch(versions[str(number)].created_time) for number in read)
        return KvSecrets(signing, tuple(previous), tuple(skipped), created)

    def _version(self, ref: KvRef, number: int) -> bytes:
        answer = self._client.secrets.kv.v2.read_secret_version(
            path=ref.path, version=number, mount_point=ref.mount, raise_on_deleted_version=True
        )
        return field_secret(answer, ref, number)


def _epoch(text: str) -> float | None:
    """An RFC 3339 time as epoch seconds; None when it is not one."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _versions_of(answer: object) -> dict[str, _Version]:
    try:
        return msgspec.convert(answer, _MetadataAnswer).data.versions
    except msgspec.ValidationError:
        raise VaultError(_UNEXPECTED) from None


# An errno's text in requests' and urllib3's messages, e.g. "[Errno 111] Connection refused".
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"\)\]]+)")


def error_kind(exc: Exception) -> str:
    """What kind of failure `exc` is, for the errors metric: timeout, connection, auth, other."""
    import requests
    from hvac import exceptions as hvac_errors

    match exc:
        case hvac_errors.Forbidden() | hvac_errors.Unauthorized():
            return "auth"
        case requests.exceptions.Timeout():
            return "timeout"
        case requests.exceptions.ConnectionError():  # TLS failures among them
            return "connection"
    return "other"


def problem(exc: Exception, settings: VaultSettings, ref: KvRef) -> str:
    """What went wrong with a read, in one line of our own words."""
    import requests
    from hvac import exceptions as hvac_errors

    at = f"Vault at {settings.address}"
    match exc:
        case hvac_errors.Forbidden() | hvac_errors.Unauthorized():
            # Short, so that a log line's field holds it whole; the paths to check come last.
            return (
                f"{at}: permission denied (the token is unknown or expired, or cannot read "
                f"{ref.paths_shown})"
            )
        case hvac_errors.InvalidPath():
            mount = "its mount" if may_be_secret(ref.mount) else repr(ref.mount)
            return f"{at} has no secret there (404; is {mount} a KV version 2 mount?)"
        case hvac_errors.VaultDown():
            return f"{at} is sealed or unavailable (503)"
        case hvac_errors.VaultError():
            return f"{at} answered an error ({type(exc).__name__})"
        case requests.exceptions.SSLError():
            return f"TLS with {at} failed (is [vault] tls_ca_file the CA of its certificate?)"
        case requests.exceptions.Timeout():
            return f"{at} did not answer within {settings.timeout} s"
        case requests.exceptions.ConnectionError():
            reason = _ERRNO.search(str(exc))
            said = reason[1] if reason else "the connection closed without an answer"
            return f"cannot reach {at}: {said}"
    return f"reading from {at} failed ({type(exc).__name__})"
