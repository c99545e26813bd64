"""What the HTTP server serves as files and frames: the page's static files, /snapshot.jpg, /stream.mjpg."""

from __future__ import annotations

import logging
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING

from device.const import MAX_STREAMS, MJPEG_BOUNDARY, STREAM_INTERVAL_S, STREAM_KEEPALIVE_S
from device.web.responder import Responder

if TYPE_CHECKING:
    from device.web.http import HttpServer

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class MediaRoutes(Responder):
    """The endpoints that send files and the annotated frames; the router in ``http.py`` picks one by path."""

    def _static(self, name: str) -> None:
        file = STATIC_DIR / name
        if "/" in name or name.startswith(".") or file.suffix not in STATIC_TYPES or not file.is_file():
            self._error(HTTPStatus.NOT_FOUND, f"no such file: {name}")
            return
        self._send(HTTPStatus.OK, STATIC_TYPES[file.suffix], file.read_bytes())

    def _snapshot(self) -> None:
        jpeg = self.server_app.latest_jpeg()
        if jpeg is None:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame drawn yet", {"Retry-After": "1"})
        else:
            self._send(HTTPStatus.OK, "image/jpeg", jpeg)

    def _stream(self) -> None:
        app = self.server_app
        with app.stream_slot() as admitted:
            if not admitted:
                message = f"{MAX_STREAMS} viewers already: close one, or use /snapshot.jpg"
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, message, {"Retry-After": "5"})
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
