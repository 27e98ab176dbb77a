"""SdkSignError: a failed call, with the status code and the fields the server named."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

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


def from_rpc_error(error: grpc.RpcError) -> SdkSignError:
    """Build an SdkSignError from a failed call; field violations need googleapis-common-protos.

    Only grpcio and protobuf are required: without googleapis-common-protos the
    violations are left empty, and the message, which lists them too, remains.
    """
    code = error.code()
    message = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in message:
        message = (
            f"{message}: the request is larger than the {MAX_MESSAGE_BYTES} bytes the server "
            "takes (a Zoom SDK token is a few KB at most)"
        )
    return SdkSignError(code, message, _violations(error.trailing_metadata()))


# How gRPC refuses a message over its receiver's limit ("... (1048580 vs. 65536)").
_TOO_LARGE = "Received message larger than max"


def _violations(trailers: object) -> list[FieldViolation]:
    try:
        from google.rpc import error_details_pb2, status_pb2
    except ImportError:
        return []
    for key, value in trailers or ():  # type: ignore[attr-defined]
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        found = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                found += [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
        return found
    return []
