"""Optional HTTP server: the web page at /, its JSON API under /api/v1/, /healthz, /metrics, /snapshot.jpg and
/stream.mjpg of the running daemon. With ``http.token`` set, every route but /healthz needs it: as
``Authorization: Bearer <token>``, or the cookie the page's login form sets.

This module runs the server and routes each request by method and path; the endpoints are in ``api.py`` (the
JSON API), ``media.py`` (static files, snapshot and stream) and ``auth.py`` (the token check and the sign-in),
on the response helpers of ``responder.py``.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from device.config import HttpConfig, is_loopback
from device.const import LISTEN_BACKLOG, MAX_STREAMS, SHUTDOWN_POLL_S
from device.errors import ConfigError
from device.metrics import Metrics
from device.web.api import ApiRoutes
from device.web.auth import AuthRoutes
from device.web.media import MediaRoutes

if TYPE_CHECKING:
    from device.web.analyze import Analyzer
    from device.web.dashboard import Dashboard
    from device.web.feedback import FeedbackStore

__all__ = ["HttpServer", "is_loopback"]

logger = logging.getLogger(__name__)

POST_ROUTES = ("/api/v1/analyze", "/api/v1/feedback", "/login")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or drops its connection mid-request is routine: one debug line, where
        socketserver printed a traceback on stderr (the daemon's log); anything else is logged with its."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("http: %s dropped the connection (%s)", client_address[0], error)
        else:
            logger.exception("http: a request from %s failed", client_address[0])


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
        *,
        analyzer: Analyzer | None = None,
        dashboard: Dashboard | None = None,
        feedback: FeedbackStore | None = None,
        history: Callable[[float], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.latest_jpeg = latest_jpeg
        self.healthy = healthy
        self.analyzer = analyzer
        self.dashboard = dashboard
        self.feedback = feedback
        self.history = history
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
        token = "token required" if self.config.token else "no token"
        if is_loopback(host):
            logger.info("http: serving on http://%s:%d (%s)", host, self.port, token)
        else:
            logger.warning(
                "http: serving on %s:%d (%s), reachable from other machines; the page, /snapshot.jpg and "
                "/stream.mjpg show faces, which are personal data: bind http.host to 127.0.0.1 unless "
                "you mean it",
                host, self.port, token,
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
        if self.analyzer is not None:
            self.analyzer.close()
        logger.info("http: stopped")


def _handler_for(app: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_app = app

    return Handler


class _Handler(AuthRoutes, ApiRoutes, MediaRoutes):
    """The router: each request to its endpoint by method and path, after the token check."""

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        app = self.server_app
        path, _, query = self.path.partition("?")
        if self._carries_body():  # never read: it would be taken for the next request on the connection
            self.close_connection = True
        if not (self._trusted() and self._authorized(path)):
            return
        if path == "/healthz":
            ok = app.healthy()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, "text/plain; charset=utf-8", b"ok\n" if ok else b"unhealthy\n")
        elif path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, app.metrics.render())
        elif path == "/snapshot.jpg":
            self._snapshot()
        elif path == "/stream.mjpg":
            self._stream()
        elif path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path == "/api/v1/info":
            self._send_json(HTTPStatus.OK, self._info())
        elif path == "/api/v1/faces" and app.dashboard is not None:
            self._send_json(HTTPStatus.OK, app.dashboard.faces())
        elif path == "/api/v1/mood" and app.dashboard is not None:
            self._send_json(HTTPStatus.OK, app.dashboard.mood_json())
        elif path == "/api/v1/history" and app.history is not None:
            self._history(app.history, query)
        elif path in POST_ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST", {"Allow": "POST"})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {path}")

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        if not self._trusted():
            return
        if path == "/login":
            self._login()
            return
        if not self._authorized(path):
            self._drop_body()
            return
        if path == "/api/v1/analyze":
            # Blank values kept: a bare ?annotate (or ?annotate=) is a 400 as ?annotate=maybe is, not a false
            self._analyze(urllib.parse.parse_qs(query, keep_blank_values=True))
        elif path == "/api/v1/feedback":
            self._feedback()
        else:
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} does not take POST", {"Allow": "GET, HEAD"})

    def _refuse_method(self) -> None:
        """405 as JSON for a method no route takes (PUT, OPTIONS, TRACE, ...), with the path's Allow."""
        self.close_connection = True
        path = self.path.partition("?")[0]
        allow = "POST" if path in POST_ROUTES else "GET, HEAD"
        self._error(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"{self.command} is not supported here",
            {"Allow": allow, "Connection": "close"},
        )

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (a method without a do_ handler, a malformed request line or header) as
        JSON rather than its HTML page; an unknown method is a 405."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self._refuse_method()
            return
        status = HTTPStatus(code)
        self._error(status, message or status.phrase, {"Connection": "close"})
