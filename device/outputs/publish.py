"""MQTT publishing: status with Last Will, ordered per-face events from an outbox, state, HA discovery."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from device.config import MqttConfig
from device.const import (
    APP_NAME,
    AUTH_REFUSED_CODES,
    DROP_WARNING_S,
    INFLIGHT_WINDOW,
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    REPEAT_WARNING_S,
    STATUS_OFFLINE,
    STATUS_ONLINE,
)
from device.errors import ConfigError
from device.outputs.outbox import MemoryOutbox, SqliteOutbox, open_outbox

logger = logging.getLogger(__name__)


def describe_connect_error(err: BaseException) -> str:
    """A short reason for a failed TCP/TLS connect, for the one warning line."""
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


class _Client(mqtt.Client):
    """paho's client, remembering why the last connect attempt failed (on_connect_fail gets no reason)."""

    last_connect_error: BaseException | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as err:
            self.last_connect_error = err
            raise


class _PahoNoise(logging.Filter):
    """paho logs 'Client is not connected' as an ERROR on every retry; we warn once per outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _paho_logger() -> logging.Logger:
    """paho's logger (held at WARNING by device.log), without its per-retry noise."""
    paho_logger = logging.getLogger("paho.mqtt.client")
    if not any(isinstance(f, _PahoNoise) for f in paho_logger.filters):
        paho_logger.addFilter(_PahoNoise())
    return paho_logger


