"""The wording of MQTT connection problems for the one warning line; paho's log without its retry noise."""

from __future__ import annotations

import logging
import socket
import ssl

from paho.mqtt.reasoncodes import ReasonCode

from device.const import AUTH_REFUSED_CODES

# TLS alerts (RFC 8446 section 6.2) a broker sends when it rejects the client certificate we gave
CLIENT_CERT_ALERTS = (
    "unknown_ca",
    "bad_certificate",
    "certificate_unknown",
    "certificate_expired",
    "certificate_revoked",
    "unsupported_certificate",
    "access_denied",
)


def describe_connect_error(err: BaseException, tls: bool = False) -> str:
    """A short reason for a failed TCP/TLS connect (``tls``: we spoke TLS), for the one warning line."""
    if tls and isinstance(err, ConnectionResetError | ssl.SSLEOFError):
        # a plain MQTT listener reads our TLS ClientHello as a malformed packet and drops the connection
        return (
            "connection reset during the TLS handshake: the port likely does not speak TLS; "
            "set mqtt.tls = false, or use the broker's TLS port (often 8883)"
        )
    if isinstance(err, socket.gaierror):
        return f"host name not resolved ({err.strerror or err})"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(err, ssl.SSLCertVerificationError):
        detail = err.verify_message or err.reason
        return f"TLS failure: certificate verify failed, {detail} (check mqtt.ca_file and the broker)"
    if isinstance(err, ssl.SSLError):
        return f"TLS failure: {err.reason or err} (check mqtt.tls and the certificate files)"
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__


def describe_refusal(reason: ReasonCode) -> str:
    """A short reason for a CONNACK that refused us."""
    if reason.value in AUTH_REFUSED_CODES:
        return (
            f"bad user name or password ({reason}, reason code {reason.value}); "
            "check mqtt.username and MOODCAST_MQTT__PASSWORD"
        )
    return f"refused by the broker ({reason}, reason code {reason.value})"


def probe_connect(
    host: str, port: int, context: ssl.SSLContext | None, timeout_s: float
) -> BaseException | None:
    """Why a TCP (and TLS) connect to ``host:port`` fails, or None when it succeeds now.

    paho's ``on_connect_fail`` is not told why the attempt failed, so after a failure we repeat the
    connect the same way (same host, port and TLS context) and word what that raises.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if context is not None:
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except (
        OSError
    ) as err:  # socket.gaierror, ConnectionRefusedError, ssl.SSLError and TimeoutError are all OSErrors
        return err
    return None


def diagnose_closed(host: str, port: int, context: ssl.SSLContext | None, timeout_s: float) -> str | None:
    """Why a broker closed the connection before its CONNACK, when the TLS settings are the cause.

    A plain client on a TLS port, or a TLS client without the client certificate the broker requires or
    with one the broker's CA did not sign, is cut off without a word; paho then only says 'failed to receive
    on socket' on every retry.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if context is None:  # does the port speak TLS?
                probe = ssl.create_default_context()
                probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
                with probe.wrap_socket(sock, server_hostname=host):
                    return "the port speaks TLS and mqtt.tls is off; set mqtt.tls = true (and mqtt.ca_file)"
            with context.wrap_socket(sock, server_hostname=host) as tls:
                tls.settimeout(1.0)
                tls.recv(1)  # TLS 1.3: a broker that wants our certificate says so after the handshake
    except ssl.SSLError as err:
        text = f"{err.reason or err}".lower()
        if context is not None and ("certificate_required" in text or "handshake_failure" in text):
            return (
                "the broker requires a client certificate and none was accepted; "
                "set mqtt.cert_file and mqtt.key_file"
            )
        alert = next((name for name in CLIENT_CERT_ALERTS if name in text.replace(" ", "_")), None)
        if context is not None and alert is not None:
            return (
                f"the broker did not accept the client certificate (TLS alert {alert}); set mqtt.cert_file "
                "and mqtt.key_file to a certificate and key that the broker's CA signed"
            )
        return None
    except OSError:
        return None
    return None


class PahoNoise(logging.Filter):
    """paho logs 'Client is not connected' and 'failed to receive on socket' as ERRORs on every retry;
    we warn once per outage instead, with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(
            ("Client is not connected", "failed to receive on socket")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def paho_logger() -> logging.Logger:
    """paho's logger (held at WARNING by device.log), without its per-retry noise."""
    logger = logging.getLogger("paho.mqtt.client")
    if not any(isinstance(f, PahoNoise) for f in logger.filters):
        logger.addFilter(PahoNoise())
    return logger
