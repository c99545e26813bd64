"""The HTTP server's token check (a bearer token or the login cookie) and the sign-in page that sets it."""

from __future__ import annotations

import hmac
import time
import urllib.parse
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie

from device.const import MAX_JSON_BODY, TOKEN_COOKIE
from device.web.origin import host_allowed, same_origin
from device.web.responder import Responder

LOGIN_PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>moodcast: sign in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head><body>
<main class="login"><h1>moodcast</h1>%s<form method="post" action="/login"><label>Token
<input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p>The token is the daemon's MOODCAST_HTTP__TOKEN.</p></main></body></html>
"""
WRONG_TOKEN = b'<p class="login-error" role="alert">That token is wrong; try again.</p>'


def carries_token(token: str, authorization: str, cookie_header: str) -> bool:
    """True without a token; else when the Authorization header or the login cookie carries it."""
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


class AuthRoutes(Responder):
    """The Host and Origin checks and the token check before each route, and ``POST /login``."""

    def _trusted(self) -> bool:
        """Answer 421 (without a token, a Host that is not this server's name: DNS rebinding) or 403 (a POST
        from a foreign Origin, another port of this host included) and return False; else True. A request
        without Origin (curl, scripts) is not a browser's cross-site one."""
        config = self.server_app.config
        host = self.headers.get("Host", "")
        if not config.token and not host_allowed(host, config.host):
            self._refuse(
                HTTPStatus.MISDIRECTED_REQUEST,
                f"Host {host!r} is not this server's name; open http://{config.host}:{self.server_app.port}/ "
                "or set http.token to serve other names",
            )
            return False
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin is not None and not same_origin(origin, host):
            self._refuse(
                HTTPStatus.FORBIDDEN,
                f"Origin {origin!r} is not this server's; cross-site requests are refused",
            )
            return False
        return True

    def _authorized(self, path: str) -> bool:
        """Answer 401 (the login page for the page itself) and return False unless the request may go on."""
        if path == "/healthz" or path.startswith("/static/") or path == "/login":
            return True
        token = self.server_app.config.token
        if carries_token(token, self.headers.get("Authorization", ""), self.headers.get("Cookie", "")):
            return True
        if path == "/" and self.command in ("GET", "HEAD"):
            self._send(HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", LOGIN_PAGE % b"")
        else:
            headers = {"WWW-Authenticate": 'Bearer realm="moodcast"'}
            if self.command == "POST":  # its body is dropped and the connection closed (_drop_body)
                headers["Connection"] = "close"
            wrong = "Authorization" in self.headers  # it said "required" to a client that sent a wrong one
            message = (
                "the token sent is not this daemon's http.token" if wrong else "a bearer token is required"
            ) + ": send 'Authorization: Bearer <token>'"
            self._error(HTTPStatus.UNAUTHORIZED, message, headers)
        return False

    def _login(self) -> None:
        body = self._read_body(MAX_JSON_BODY)
        if body is None:
            return
        given = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        token = self.server_app.config.token
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
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
