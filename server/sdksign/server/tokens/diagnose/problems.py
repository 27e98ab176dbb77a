"""What Verify finds: the problems a token can have (ProblemCode), what the token is
(TokenKind), and the Diagnosis that holds them, with the proto's number for each name."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from sdksign.v1 import signature_service_pb2 as pb

from ...config import App
from ..signature import SignatureCheck


class ProblemCode(StrEnum):
    """What is wrong with a token: the proto's ProblemCode without its PROBLEM_CODE_ prefix."""

    NOT_A_JWT = "NOT_A_JWT"
    LEGACY_SIGNATURE = "LEGACY_SIGNATURE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED_ALGORITHM = "UNSUPPORTED_ALGORITHM"
    UNKNOWN_SDK_KEY = "UNKNOWN_SDK_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    MISSING_CLAIM = "MISSING_CLAIM"
    WRONG_CLAIM_TYPE = "WRONG_CLAIM_TYPE"
    TIMESTAMP_IN_MILLISECONDS = "TIMESTAMP_IN_MILLISECONDS"
    EXPIRED = "EXPIRED"
    ISSUED_IN_FUTURE = "ISSUED_IN_FUTURE"
    LIFETIME_TOO_SHORT = "LIFETIME_TOO_SHORT"
    LIFETIME_TOO_LONG = "LIFETIME_TOO_LONG"
    INVALID_ROLE = "INVALID_ROLE"
    KEY_MISMATCH = "KEY_MISMATCH"
    MEETING_MISMATCH = "MEETING_MISMATCH"
    INVALID_CLAIM = "INVALID_CLAIM"
    TOKEN_WRAPPED = "TOKEN_WRAPPED"  # noqa: S105 (a problem's name, not a token)
    SECRET_ENCODING = "SECRET_ENCODING"  # noqa: S105 (a problem's name, not a secret)
    DEPRECATED_CLAIM = "DEPRECATED_CLAIM"


class Severity(StrEnum):
    """How much a problem matters: the proto's Severity without its prefix, lower case."""

    ERROR = "error"  # the token is invalid
    WARNING = "warning"  # worth changing; the token stays valid


# The problems that leave a token valid; every other one is an error.
WARNINGS = frozenset({ProblemCode.DEPRECATED_CLAIM})


class TokenKind(StrEnum):
    """What a token is: the proto's TokenKind without its prefix, lower case; "" when unknown."""

    UNKNOWN = ""
    MEETING_WEB = "meeting_web"
    MEETING_NATIVE = "meeting_native"
    VIDEO = "video"
    LEGACY_SIGNATURE = "legacy_signature"


# The proto's numbers for each, worked out once (a name missing from the proto fails here).
PROBLEM_CODES = {
    code: cast(pb.ProblemCode, pb.ProblemCode.Value(f"PROBLEM_CODE_{code}")) for code in ProblemCode
}
TOKEN_KINDS = {
    kind: cast(pb.TokenKind, pb.TokenKind.Value(f"TOKEN_KIND_{kind.upper() or 'UNSPECIFIED'}"))
    for kind in TokenKind
}
SEVERITIES = {
    severity: cast(pb.Severity, pb.Severity.Value(f"SEVERITY_{severity.upper()}"))
    for severity in Severity
}
SIGNATURE_CHECKS = {
    check: cast(pb.SignatureCheck, pb.SignatureCheck.Value(f"SIGNATURE_CHECK_{check}"))
    for check in SignatureCheck
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a token: its code, how to fix it, the claim concerned."""

    code: ProblemCode
    message: str
    claim: str = ""

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code in WARNINGS else Severity.ERROR


@dataclass
class Diagnosis:
    """What Verify found."""

    problems: list[Problem] = field(default_factory=list)
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    app: App | None = None
    kind: TokenKind = TokenKind.UNKNOWN
    # What checking the signature found; the secret that made it (a fingerprint, never the
    # secret), or when none did, those tried.
    signature: SignatureCheck = SignatureCheck.NOT_CHECKED
    secret_fingerprint: str = ""
    tried_fingerprints: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """No problem is an error (warnings leave a token valid)."""
        return all(p.code in WARNINGS for p in self.problems)

    def add(self, code: ProblemCode, message: str, claim: str = "") -> None:
        self.problems.append(Problem(code, message, claim))
