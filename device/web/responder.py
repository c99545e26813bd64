"""Responder: what every HTTP endpoint answers with (bytes, JSON, a JSON error) and how it reads a body."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from device.const import BODY_READ_S, REFUSED_BODY_DRAIN_MAX, REFUSED_BODY_DRAIN_S, SOCKET_TIMEOUT_S

if TYPE_CHECKING:
    from device.web.http import HttpServer

logger = logging.getLogger(__name__)


class Responder(BaseHTTPRequestHandler):
    """The base of the request handler: one request of the server ``server_app``."""

    server_app: HttpServer
    server_version = "moodcast"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http: %s " + format, self.address_string(), *args)

    def _send(
        self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None
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

    def _send_json(self, status: HTTPStatus, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, "application/json", json.dumps(value, separators=(",", ":")).encode(), headers)

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        """A 4xx/5xx as JSON: ``{"error": "<one line>", "status": 413}``."""
        self._send_json(status, {"error": message, "status": int(status)}, headers)

    def _refuse(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer a request that is not served with a JSON error, then drop its body and close."""
        self._error(status, message, {**(headers or {}), "Connection": "close"})
        self._drop_body()

    def _drop_body(self) -> None:
        """Read and discard the body the client is sending (up to REFUSED_BODY_DRAIN_MAX bytes and
        REFUSED_BODY_DRAIN_S seconds, see ``_receive``) and close the connection: closing a socket with unread
        data resets it, and the client loses the answer."""
        self.close_connection = True
        left = self._announced_length() or 0
        if left > REFUSED_BODY_DRAIN_MAX:
            return
        # A client that asked Expect: 100-continue may send its body without waiting (http.client does): it is
        # drained as any other. One that waits sends nothing, and closes on the answer's Connection: close.
        try:
            for _piece in self._receive(left, REFUSED_BODY_DRAIN_S):
                pass
        except OSError:  # the client went away or stalled: nothing more to answer
            pass

    def _receive(self, length: int, seconds: float) -> Iterator[bytes]:
        """The body's pieces as they arrive, at most 64 kB each, until ``length`` bytes have come, the client
        closes or ``seconds`` have passed. One receive a piece (``read1``), so a client that trickles its body
        meets the deadline."""
        deadline = time.monotonic() + seconds
        left = length
        while left > 0 and time.monotonic() < deadline and (piece := self.rfile.read1(min(left, 2**16))):
            left -= len(piece)
            yield piece

    def handle_expect_100(self) -> bool:
        """Hold back the interim 100 (Continue) that ``http.server`` sends as soon as it reads the head of a
        request with ``Expect: 100-continue``: it is sent when the body is accepted (``_read_exactly``), so a
        body that is refused (413, 401, 429, ...) is never sent (RFC 9110, 10.1.1)."""
        return True

    def _awaits_continue(self) -> bool:
        """True when the client waits for a 100 (Continue) before it sends the body, as ``http.server``
        decides it (``Expect: 100-continue`` on HTTP/1.1)."""
        expect = self.headers.get("Expect", "").strip().lower()
        return expect == "100-continue" and self.request_version >= "HTTP/1.1"

    def _announced_length(self) -> int | None:
        """The Content-Length, or None when there is none, one is not a number, or they disagree: several
        headers, or a comma-separated list, are one length only when every value is the same (RFC 9110,
        8.6); differing ones would frame the body one way here and another in a proxy in front (RFC 9112,
        6.3). None too beside a Transfer-Encoding, which overrides it (RFC 9112, 6.3): not taken here."""
        if "Transfer-Encoding" in self.headers:
            return None
        values = [v for header in self.headers.get_all("Content-Length") or [] for v in header.split(",")]
        lengths = {_content_length(value) for value in values}
        return lengths.pop() if len(lengths) == 1 else None

    def _carries_body(self) -> bool:
        """True when the request announces a body: a Transfer-Encoding, or a Content-Length that is not 0."""
        return "Transfer-Encoding" in self.headers or (
            "Content-Length" in self.headers and self._announced_length() != 0
        )

    def _body_length(self, limit: int) -> int | None:
        """The body's announced length, or None after answering 411 (no Content-Length, or a chunked body),
        400 (a Content-Length that is not a number, or several that differ: RFC 9112, 6.3) or 413 (over
        ``limit`` bytes: the body is dropped, see ``_drop_body``). A body whose length is not known cannot be
        skipped, so the first two close the connection."""
        length = self._announced_length()
        if length is None:
            self.close_connection = True
            close = {"Connection": "close"}
            if "Transfer-Encoding" in self.headers:
                message = "chunked bodies are not taken: send a Content-Length"
                self._error(HTTPStatus.LENGTH_REQUIRED, message, close)
            elif "Content-Length" in self.headers:
                self._error(HTTPStatus.BAD_REQUEST, "Content-Length: expected one number of bytes", close)
            else:
                message = "a Content-Length header (a number of bytes) is required"
                self._error(HTTPStatus.LENGTH_REQUIRED, message, close)
            return None
        if length > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {limit // 1024} kB")
            return None
        return length

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None after answering 411/413 (``_body_length``) or as ``_read_exactly``."""
        length = self._body_length(limit)
        return None if length is None else self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes | None:
        """The ``length`` bytes of a body whose length was checked, or None after answering 408 (not all of it
        arrived within BODY_READ_S: a client trickling its body would hold the analyser's place for as long as
        it liked) or when the client closed before sending all it announced (the connection then closes)."""
        if self._awaits_continue():
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        started = time.monotonic()
        body = b"".join(self._receive(length, BODY_READ_S))
        if len(body) == length:
            return body
        self.close_connection = True
        if time.monotonic() - started >= BODY_READ_S:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {BODY_READ_S:g} s")
        return None  # else the client closed the connection early: no one to answer

    def _json_content_type(self) -> bool:
        """True for ``Content-Type: application/json``; else answer 415 and close. A browser sends a
        cross-site POST as text/plain or a form without asking first, never as JSON."""
        kind = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if kind == "application/json":
            return True
        self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type: expected application/json")
        return False


def _content_length(header: str) -> int | None:
    """A Content-Length header's value (RFC 9110, 8.6: ASCII digits only), or None for anything else
    ("²" and "٣" are digits to ``str.isdigit``); a value of more than 18 digits counts as ``sys.maxsize``,
    over every limit (``int`` refuses strings of over 4300 digits)."""
    value = header.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    value = value.lstrip("0") or "0"
    return int(value) if len(value) <= 18 else sys.maxsize
