"""The `sdksign` command's exit statuses, and a failed call told in its own words.

The server names request fields by their proto paths (`meeting.role`); the command
says which flag that is (`--role`), and for a connection that failed, what may help.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

import grpc

from ._errors import SdkSignError


class Exit(enum.IntEnum):
    """What the command's exit status says."""

    OK = 0
    INVALID = 1  # verify: the token has problems
    USAGE = 2  # a bad flag, configuration or install; serve could not start
    REFUSED = 3  # the server answered with an error
    UNREACHABLE = 4  # no answer from the server


EXIT_STATUSES = """exit status:
  0  done (verify: the token is valid)
  1  verify: the token is invalid; its problems are printed
  2  usage: a bad flag, configuration or install; serve could not start
  3  refused by the server: an invalid request, unauthenticated, permission denied,
     rate limited
  4  unreachable: no server answered (none running, a wrong --target, TLS on one side
     only, no answer in time), or, for --start-as, Zoom's API did not answer the server"""

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def exit_status(error: SdkSignError) -> Exit:
    return Exit.UNREACHABLE if error.code in _UNREACHABLE else Exit.REFUSED


# Proto paths, and the proto's enum names, as the command's flags and values say them.
_SAID = {
    "meeting.meeting_number": "--meeting-number",
    "meeting.role": "--role",
    "video.session_name": "--session",
    "video.role": "--role",
    "expected_meeting_number": "--expect-meeting",
    "start_as": "--start-as",
    "ROLE_PARTICIPANT": "participant",
    "ROLE_HOST": "host",
}
# Short names that are words too: replaced only where a field is named ("ttl: ...").
_FIELDS = {"ttl": "--ttl", "app": "--app"}
_PATHS = re.compile(r"\b(" + "|".join(re.escape(p) for p in _SAID) + r")\b")
_NAMED = re.compile(r"(?:^|(?<=: )|(?<=; ))(" + "|".join(_FIELDS) + r")(?=: )")


def in_flags(message: str) -> str:
    """`message` with the request fields it names written as this command's flags."""
    message = _PATHS.sub(lambda m: _SAID[m[1]], message)
    return _NAMED.sub(lambda m: _FIELDS[m[1]], message)


def hint(
    error: SdkSignError,
    target: str,
    tls: bool,
    timeout: float,
    each_address: Sequence[str] = (),
) -> str | None:
    """What may help when a call to `target` (over TLS or not, with a deadline of `timeout`
    seconds) failed as `error` did. `each_address` holds what each of the target's addresses
    said when tried alone (see tries_each_address): gRPC's message tells only the last one's."""
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"no answer from {target} within {timeout:g} s: the server may be overloaded or "
            "stuck, or something on the way drops the traffic; --timeout waits longer"
        )
    if error.code != grpc.StatusCode.UNAVAILABLE or error.message.startswith(ZOOM_SAID):
        return None  # the server answered: Zoom's API, behind it, did not (a host start)
    said = [error.message, *each_address]
    for advice in (_resolving, _tls_problem):
        found = advice(said, target, tls)
        if found:
            return found
    if all(_REFUSED in message for message in said):
        return f"no server listens at {target}: is --target right?"
    return f"no answer from {target}: is the server running there, and is --target right?"


# How the server begins an UNAVAILABLE of Zoom's API (a host start's ZAK).
ZOOM_SAID = "Zoom's API"
# gRPC's words for a port nobody listens on.
_REFUSED = "Connection refused"


def tries_each_address(error: SdkSignError) -> bool:
    """Whether to try each of the target's addresses alone: gRPC's message tells only what the
    last one said, and "nobody listens" at one (localhost's ::1, say) may hide what another
    (127.0.0.1) said, such as a TLS handshake that failed."""
    return error.code == grpc.StatusCode.UNAVAILABLE and _REFUSED in error.message


def _resolving(said: Sequence[str], target: str, tls: bool) -> str | None:
    if not any("errors resolving" in message for message in said):
        return None
    host = target.rpartition(":")[0]
    return (
        f"the host {host!r} of --target could not be resolved: is it spelled right, and does "
        "this machine's DNS know it?"
    )


def _tls_problem(said: Sequence[str], target: str, tls: bool) -> str | None:
    """The hint for the first TLS problem among `said`, if any."""
    if any("Socket closed" in message for message in said):
        if not tls:
            return (
                f"the server at {target} may use TLS: pass --tls (a certificate the system "
                "trusts) or --ca-file (the CA that signed its certificate)"
            )
        return f"the server at {target} may want a client certificate: --cert-file, --key-file"
    if not tls:
        return None
    if any("WRONG_VERSION_NUMBER" in message for message in said):
        return f"the server at {target} may not use TLS: leave out --tls, --ca-file and --cert-file"
    if any("CERTIFICATE_VERIFY_FAILED" in message for message in said):
        return (
            f"the certificate of the server at {target} is not signed by the CA of --ca-file "
            "(with --tls: one the system trusts), or does not name the host of --target"
        )
    if any("security handshaker" in message for message in said):
        return "gRPC could not use the TLS files: is --key-file the key of --cert-file?"
    return None
