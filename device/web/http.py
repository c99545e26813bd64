"""Optional HTTP server: the web page at /, its JSON API under /api/v1/, /healthz, /metrics, /snapshot.jpg and
/stream.mjpg of the running daemon. With ``http.token`` set, every route but /healthz needs it: as
``Authorization: Bearer <token>``, or the cookie the page's login form sets."""

from __future__ import annotations

import hmac
import json
import logging
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from device.config import HttpConfig, is_loopback
from device.const import (
    ANALYZE_MAX_BYTES,
    MAX_JSON_BODY,
    MAX_STREAMS,
    MJPEG_BOUNDARY,
    SHUTDOWN_POLL_S,
    SOCKET_TIMEOUT_S,
    STREAM_INTERVAL_S,
    STREAM_KEEPALIVE_S,
    TOKEN_COOKIE,
)
from device.errors import ConfigError
from device.metrics import Metrics

if TYPE_CHECKING:
    from device.web.analyze import Analyzer
    from device.web.dashboard import Dashboard
    from device.web.feedback import FeedbackStore

__all__ = ["HttpServer", "is_loopback"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
LOGIN_PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>moodcast: sign in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head><body>
<main class="login"><h1>moodcast</h1>%s<form method="post" action="/login"><label>Token
<input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p>The token is the daemon's MOODCAST_HTTP__TOKEN.</p></main></body></html>
"""
WRONG_TOKEN = b'<p class="login-error" role="alert">That token is wrong; try again.</p>'
POST_ROUTES = ("/api/v1/analyze", "/api/v1/feedback", "/login")
HISTORY_MAX_H = 24.0 * 365


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

    def authorized(self, authorization: str, cookie_header: str) -> bool:
        """True without a token; else when the Authorization header or the login cookie carries it."""
        token = self.config.token
        if not token:
            return True
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
        try:
            cookie = SimpleCookie(cookie_header)
        except CookieError:
            return False
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel is not None and hmac.compare_digest(
            urllib.parse.unquote(morsel.value).encode(), token.encode()
        )

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

    def _send_json(self, status: HTTPStatus, value: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value_ in (headers or {}).items():
            self.send_header(name, value_)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        """A 4xx/5xx as JSON: ``{"error": "<one line>", "status": 413}``."""
        self._send_json(status, {"error": message, "status": int(status)}, headers)

    def _authorized(self, path: str) -> bool:
        """Answer 401 (the login page for the page itself) and return False unless the request may go on."""
        app = self.server_app
        if path == "/healthz" or path.startswith("/static/") or path == "/login":
            return True
        if app.authorized(self.headers.get("Authorization", ""), self.headers.get("Cookie", "")):
            return True
        if path == "/" and self.command in ("GET", "HEAD"):
            self._send(HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", LOGIN_PAGE % b"")
        else:
            self._error(
                HTTPStatus.UNAUTHORIZED,
                "a bearer token is required: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="moodcast"'},
            )
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        app = self.server_app
        path, _, query = self.path.partition("?")
        if not self._authorized(path):
            return
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
            params = urllib.parse.parse_qs(query)
            try:
                hours = float(params.get("hours", ["24"])[0])
            except ValueError:
                hours = math.nan
            if not 0.1 <= hours <= HISTORY_MAX_H:  # also refuses nan and inf
                self._error(HTTPStatus.BAD_REQUEST, f"hours: expected a number from 0.1 to {HISTORY_MAX_H:g}")
                return
            self._send_json(HTTPStatus.OK, app.history(hours))
        elif path in POST_ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST", {"Allow": "POST"})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {path}")

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/login":
            self._login()
            return
        if not self._authorized(path):
            self.close_connection = True  # the body is not read
            return
        if path == "/api/v1/analyze":
            self._analyze(urllib.parse.parse_qs(query))
        elif path == "/api/v1/feedback":
            self._feedback()
        else:
            self.close_connection = True
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} does not take POST", {"Allow": "GET, HEAD"})

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

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None after answering 411/413 (the connection then closes)."""
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.strip().isdigit():
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            return None
        length = int(length_header)
        if length > limit:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {limit // 1024} kB")
            return None
        return self.rfile.read(length)

    def _json_content_type(self) -> bool:
        """True for ``Content-Type: application/json``; else answer 415 and close. A browser sends a
        cross-site POST as text/plain or a form without asking first, never as JSON."""
        kind = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if kind == "application/json":
            return True
        self.close_connection = True  # the body is not read
        self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type: expected application/json")
        return False

    def _info(self) -> dict[str, Any]:
        app = self.server_app
        info: dict[str, Any] = {"feedback": app.feedback is not None, "token": bool(app.config.token)}
        if app.dashboard is not None:
            info["labels"] = list(app.dashboard.labels)
            info["mood_window_s"] = app.dashboard.mood.window_s
        if app.analyzer is not None:
            info["model"] = app.analyzer.model
        return info

    def _static(self, name: str) -> None:
        file = STATIC_DIR / name
        if "/" in name or name.startswith(".") or file.suffix not in STATIC_TYPES or not file.is_file():
            self._error(HTTPStatus.NOT_FOUND, f"no such file: {name}")
            return
        self._send(HTTPStatus.OK, STATIC_TYPES[file.suffix], file.read_bytes())

    def _login(self) -> None:
        body = self._read_body(MAX_JSON_BODY)
        if body is None:
            return
        given = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        app = self.server_app
        if not app.config.token or not hmac.compare_digest(given.encode(), app.config.token.encode()):
            time.sleep(0.5)  # slows guessing
            self._send(HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", LOGIN_PAGE % WRONG_TOKEN)
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header(
            "Set-Cookie", f"{TOKEN_COOKIE}={urllib.parse.quote(given)}; Path=/; HttpOnly; SameSite=Strict"
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _analyze(self, params: dict[str, list[str]]) -> None:
        from device.web.analyze import AnalyzeError, decode_image, image_from_body

        app = self.server_app
        if app.analyzer is None:
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, "the analyser is off")
            return
        body = self._read_body(ANALYZE_MAX_BYTES + 64 * 1024)  # room for multipart headers
        if body is None:
            return
        annotate = params.get("annotate", ["false"])[0].lower() in ("1", "true", "yes")
        try:
            image = decode_image(image_from_body(self.headers.get("Content-Type", ""), body))
            result = app.analyzer.submit(image, annotate)
        except AnalyzeError as err:
            headers = {"Retry-After": "1"} if err.status == HTTPStatus.TOO_MANY_REQUESTS else None
            self._error(err.status, err.message, headers)
            return
        except Exception:
            logger.exception("http: analyze failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the analysis failed; see the daemon's log")
            return
        if annotate and result.jpeg is not None:
            self._send(HTTPStatus.OK, "image/jpeg", result.jpeg)
            return
        self._send_json(
            HTTPStatus.OK,
            {
                "model": app.analyzer.model,
                "width": result.width_px,
                "height": result.height_px,
                "faces": result.faces,
            },
        )

    def _feedback(self) -> None:
        from device.web.analyze import AnalyzeError

        app = self.server_app
        if not self._json_content_type():
            return
        body = self._read_body(MAX_JSON_BODY)
        if body is None:
            return
        if app.feedback is None:
            self._error(HTTPStatus.NOT_FOUND, "feedback is off; set feedback.enabled = true to turn it on")
            return
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._error(HTTPStatus.BAD_REQUEST, 'expected JSON {"face_id": 3, "label": "sad"}')
            return
        face_id, label = request.get("face_id"), request.get("label")
        if type(face_id) is not int:  # not a bool, a float (25.7, 1e400) or a string
            self._error(HTTPStatus.BAD_REQUEST, "face_id: expected a JSON integer, as in the faces' ids")
            return
        if not isinstance(label, str):
            self._error(HTTPStatus.BAD_REQUEST, "label: expected a string, one of the model's labels")
            return
        try:
            path = app.feedback.save(face_id, label)
        except AnalyzeError as err:
            self._error(err.status, err.message)
            return
        self._send_json(
            HTTPStatus.CREATED, {"saved": f"{label}/{path.name}", "face_id": face_id, "label": label}
        )

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
