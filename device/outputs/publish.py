"""The MQTT output: paho's client set up for our contract (status with Last Will, events, state, discovery).

What is where: the ordered at-least-once delivery of events is ``delivery.py``, the bounded outbox it drains
is ``outbox.py``, the Home Assistant discovery payloads are ``discovery.py``, and the wording of connection
problems is ``mqtt_wording.py``. This module connects them to paho, through paho's public API only.
"""

from __future__ import annotations

import json
import logging
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
    DROP_WARNING_S,
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    REPEAT_WARNING_S,
    STATUS_OFFLINE,
    STATUS_ONLINE,
)
from device.errors import ConfigError
from device.outputs.delivery import Delivery
from device.outputs.discovery import discovery_configs
from device.outputs.mqtt_wording import (
    describe_connect_error,
    describe_refusal,
    diagnose_closed,
    paho_logger,
    probe_connect,
)
from device.outputs.outbox import open_outbox
from device.outputs.sink import EventSink, SinkStats

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # paho's own connect timeout
# MQTT 5 CONNACK reason codes of a broker that refuses our Last Will: retained, or above its QoS.
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """The TLS context paho's ``tls_set`` would build (verify the broker; our client certificate if set)."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.ca_file or None)
    except (OSError, ValueError) as err:
        raise ConfigError(
            "mqtt.ca_file", f"{cfg.ca_file}: not a CA certificate in PEM ({err})", "give the broker's CA file"
        ) from None
    if cfg.cert_file:
        try:
            context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        except (OSError, ValueError) as err:
            # OpenSSL says KEY_VALUES_MISMATCH when the key is not the certificate's; anything else is a file
            # that is not a PEM certificate or key.
            key, problem = (
                ("mqtt.key_file", f"{cfg.key_file} is not the private key of {cfg.cert_file}")
                if "KEY_VALUES_MISMATCH" in str(err)
                else (
                    "mqtt.cert_file",
                    f"cannot load {cfg.cert_file} / {cfg.key_file} as PEM certificate and key",
                )
            )
            raise ConfigError(key, f"{problem} ({err})", "check the client certificate files") from None
    return context


class EventPublisher(EventSink):
    """Publishes the device's status, face events, state and discovery configs to one MQTT broker."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, device_id: str) -> None:
        self.config = config
        self.device_id = device_id
        self.prefix = f"{config.prefix}/{device_id}"
        self.status_topic = f"{self.prefix}/status"
        self.events_topic = f"{self.prefix}/events"
        self.state_topic = f"{self.prefix}/state"
        self.where = f"{config.host}:{config.port}"
        self._delivery = Delivery(
            open_outbox(config.outbox_path, config.outbox_max), forget_on_disconnect=config.qos == 0
        )
        self._outbox_max = config.outbox_max
        self._lock = threading.Lock()  # the drop counters
        self._dropped = 0
        self._drops_unlogged = 0
        self._drop_logged_at = 0.0
        self._warning: tuple[str, float] | None = None
        # What the broker allows, from its CONNACK (MQTT 5 properties) or its refusal of our Last Will.
        self._retain = True
        self._max_qos = 2
        self._limits_told: tuple[bool, int] = (True, config.qos)  # (retain, QoS of events) last told
        self._tls: ssl.SSLContext | None = tls_context(config) if config.tls else None
        self._thread: threading.Thread | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"{APP_NAME}-{self.device_id}",
            protocol=mqtt.MQTTv5,  # its CONNACK tells the broker's limits (retain, maximum QoS)
        )
        client.enable_logger(paho_logger())
        client.suppress_exceptions = True
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(0)
        self._set_will(client)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if self._tls is not None:
            client.tls_set_context(self._tls)
            client.tls_insecure_set(cfg.tls_insecure)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- EventSink ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start the sender; never raises because the broker is down."""
        logger.info("MQTT: publishing to %s as %s/...", self.where, self.prefix)
        try:
            self._client.connect_async(
                self.config.host, self.config.port, keepalive=self.config.keepalive_s, clean_start=True
            )
        except (OSError, ValueError) as err:  # paho checks the host and port here, without connecting
            self._warn(
                "bad", f"MQTT broker {self.where}: cannot connect ({err}); check mqtt.host and mqtt.port"
            )
        self._client.loop_start()
        self._thread = threading.Thread(
            target=self._delivery.run,
            args=(self._send_event, self._send_state),
            name="mqtt-outbox",
            daemon=True,
        )
        self._thread.start()

    def last_seq(self) -> int:
        """The highest seq ever enqueued (kept in the outbox file across restarts when there is one)."""
        return self._delivery.last_seq()

    def publish_event(self, event: dict[str, Any]) -> None:
        """Queue one event (with its ``seq``); it is delivered in order once the broker has it."""
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"event needs an integer 'seq', got {seq!r}")
        dropped = self._delivery.put(seq, json.dumps(event, separators=(",", ":")))
        if dropped:
            self._count_drops(len(dropped))

    def publish_state(self, state: dict[str, Any]) -> None:
        """Publish the retained summary (``faces``, ``dominant``, ``fps``); the latest one wins."""
        self._delivery.set_state(json.dumps(state, separators=(",", ":")))
        self._log_drops()

    @property
    def running(self) -> bool:
        """Started and not closed yet."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._delivery.is_connected

    def stats(self) -> SinkStats:
        """Counters for /metrics and the status line."""
        published, queued = self._delivery.counts()
        with self._lock:
            dropped = self._dropped
        return SinkStats(
            published=published,
            queued=queued,
            dropped=dropped,
            connected=self.connected,
            lost=self._delivery.lost,
            damaged_files=self._delivery.damaged_files,
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, publish ``offline``, disconnect."""
        deadline = time.monotonic() + timeout_s
        left = self._delivery.stop(deadline - time.monotonic())
        self._log_drops(final=True)
        if self.connected:
            info = self._client.publish(
                self.status_topic, STATUS_OFFLINE, qos=min(1, self._max_qos), retain=self._retain
            )
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
        self._delivery.close()
        stats = self.stats()
        logger.info("MQTT: stopped (%d events published, %d dropped)", stats.published, stats.dropped)

    def discovery_configs(self) -> dict[str, dict[str, Any]]:
        """Retained Home Assistant discovery configs by topic (see discovery.py)."""
        return discovery_configs(
            self.config.discovery_prefix,
            self.device_id,
            self.state_topic,
            self.status_topic,
            self.events_topic,
        )

    # -- what the sender thread hands to paho ----------------------------------------------------------

    def _send_event(self, payload: str) -> int | None:
        qos = min(self.config.qos, self._max_qos)
        info = self._client.publish(self.events_topic, payload, qos=qos)
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
            return None  # paho does not keep QoS 0 while disconnected: send it again later
        return info.mid

    def _send_state(self, payload: str) -> None:
        self._client.publish(
            self.state_topic, payload, qos=min(self.config.qos, self._max_qos), retain=self._retain
        )

    def _set_will(self, client: mqtt.Client) -> None:
        client.will_set(self.status_topic, STATUS_OFFLINE, qos=min(1, self._max_qos), retain=self._retain)

    def _adopt_limits(self, client: mqtt.Client, properties: Any, refused: int | None = None) -> None:
        """Take the broker's limits from its CONNACK properties (MQTT 5) or from its refusal of our Last
        Will, and warn once when they make us publish differently from the config."""
        if refused == RETAIN_NOT_SUPPORTED or getattr(properties, "RetainAvailable", 1) == 0:
            self._retain = False
        max_qos = getattr(properties, "MaximumQoS", None)
        if max_qos is not None:
            self._max_qos = int(max_qos)
        elif refused == QOS_NOT_SUPPORTED:
            self._max_qos = 0
        self._set_will(client)  # the next (re)connect uses it
        self._delivery.set_forget_on_disconnect(min(self.config.qos, self._max_qos) == 0)
        told = (self._retain, min(self.config.qos, self._max_qos))
        if told == self._limits_told:
            return
        self._limits_told = told
        changes = []
        if not self._retain:
            changes.append(
                "it keeps no retained messages (retain_available false): status, state and discovery "
                "are published without retain, so a subscriber sees them only from its next update"
            )
        if told[1] < self.config.qos:
            changes.append(
                f"its maximum QoS is {told[1]} (max_qos): events go at QoS {told[1]}, "
                f"not mqtt.qos {self.config.qos}"
            )
        logger.warning(
            "MQTT broker %s limits what it accepts: %s; lift the limit in the broker's config, "
            "or set mqtt.qos to match",
            self.where,
            "; ".join(changes),
        )

    def _count_drops(self, count: int) -> None:
        """Count events dropped past the bound; warn on the first, then with the running count at most
        every ``DROP_WARNING_S`` (see :meth:`_log_drops`)."""
        with self._lock:
            self._dropped += count
            self._drops_unlogged += count
        self._log_drops()

    def _log_drops(self, final: bool = False) -> None:
        """Log the drops not yet logged: the first at once, the rest when ``DROP_WARNING_S`` has passed
        since the last line (checked on every event and every state update) or, with ``final``, now."""
        with self._lock:
            if not self._drops_unlogged:
                return
            now = time.monotonic()
            first = self._drop_logged_at == 0.0
            if not (first or final or now - self._drop_logged_at >= DROP_WARNING_S):
                return
            since = "" if first else f" in the last {now - self._drop_logged_at:.0f} s"
            unlogged, total = self._drops_unlogged, self._dropped
            self._drop_logged_at = now
            self._drops_unlogged = 0
        logger.warning(
            "MQTT outbox full (%d events, broker %s away): dropped the %d oldest%s (%d in all); "
            "raise mqtt.outbox_max to keep more",
            self._outbox_max,
            self.where,
            unlogged,
            since,
            total,
        )

    # -- paho callbacks (paho's network thread) -----------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        threading.current_thread().name = "mqtt"  # paho's network thread, named for logs and stack dumps

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.value in (RETAIN_NOT_SUPPORTED, QOS_NOT_SUPPORTED):
            self._adopt_limits(client, properties, refused=reason.value)  # paho reconnects with a new Will
            return
        if reason.is_failure:
            self._warn(
                "refused:" + str(reason.value),
                f"MQTT broker {self.where} refused the connection: {describe_refusal(reason)}; "
                f"retrying every {RECONNECT_MAX_S} s at most",
            )
            return
        self._warning = None
        self._adopt_limits(client, properties)
        info = client.publish(
            self.status_topic, STATUS_ONLINE, qos=min(1, self._max_qos), retain=self._retain
        )
        self._delivery.connected(info.mid)
        logger.info("MQTT: connected to %s", self.where)
        if self.config.discovery:
            for topic, config in self.discovery_configs().items():
                client.publish(topic, json.dumps(config), qos=min(1, self._max_qos), retain=self._retain)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        err = probe_connect(self.config.host, self.config.port, self._tls, PROBE_TIMEOUT_S)
        reason = describe_connect_error(err) if err is not None else "unknown error"
        self._warn(
            "fail:" + reason,
            f"MQTT broker {self.where} unreachable: {reason}; "
            f"retrying with backoff up to {RECONNECT_MAX_S} s, events are kept meanwhile",
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self._delivery.disconnected():
            self._warn(
                "lost",
                f"MQTT broker {self.where}: connection lost ({reason}); "
                "reconnecting, events are kept meanwhile",
            )
        elif self._warning is None or self._warning[0].startswith("closed"):
            # Closed before any CONNACK: most often TLS settings that do not match the broker's port.
            why = diagnose_closed(self.config.host, self.config.port, self._tls, PROBE_TIMEOUT_S)
            if why is not None:
                self._warn(
                    "closed:" + why,
                    f"MQTT broker {self.where} closed the connection before accepting it: {why}; "
                    f"retrying every {RECONNECT_MAX_S} s at most",
                )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        self._delivery.acknowledged(mid)

    def _warn(self, key: str, message: str) -> None:
        """Log a connection warning once per change of state, and again at most every few minutes."""
        now = time.monotonic()
        last = self._warning
        if last is not None and last[0] == key and now - last[1] < REPEAT_WARNING_S:
            return
        self._warning = (key, now)
        logger.warning(message)
