"""The service's limits that a caller can check before calling, in one home.

The server reads them from here too (zoom.rules, tokens.diagnose, runtime.serve), so a client-only
install (no server extra) knows the same numbers.
"""

from __future__ import annotations

# A token's lifetime, exp - iat, in seconds: Zoom refuses less than 30 min and more than 48 h.
MIN_TTL = 1800
MAX_TTL = 172800
# What Sign gives when no lifetime is asked for.
DEFAULT_TTL = 7200

# Verify's longest token, in characters. A Zoom SDK token is a few hundred characters,
# a few KB at the very most.
MAX_TOKEN_LENGTH = 8192
# The largest request (and answer) the server takes, in bytes: gRPC itself refuses more.
MAX_MESSAGE_BYTES = 64 * 1024

# The longest drain ([server] drain, `sdksign serve --drain`) and shutdown grace, in seconds.
MAX_DRAIN = 3600


def too_long_token(length: int) -> str:
    """Why a token of `length` characters is refused (Verify's check, made before sending)."""
    return (
        f"has {length} characters; at most {MAX_TOKEN_LENGTH} are allowed "
        "(a Zoom SDK token is a few hundred characters, a few KB at most): pass the token alone"
    )
