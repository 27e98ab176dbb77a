"""Serving: build the grpc.aio server, listen, and stop gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc

from ._config import Config
from ._rpc import LoggedServicer
from ._service import SignatureService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SignatureService"].full_name
# Requests are small: a token is at most 8 KiB. Anything far larger is refused by gRPC itself.
MAX_MESSAGE_BYTES = 64 * 1024

log = structlog.get_logger("sdksign")


class ListenError(Exception):
    """The listen address cannot be bound."""


def build_server(
    config: Config, reuse_port: bool = False
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A server with SignatureService, per-service health and reflection (not yet listening).

    `reuse_port` lets several worker processes listen on one port; without it a port
    that is taken fails loudly.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    pb_grpc.add_SignatureServiceServicer_to_server(
        LoggedServicer(
            SignatureService(config), pb.DESCRIPTOR.services_by_name["SignatureService"]
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(
        LoggedServicer(health_servicer, health_pb2.DESCRIPTOR.services_by_name["Health"]), server
    )
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


def run(config: Config, listen: str, reuse_port: bool = False) -> None:
    """Serve on uvloop's event loop where it is installed (it is with the server extra on
    Linux and macOS), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config, listen, reuse_port))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, listen, reuse_port))


async def serve(config: Config, listen: str, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then let RPCs in flight finish within the grace period."""
    server, health_servicer = build_server(config, reuse_port)
    port = bind(server, listen)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = listen.rsplit(":", 1)[0]
    log.info(
        "listening",
        address=f"{host}:{port}",
        pid=os.getpid(),
        config=config.source,
        apps=[f"{a.name} ({a.kind}, sdk key {a.sdk_key})" for a in config.apps],
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP would end the process by default; configuration is read once, at start-up.
    loop.add_signal_handler(signal.SIGHUP, lambda: log.warning("SIGHUP ignored: restart to reload"))
    await stop.wait()

    log.info("shutting down", grace_seconds=config.shutdown_grace)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(config.shutdown_grace)
    log.info("stopped")
