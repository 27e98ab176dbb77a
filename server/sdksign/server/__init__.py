"""sdksign.server: the SignatureService server and the pure logic behind it.

A Sign call goes proto -> _service.SignatureService.Sign -> _claims.mint ->
_tokens.encode; a Verify call goes _service -> _diagnose.diagnose. Zoom's token
rules, which both read, are in _zoom.
"""

from ._claims import Minted, mint
from ._config import App, Config, ConfigError, load_config
from ._diagnose import Diagnosis, Problem, ProblemCode, TokenKind, diagnose
from ._errors import FailedPrecondition, FieldViolation, InvalidArgument, RequestError
from ._tokens import encode, fingerprint

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
