"""The admin listener: Prometheus metrics and health over HTTP, apart from the gRPC port.

`--admin-listen HOST:PORT` (default 127.0.0.1:9464; [server] admin_listen) answers
GET /metrics (Prometheus' text format, or OpenMetrics when asked), GET /healthz/live
(200 while the process is up) and GET /healthz/ready (200 when every worker serves and
no drain has started; 503 with the reason otherwise); HEAD as GET, without the body.
Other paths are 404, other methods 405. When the server has TLS it is served with TLS
(the server's certificate), on loopback too; beyond loopback without it, not at all
unless --insecure. It asks for no client certificate: it answers only these GETs and
HEADs, and no secret or token is ever in a metric.

It runs in threads of the process that serves it (the one process, or the workers'
parent), so that it answers while the event loop is busy, and closes last, after the
drain and the grace period.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import structlog

from . import exposition

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..config import Tls

log = structlog.get_logger("sdksign")

# What a serving process says of itself (Readiness.set), as a worker's byte in WorkerStates.
STARTING, SERVING, DRAINING = 0, 1, 2
# The workers' bytes: a ctypes array in shared memory (multiprocessing's Array, lock=False),
# which the parent and each worker index and slice as a sequence of ints; their heartbeats
# likewise, a double each (time.monotonic(), one clock for every process on Linux).
States = Any
# How often a serving process's event loop proves it runs (Readiness.beat), in seconds.
HEARTBEAT_INTERVAL = 0.5
# A serving process whose event loop has not beaten for this long is not ready: it cannot
# answer. Its parent kills it later (runtime.restarts.KILL_AFTER).
SILENT_AFTER = 2.0
# How long a connection may take to send its request (and its TLS handshake), in seconds.
REQUEST_TIMEOUT = 10.0
# How often the accepting thread looks whether it is to stop (close() waits up to this long).
POLL_INTERVAL = 0.05


class AdminError(Exception):
    """The admin listener cannot start; the message is one line."""


class Readiness(Protocol):
    """What serve() tells of its state (STARTING, SERVING, DRAINING) and of its event loop
    (a beat every HEARTBEAT_INTERVAL while it runs), and the admin listener's address for its
    "listening" line."""

    address: str
    taken: str  # the default admin address, when another server had it (AdminServer)

    def set(self, state: int) -> None: ...

    def beat(self) -> None: ...


def _silence(last_beat: float, now: float) -> str | None:
    """Why a serving process whose loop last beat at `last_beat` is not ready (None: it is)."""
    silent = now - last_beat
    if silent < SILENT_AFTER:
        return None
    return f"its event loop has not run for {silent:.1f} s"


class LocalReadiness:
    """The readiness of a server of one process: what its serve() says, read by the handler
    (in a thread of its own, so that it answers while the event loop is stuck)."""

    def __init__(self) -> None:
        self.state = STARTING
        self.address = ""
        self.last_beat = 0.0
        self.taken = ""

    def set(self, state: int) -> None:
        self.beat()
        self.state = state

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def not_ready(self) -> str | None:
        """Why /healthz/ready is not 200; None when it is."""
        if self.state == SERVING:
            silence = _silence(self.last_beat, time.monotonic())
            return None if silence is None else f"stuck: {silence}"
        return "draining: stopping" if self.state == DRAINING else "starting: not serving yet"


class WorkerReadiness:
    """A worker's side of WorkerStates: its serve() writes its state to its byte, and its
    heartbeat to its double."""

    def __init__(
        self, states: States, heartbeats: States, index: int, address: str, taken: str = ""
    ) -> None:
        self._states = states
        self._heartbeats = heartbeats
        self._index = index
        self.address = address  # the parent's admin listener, for the "listening" line
        self.taken = taken

    def set(self, state: int) -> None:
        self.beat()  # first: a worker just serving is not taken for a silent one
        self._states[self._index] = state

    def beat(self) -> None:
        self._heartbeats[self._index] = time.monotonic()


class WorkerStates:
    """The parent's view of its workers: a byte each in shared memory, which each worker
    sets (WorkerReadiness), with its heartbeat; whether a drain has started (`stopping`,
    set by the parent's signal handler); and the workers that died and wait to be started
    again (`waiting`: index to when, set by the parent, runtime.restarts)."""

    def __init__(self, states: States, heartbeats: States | None = None) -> None:
        self.states = states
        self.heartbeats = [0.0] * len(states) if heartbeats is None else heartbeats
        self.stopping = False
        self.waiting: dict[int, float] = {}

    def silent_for(self, index: int, now: float) -> float | None:
        """How long serving (or draining) worker `index`'s event loop has not beaten; None when
        it is not serving yet."""
        if self.states[index] not in (SERVING, DRAINING):
            return None
        return now - float(self.heartbeats[index])

    def not_ready(self) -> str | None:
        """Why /healthz/ready is not 200; None when it is."""
        if self.stopping:
            return "draining: stopping"
        now = time.monotonic()
        for index, state in enumerate(self.states[:]):
            if (due := self.waiting.get(index)) is not None:
                return (
                    f"restarting: worker {index} died; started again in {max(due - now, 0):.1f} s"
                )
            if state == DRAINING:
                return f"draining: worker {index} is stopping"
            if state != SERVING:
                return f"starting: worker {index} is not serving yet"
            if silence := _silence(float(self.heartbeats[index]), now):
                return f"stuck: worker {index}: {silence}"
        return None


class AdminServer:
    """The admin listener, bound at once (AdminError when it cannot be); serving from
    start() to close(). `address` is where it listens (port 0: the port chosen).

    With `give_way` (the address is the default, which nobody asked for), a port in use
    means another server on this host (`make run`): it listens on a free port of the same
    host instead, and `taken` names the address it could not have.
    """

    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        not_ready: Callable[[], str | None],
        tls: Tls | None = None,
        give_way: bool = False,
    ) -> None:
        family, address = _address(listen)
        self.taken = ""
        try:
            server = _Server(address, _Handler, family)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            if not (in_use and give_way):
                raise AdminError(
                    f"cannot serve the admin listener on {listen!r}: "
                    f"{'address in use' if in_use else exc.strerror} "
                    "(--admin-listen HOST:PORT: another port; port 0: any free one)"
                ) from None
            self.taken = listen
            server = _Server((address[0], 0, *address[2:]), _Handler, family)
        if tls is not None:
            # The handshake happens in each connection's own thread (_Handler.setup), so
            # that a slow client does not hold up the others.
            server.socket = _tls_context(tls).wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        server.registry = registry
        server.not_ready = not_ready
        self._server = server
        host, port = server.socket.getsockname()[:2]
        self.address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(POLL_INTERVAL,),
            name="sdksign-admin",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop taking connections and close the socket (requests under way end alone)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> AdminServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextlib.contextmanager
def alone(listen: str, tls: Tls | None, give_way: bool = False) -> Iterator[LocalReadiness]:
    """The admin listener of a server of one process on `listen`, serving while inside (and
    through the drain); what the server says of its state goes to the readiness yielded.
    AdminError when it cannot listen (`give_way`: as AdminServer)."""
    readiness = LocalReadiness()
    state = exposition.ServerState(readiness.not_ready)
    registry = exposition.registry(state)
    with AdminServer(listen, registry, readiness.not_ready, tls, give_way) as admin:
        readiness.address, readiness.taken = admin.address, admin.taken
        admin.start()
        yield readiness


def _address(listen: str) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The socket family and address of HOST:PORT (IPv6 in brackets)."""
    host, _, port = listen.rpartition(":")
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (ValueError, OSError, IndexError) as exc:
        raise AdminError(f"cannot serve the admin listener on {listen!r}: {exc}") from None
    return family, address


class _Server(ThreadingHTTPServer):
    """An HTTP server of one address family, with TLS when given."""

    daemon_threads = True
    registry: CollectorRegistry
    not_ready: Callable[[], str | None]

    def __init__(
        self,
        address: tuple[Any, ...],
        handler: type[BaseHTTPRequestHandler],
        family: socket.AddressFamily,
    ) -> None:
        self.address_family = family  # before the base class makes the socket
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind, without HTTPServer's reverse DNS lookup of the address (it can take seconds)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (a TLS handshake, a client gone): a debug line only."""
        log.debug("admin connection failed", peer=str(client_address))


def _tls_context(tls: Tls) -> ssl.SSLContext:
    """A server TLS context with the gRPC listener's certificate and key (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with _pem_file(tls.certificate_chain) as cert, _pem_file(tls.private_key) as key:
            context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise AdminError(
            f"cannot serve the admin listener with TLS: {exc.strerror or exc}"
        ) from None
    return context


@contextlib.contextmanager
def _pem_file(pem: bytes) -> Iterator[str]:
    """A path that holds `pem` while inside: a memory file where there are (Linux), so that
    the key is never written to a disk; else a file in a folder of this user's alone."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("sdksign-admin-pem")
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="sdksign-admin-") as folder:
        path = Path(folder) / "pem"
        path.write_bytes(pem)
        yield str(path)


