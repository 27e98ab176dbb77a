"""gRPC's length-prefixed messages, and the trailers of a gRPC-web answer."""

from __future__ import annotations

import struct

TRAILER_FLAG = 0x80  # gRPC-web: the frame holds the trailers, not a message


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, big-endian length, bytes (gRPC-web
    frames a message the same way)."""
    return struct.pack(">BI", 0, len(message)) + message


def grpc_web_trailer(body: bytes, name: str) -> str | None:
    """A trailer from a gRPC-web body's trailer frame (flag 0x80)."""
    while len(body) >= 5:
        flags, length = struct.unpack(">BI", body[:5])
        chunk, body = body[5 : 5 + length], body[5 + length :]
        if flags & TRAILER_FLAG:
            for line in chunk.decode(errors="replace").split("\r\n"):
                key, _, value = line.partition(":")
                if key.strip().lower() == name:
                    return value.strip()
    return None