def _node_id(device_id: str) -> str:
    """The device id as Home Assistant allows it in a discovery topic."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


class EventPublisher:
    """Publishes the device's status, face events, state and discovery configs to one MQTT broker."""

    def __init__(self, config: MqttConfig, device_id: str) -> None:
        self.config = config
        self.device_id = device_id
        self.prefix = f"{config.prefix}/{device_id}"
        self.status_topic = f"{self.prefix}/status"
        self.events_topic = f"{self.prefix}/events"
        self.state_topic = f"{self.prefix}/state"
        self.where = f"{config.host}:{config.port}"
        self._outbox: MemoryOutbox | SqliteOutbox = open_outbox(config.outbox_path, config.outbox_max)
        self._cond = threading.Condition()
        self._handed: dict[int, int | None] = {}  # seq → paho mid, for events paho holds
        self._mids: dict[int, int] = {}  # paho mid → seq
        self._early_acks: set[int] = set()  # mids acknowledged before publish() returned them
        self._handing = False  # the sender is handing a batch to paho
        self._online_mid: int | None = None
        self._connected = False
        self._ready = False  # connected, and paho has re-sent what it held from before
        self._stopping = False
        self._stopped = threading.Event()
        self._state_payload: str | None = None
        self._state_dirty = False
        self._published = 0
        self._dropped = 0
        self._drops_unlogged = 0
        self._drop_logged_at = 0.0
        self._last_seq = self._outbox.last_seq()
        self._warning: tuple[str, float] | None = None
        self._thread: threading.Thread | None = None
        self._client = self._make_client()

    # -- setup --------------------------------------------------------------------------------------

    def _make_client(self) -> _Client:
        cfg = self.config
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"{APP_NAME}-{self.device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.enable_logger(_paho_logger())
        client.suppress_exceptions = True
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(0)
        client.will_set(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            try:
                client.tls_set(
                    ca_certs=cfg.ca_file or None,
                    certfile=cfg.cert_file or None,
                    keyfile=cfg.key_file or None,
                )
            except (OSError, ValueError) as err:
                key = "mqtt.ca_file" if cfg.ca_file else "mqtt.cert_file"
                raise ConfigError(
                    key, f"cannot load the TLS files ({err})", "check the certificate files"
                ) from None
            client.tls_insecure_set(cfg.tls_insecure)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- the interface the daemon calls ---------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start the sender; never raises because the broker is down."""
        logger.info("MQTT: publishing to %s as %s/...", self.where, self.prefix)
        try:
            self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        except (OSError, ValueError) as err:  # paho checks the host and port here, without connecting
            self._warn(
                "bad", f"MQTT broker {self.where}: cannot connect ({err}); check mqtt.host and mqtt.port"
            )
        self._client.loop_start()
        network = getattr(self._client, "_thread", None)
        if network is not None:  # name paho's network thread for logs and stack dumps
            network.name = "mqtt"
        self._thread = threading.Thread(target=self._send_loop, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def last_seq(self) -> int:
        """The highest seq ever enqueued (kept in the outbox file across restarts when there is one)."""
        with self._cond:
            return self._last_seq

    def publish_event(self, event: dict[str, Any]) -> None:
        """Queue one event (with its ``seq``); it is delivered in order once the broker has it."""
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"event needs an integer 'seq', got {seq!r}")
        payload = json.dumps(event, separators=(",", ":"))
        with self._cond:
            dropped = self._outbox.put(seq, payload, keep=self._handed)
            self._last_seq = max(self._last_seq, seq)
            if dropped:
                self._count_drops(len(dropped))
            self._cond.notify_all()

    def publish_state(self, state: dict[str, Any]) -> None:
        """Publish the retained summary (``faces``, ``dominant``, ``fps``); the latest one wins."""
        with self._cond:
            self._state_payload = json.dumps(state, separators=(",", ":"))
            self._state_dirty = True
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._connected

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics and the status line."""
        with self._cond:
            return {
                "published": self._published,
                "queued": len(self._outbox),
                "dropped": self._dropped,
                "connected": self._connected,
            }

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, publish ``offline``, disconnect."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            # Flush only while connected: a broker that is away will not come back for our shutdown.
            self._cond.wait_for(
                lambda: not self._connected or (len(self._outbox) == 0 and not self._state_dirty),
                timeout=max(0.0, deadline - time.monotonic()),
            )
            left = len(self._outbox)
            self._stopping = True
            self._cond.notify_all()
        if self._connected:
            info = self._client.publish(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as err:
                logger.debug("MQTT: offline status not confirmed: %s", err)
        self._client.disconnect()
        self._client.loop_stop()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if left:
            kept = f"kept in {self.config.outbox_path}" if self.config.outbox_path else "lost"
            logger.warning("MQTT: stopped with %d events not delivered to %s (%s)", left, self.where, kept)
        with self._cond:
            self._outbox.close()
        logger.info("MQTT: stopped (%d events published, %d dropped)", self._published, self._dropped)

    # -- the sender thread --------------------------------------------------------------------------

    def _send_loop(self) -> None:
        """Hand queued events to paho in seq order, INFLIGHT_WINDOW unacknowledged at most, if connected."""
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._stopping:  # stop() has flushed what it could
                    return
                state = self._state_payload if self._state_dirty else None
                self._state_dirty = False
                batch = self._outbox.head(INFLIGHT_WINDOW - len(self._handed), skip=self._handed)
                for seq, _ in batch:
                    self._handed[seq] = None
                self._handing = True
            if state is not None:
                self._client.publish(self.state_topic, state, qos=self.config.qos, retain=True)
            for seq, payload in batch:
                info = self._client.publish(self.events_topic, payload, qos=self.config.qos)
                with self._cond:
                    if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.config.qos == 0:
                        self._handed.pop(seq, None)  # QoS 0 is not kept by paho: send it again later
                        continue
                    if seq not in self._handed:  # dropped by a disconnect meanwhile (QoS 0)
                        continue
                    self._handed[seq] = info.mid
                    self._mids[info.mid] = seq
                    if info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        self._confirm(info.mid)
            with self._cond:
                self._handing = False
                self._early_acks.clear()  # what is left acknowledged the state, not an event

    def _has_work(self) -> bool:
        if self._stopping:
            return True
        if not self._ready:
            return False
        return self._state_dirty or (
            len(self._handed) < INFLIGHT_WINDOW and len(self._outbox) > len(self._handed)
        )

    def _confirm(self, mid: int) -> None:
        """The broker has an event: forget it (called with the lock held)."""
        seq = self._mids.pop(mid)
        self._handed.pop(seq, None)
        if self._outbox.remove(seq):
            self._published += 1
        self._cond.notify_all()

    def _count_drops(self, count: int) -> None:
        """Count events dropped past the bound; warn on the first and then at most every minute."""
        self._dropped += count
        self._drops_unlogged += count
        now = time.monotonic()
        if self._drop_logged_at == 0.0 or now - self._drop_logged_at >= DROP_WARNING_S:
            logger.warning(
                "MQTT outbox full (%d events, broker %s away): dropped the %d oldest (%d in all); "
                "raise mqtt.outbox_max to keep more",
                self._outbox.max_items,
                self.where,
                self._drops_unlogged,
                self._dropped,
            )
            self._drop_logged_at = now
            self._drops_unlogged = 0

    # -- paho callbacks (paho's network thread) -----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self._warn(
                "refused:" + str(reason.value),
                f"MQTT broker {self.where} refused the connection: {describe_refusal(reason)}; "
                f"retrying every {RECONNECT_MAX_S} s at most",
            )
            return
        self._warning = None
        info = client.publish(self.status_topic, STATUS_ONLINE, qos=1, retain=True)
        with self._cond:
            self._connected = True
            self._online_mid = info.mid
        logger.info("MQTT: connected to %s", self.where)
        if self.config.discovery:
            for topic, config in self.discovery_configs().items():
                client.publish(topic, json.dumps(config), qos=1, retain=True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        err = self._client.last_connect_error
        reason = describe_connect_error(err) if err is not None else "unknown error"
        self._warn(
            "fail:" + reason,
            f"MQTT broker {self.where} unreachable: {reason}; "
            f"retrying with backoff up to {RECONNECT_MAX_S} s, events are kept meanwhile",
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        with self._cond:
            was_connected = self._connected
            self._connected = False
            self._ready = False
            self._online_mid = None
            if self.config.qos == 0:  # paho forgets unsent QoS 0 messages; ours stay in the outbox
                for mid in [mid for mid, seq in self._mids.items() if seq in self._handed]:
                    self._mids.pop(mid)
                self._handed.clear()
            stopping = self._stopping
            self._cond.notify_all()
        if was_connected and not stopping:
            self._warn(
                "lost",
                f"MQTT broker {self.where}: connection lost ({reason}); "
                "reconnecting, events are kept meanwhile",
            )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        # paho holds its message lock here: never call into paho from this callback.
        with self._cond:
            if mid == self._online_mid:
                # paho re-sends what it held before it reads any acknowledgement, so from here on new
                # events go out after the old ones.
                self._online_mid = None
                self._ready = True
                self._cond.notify_all()
            elif mid in self._mids:
                self._confirm(mid)
            elif self._handing:
                self._early_acks.add(mid)

    def _warn(self, key: str, message: str) -> None:
        """Log a connection warning once per change of state, and again at most every few minutes."""
        now = time.monotonic()
        last = self._warning
        if last is not None and last[0] == key and now - last[1] < REPEAT_WARNING_S:
            return
        self._warning = (key, now)
        logger.warning(message)

    # -- Home Assistant discovery -------------------------------------------------------------------

    def discovery_configs(self) -> dict[str, dict[str, Any]]:
        """Retained discovery configs by topic: the face count and the dominant emotion."""
        node = _node_id(self.device_id)
        device = {
            "identifiers": [f"{APP_NAME}_{node}"],
            "name": f"{APP_NAME} {self.device_id}",
            "manufacturer": APP_NAME,
            "model": "facial-emotion camera",
        }
        common = {
            "state_topic": self.state_topic,
            "availability_topic": self.status_topic,
            "payload_available": STATUS_ONLINE,
            "payload_not_available": STATUS_OFFLINE,
            "device": device,
        }
        sensors = {
            "faces": {
                "name": "Faces",
                "value_template": "{{ value_json.faces }}",
                "state_class": "measurement",
                "icon": "mdi:face-recognition",
            },
            "dominant_emotion": {
                "name": "Dominant emotion",
                "value_template": "{{ value_json.dominant if value_json.dominant else 'none' }}",
                "icon": "mdi:emoticon-outline",
            },
        }
        base = self.config.discovery_prefix
        return {
            f"{base}/sensor/{node}/{obj}/config": {
                **sensor,
                "unique_id": f"{APP_NAME}_{node}_{obj}",
                "object_id": f"{APP_NAME}_{node}_{obj}",
                **common,
            }
            for obj, sensor in sensors.items()
        }