class _Handler(BaseHTTPRequestHandler):
    """GET (or HEAD) /metrics, /healthz/live, /healthz/ready; 404 elsewhere, 405 for other
    methods."""

    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "sdksign-admin"

    def version_string(self) -> str:
        return self.server_version  # no Python version

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self._send(405, b"only GET or HEAD\n", headers={"Allow": "GET, HEAD"})
            return False
        return True

    def do_HEAD(self) -> None:
        """The GET's status and headers; _send writes no body."""
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz/live":
            self._send(200, b"live\n")
        elif path == "/healthz/ready":
            reason = self.server.not_ready()
            if reason:
                self._send(503, f"{reason}\n".encode())
            else:
                self._send(200, b"ready\n")
        else:
            self._send(404, b"not found: GET /metrics, /healthz/live or /healthz/ready\n")

    def _metrics(self) -> None:
        """GET /metrics; a 500 that says so when they cannot be gathered (a worker's file
        damaged), rather than a connection closed without an answer."""
        try:
            body, content_type = exposition.exposition(
                self.server.registry, self.headers.get("Accept", "")
            )
        except Exception:
            log.exception("cannot gather the metrics")
            self._send(500, b"cannot gather the metrics: the server's log says why\n")
            return
        self._send(200, body, content_type)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes and probes come every few seconds."""
