"""sdksign.server: the SignatureService server and the pure logic behind it.

A Sign call goes proto -> runtime.service.SignatureService.Sign -> tokens.mint.mint ->
zoom.jwt.encode; a Verify call goes runtime.service -> tokens.diagnose.check, which runs
tokens.diagnose.diagnose. Zoom's token rules, which both read, are in zoom.rules.

`python -m sdksign.server` runs the `sdksign` command (__main__), which a client-only
install (no server extra: no msgspec, structlog...) runs too: so the names below are
imported when first used, not with the package, and `serve` there says what to install.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import App, Config, load_config
    from .errors import (
        ConfigError,
        FailedPrecondition,
        FieldViolation,
        InvalidArgument,
        RequestError,
    )
    from .tokens.diagnose import diagnose
    from .tokens.diagnose.problems import Diagnosis, Problem, ProblemCode, TokenKind
    from .tokens.mint import Minted, mint
    from .zoom.jwt import encode, fingerprint

# Where each of the package's names lives.
_HOMES = {
    **dict.fromkeys(("Minted", "mint"), "tokens.mint"),
    **dict.fromkeys(("App", "Config", "load_config"), "config"),
    **dict.fromkeys(
        ("Diagnosis", "Problem", "ProblemCode", "TokenKind"), "tokens.diagnose.problems"
    ),
    "diagnose": "tokens.diagnose",
    **dict.fromkeys(
        ("ConfigError", "FailedPrecondition", "FieldViolation", "InvalidArgument", "RequestError"),
        "errors",
    ),
    **dict.fromkeys(("encode", "fingerprint"), "zoom.jwt"),
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
