"""SdkSignError: a failed call, with the status code and the fields the server named."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from ._limits import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class FieldViolation:
    """A request field the server refused, and what it allows."""

    field: str
    description: str


class SdkSignError(Exception):
    """A call failed: `code` is the gRPC status, `violations` the refused fields (if any)."""

    def __init__(
        self, code: grpc.StatusCode, message: str, violations: list[FieldViolation]
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = violations


# What each call's request holds, said when gRPC refuses one as larger than the server takes.
SIGN = "a Sign request is a few hundred bytes: a session name, for one, is at most 200 characters"
VERIFY = "a Zoom SDK token is a few KB at most"


def from_rpc_error(error: grpc.RpcError, request: str) -> SdkSignError:
    """Build an SdkSignError from a failed call; `request` (SIGN or VERIFY) says what the
    request holds, for one refused as too large. The refused fields come from the
    google.rpc.BadRequest of the status details (googleapis-common-protos)."""
    code = error.code()
    message = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in message:
        message = (
            f"{message}: the request is larger than the {MAX_MESSAGE_BYTES} bytes the server "
            f"takes ({request})"
        )
    return SdkSignError(code, message, _violations(error.trailing_metadata()))


# How gRPC refuses a message over its receiver's limit ("... (1048580 vs. 65536)").
_TOO_LARGE = "Received message larger than max"


def _violations(trailers: object) -> list[FieldViolation]:
    for key, value in trailers or ():  # type: ignore[attr-defined]
        if key != "grpc-status-details-bin":
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:  # not a google.rpc.Status: no fields to name
            return []
        found = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                found += [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
        return found
    return []
