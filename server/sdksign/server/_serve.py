"""Serving: build the grpc.aio server, listen, and stop gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

from ._config import Config
from ._rpc import RpcInterceptor
from ._service import SignatureService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SignatureService"].full_name
# Requests are small: a token is at most 8 KiB. Anything far larger is refused by gRPC itself.
MAX_MESSAGE_BYTES = 64 * 1024

log = structlog.get_logger("sdksign")


class ListenError(Exception):
    """The listen address cannot be bound."""


def build_server(config: Config) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A server with SignatureService, per-service health and reflection (not yet listening)."""
    server = grpc.aio.server(
        interceptors=[RpcInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_SignatureServiceServicer_to_server(SignatureService(config), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return server, health_servicer


def bind(server: grpc.aio.Server, listen: str) -> int:
    """Listen on `listen` (HOST:PORT, port 0 for any free one); return the port."""
    try:
        port: int = server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if not port:
        raise ListenError(f"cannot listen on {listen!r}: address in use, or not HOST:PORT")
    return port


async def serve(config: Config, listen: str) -> None:
    """Serve until SIGTERM or SIGINT, then let RPCs in flight finish within the grace period."""
    server, health_servicer = build_server(config)
    port = bind(server, listen)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = listen.rsplit(":", 1)[0]
    log.info(
        "listening",
        address=f"{host}:{port}",
        config=config.source,
        apps=[f"{a.name} ({a.kind}, sdk key {a.sdk_key})" for a in config.apps],
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down", grace_seconds=config.shutdown_grace)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(config.shutdown_grace)
    log.info("stopped")
