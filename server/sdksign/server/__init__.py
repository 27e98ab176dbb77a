"""sdksign.server: the SignatureService server and the pure logic behind it.

A Sign call goes proto -> _service.SignatureService.Sign -> _claims.mint ->
_tokens.encode; a Verify call goes _service -> _diagnose.diagnose. Zoom's token
rules, which both read, are in _zoom.

`python -m sdksign.server` runs the `sdksign` command (__main__), which a client-only
install (no server extra: no msgspec, structlog...) runs too: so the names below are
imported when first used, not with the package, and `serve` there says what to install.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._claims import Minted, mint
    from ._config import App, Config, ConfigError, load_config
    from ._diagnose import Diagnosis, Problem, ProblemCode, TokenKind, diagnose
    from ._errors import FailedPrecondition, FieldViolation, InvalidArgument, RequestError
    from ._tokens import encode, fingerprint

# Where each of the package's names lives.
_HOMES = {
    **dict.fromkeys(("Minted", "mint"), "_claims"),
    **dict.fromkeys(("App", "Config", "ConfigError", "load_config"), "_config"),
    **dict.fromkeys(("Diagnosis", "Problem", "ProblemCode", "TokenKind", "diagnose"), "_diagnose"),
    **dict.fromkeys(
        ("FailedPrecondition", "FieldViolation", "InvalidArgument", "RequestError"), "_errors"
    ),
    **dict.fromkeys(("encode", "fingerprint"), "_tokens"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{home}", __name__), name)


__all__ = [
    "App",
    "Config",
    "ConfigError",
    "Diagnosis",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "Minted",
    "Problem",
    "ProblemCode",
    "RequestError",
    "TokenKind",
    "diagnose",
    "encode",
    "fingerprint",
    "load_config",
    "mint",
]
