"""Optional HTTP server: /healthz, /metrics, /snapshot.jpg and /stream.mjpg of the running daemon."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from device.config import HttpConfig
from device.const import (
    MAX_STREAMS,
    MJPEG_BOUNDARY,
    SHUTDOWN_POLL_S,
    SOCKET_TIMEOUT_S,
    STREAM_INTERVAL_S,
    STREAM_KEEPALIVE_S,
)
from device.errors import ConfigError
from device.metrics import Metrics

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; False for 0.0.0.0, '' and other addresses or names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpServer:
    """Serves the daemon's health, metrics and annotated frames; start() runs it in a thread named 'http'."""

    def __init__(
        self,
        config: HttpConfig,
        metrics: Metrics,
        latest_jpeg: Callable[[], bytes | None],
        healthy: Callable[[], bool],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.latest_jpeg = latest_jpeg
        self.healthy = healthy
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)

    @property
    def port(self) -> int:
        """The port actually bound (useful when the config asks for port 0)."""
        if self._server is None:
            raise RuntimeError("HttpServer.port read before start()")
        return self._server.server_address[1]

    @property
    def stopping(self) -> threading.Event:
        """Set by stop(); open streams end when it is set."""
        return self._stop

    @contextmanager
    def stream_slot(self) -> Iterator[bool]:
        """One of the MAX_STREAMS viewer slots for /stream.mjpg, held while the block runs; False when all
        are taken."""
        if not self._streams.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self._streams.release()

    def start(self) -> None:
        """Bind and serve in a daemon thread; a port in use or a bad address is a ConfigError."""
        host, port = self.config.host, self.config.port
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _handler_for(self))
        except OSError as err:
            raise ConfigError(
                "http.port", f"cannot listen on {host}:{port} ({err.strerror or err})",
                "choose a free port or another http.host",
            ) from None  # fmt: skip
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), name="http", daemon=True
        )
        self._thread.start()
        if is_loopback(host):
            logger.info("http: serving on http://%s:%d", host, self.port)
        else:
            logger.warning(
                "http: serving on %s:%d, reachable from other machines; /snapshot.jpg and /stream.mjpg "
                "show faces, which are personal data: bind http.host to 127.0.0.1 unless you mean it",
                host, self.port,
            )  # fmt: skip

    def stop(self) -> None:
        """End open streams, stop serving and close the socket."""
        self._stop.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        logger.info("http: stopped")


def _handler_for(app: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_app = app

    return Handler


class _Handler(BaseHTTPRequestHandler):
    server_app: HttpServer
    server_version = "moodcast"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http: %s " + format, self.address_string(), *args)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        app = self.server_app
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = app.healthy()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, "text/plain; charset=utf-8", b"ok\n" if ok else b"unhealthy\n")
        elif path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, app.metrics.render())
        elif path == "/snapshot.jpg":
            jpeg = app.latest_jpeg()
            if jpeg is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b"no frame yet\n")
            else:
                self._send(HTTPStatus.OK, "image/jpeg", jpeg)
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _stream(self) -> None:
        app = self.server_app
        with app.stream_slot() as admitted:
            if not admitted:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b"too many viewers\n")
                return
            try:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if self.command == "HEAD":
                    return
                logger.debug("http: stream to %s opened", self.address_string())
                self._stream_frames(app)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer went away
            finally:
                logger.debug("http: stream to %s closed", self.address_string())

    def _stream_frames(self, app: HttpServer) -> None:
        sent: bytes | None = None
        idle_s = 0.0
        while not app.stopping.is_set():
            jpeg = app.latest_jpeg()
            if jpeg is not None and (jpeg is not sent or idle_s >= STREAM_KEEPALIVE_S):
                head = (
                    f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                ).encode("ascii")
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
                sent, idle_s = jpeg, 0.0
            else:
                idle_s += STREAM_INTERVAL_S
            app.stopping.wait(STREAM_INTERVAL_S)
