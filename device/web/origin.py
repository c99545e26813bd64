"""Who a request is for and where it comes from: the Host header against DNS rebinding, the Origin header
against cross-site (and cross-port) POSTs. Pure functions of header values; ``auth.py`` answers."""

from __future__ import annotations

import urllib.parse

from device.config import is_loopback

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(lower-case host name, port or None)`` of a Host header or an origin's ``host[:port]``, brackets of
    an IPv6 address removed; None when it is not a plain host and port (user info, a path, a bad port)."""
    if not value or any(char in value for char in "@/?#\\ \t"):
        return None
    parts = urllib.parse.urlsplit("//" + value)
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname or "", port) if parts.hostname else None


def host_allowed(host_header: str, bound_host: str) -> bool:
    """True when a Host header names this server without a token: a loopback name or address
    (localhost, 127.0.0.1, [::1]) or ``bound_host`` (http.host), with any port. A name that a rebinding
    attacker's DNS points at 127.0.0.1 is not among them."""
    host = split_host(host_header)
    return host is not None and (host[0] == bound_host.lower() or is_loopback(host[0]))


def same_origin(origin: str, host_header: str) -> bool:
    """True when an Origin header (``scheme://host[:port]``) is the origin the request was sent to: the
    Host header's name and port, a missing port being the origin scheme's (http 80, https 443 behind a TLS
    proxy). ``null`` (a sandboxed or privacy-hidden origin) and another port of the same host are foreign."""
    scheme, _, authority = origin.strip().partition("://")
    default = DEFAULT_PORTS.get(scheme.lower())
    theirs, mine = split_host(authority), split_host(host_header)
    if default is None or theirs is None or mine is None:
        return False
    return (theirs[0], theirs[1] or default) == (mine[0], mine[1] or default)
