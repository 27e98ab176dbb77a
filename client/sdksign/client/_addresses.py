"""Each of a target's addresses tried alone, for what each says when a call failed.

gRPC's message for a failed connection tells only what the last address tried said:
for `localhost` that may be ::1 refusing (the server listens on 127.0.0.1 only),
while 127.0.0.1 failed its TLS handshake, which is what would help.
"""

from __future__ import annotations

import ipaddress
import socket

import grpc

# A call any gRPC server answers somehow (a server without health checks: UNIMPLEMENTED);
# only UNAVAILABLE, no connection, counts here. Its request, b"", is an empty message.
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def each_address(
    target: str, credentials: grpc.ChannelCredentials | None, timeout: float
) -> list[str]:
    """What each address of `target` (HOST:PORT) said when it could not be reached: gRPC's
    message, one per address that failed. Empty when the host is an IP address (gRPC's
    message told it) or cannot be resolved."""
    host, _, port = target.rpartition(":")
    name = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(name)
        return []
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return []
    addresses = dict.fromkeys(str(info[4][0]) for info in found)
    said = (_tried(a, port, name, target, credentials, timeout) for a in addresses if "%" not in a)
    return [message for message in said if message]


def _tried(
    address: str,
    port: str,
    name: str,
    target: str,
    credentials: grpc.ChannelCredentials | None,
    timeout: float,
) -> str | None:
    """gRPC's message when `address` alone could not be reached; None when it could. Over
    TLS the server's certificate is checked against `name`, as the call to `target` did."""
    uri = f"ipv6:[{address}]:{port}" if ":" in address else f"ipv4:{address}:{port}"
    options = [("grpc.enable_retries", 0), ("grpc.default_authority", target)]
    channel = (
        grpc.insecure_channel(uri, options=options)
        if credentials is None
        else grpc.secure_channel(
            uri, credentials, options=[*options, ("grpc.ssl_target_name_override", name)]
        )
    )
    with channel:
        try:
            channel.unary_unary(_HEALTH_CHECK)(b"", timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                return str(error.details())
    return None
