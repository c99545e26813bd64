"""MqttConnection: paho's client for one broker, as our contract wants it connected.

TLS, the retained Last Will, the limits the broker's CONNACK sets, ``online`` and the discovery configs on
every (re)connect, and one warning per connection problem. paho's network thread owns the socket and
reconnects by itself; the MQTT output (``publish.py``) hands this module what to send. paho's public API only.
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

# The MQTT output's logger, not this module's: the connection's lines keep the name they have in the journal.
logger = logging.getLogger("device.outputs.publish")

PROBE_TIMEOUT_S = 5.0  # paho's own connect timeout
# MQTT 5 CONNACK reason codes of a broker that refuses our Last Will: retained, or above its QoS.
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
# MQTT 5 CONNACK reason 0x84; paho reads a 3.1.1-only broker's return code 1 (unacceptable protocol version,
# MQTT 3.1.1 section 3.2.2.3) as it.
UNSUPPORTED_PROTOCOL_VERSION = 0x84


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


class BrokerLimits:
    """What the broker accepts (retained messages, a maximum QoS), from its CONNACK properties (MQTT 5) or
    from its refusal of our Last Will; until it says, what the config asks for."""

    def __init__(self, qos: int) -> None:
        self.wanted_qos = qos  # mqtt.qos, for events and state
        self.retain = True
        self.max_qos = 2
        self._told: tuple[bool, int] = (True, qos)  # (retain, QoS of events) last told

    def qos(self, wanted: int) -> int:
        """The QoS a message meant for ``wanted`` goes at."""
        return min(wanted, self.max_qos)

    def adopt(self, properties: Any, refused: int | None = None) -> str | None:
        """Take the limits a CONNACK gives; what they change against the config when that differs from what
        was last told (the words of a warning), else None."""
        if refused == RETAIN_NOT_SUPPORTED or getattr(properties, "RetainAvailable", 1) == 0:
            self.retain = False
        max_qos = getattr(properties, "MaximumQoS", None)
        if max_qos is not None:
            self.max_qos = int(max_qos)
        elif refused == QOS_NOT_SUPPORTED:
            self.max_qos = 0
        told = (self.retain, self.qos(self.wanted_qos))
        if told == self._told:
            return None
        self._told = told
        changes = []
        if not self.retain:
            changes.append(
                "it keeps no retained messages (retain_available false): status, state and discovery "
                "are published without retain, so a subscriber sees them only from its next update"
            )
        if told[1] < self.wanted_qos:
            changes.append(
                f"its maximum QoS is {told[1]} (max_qos): events go at QoS {told[1]}, "
                f"not mqtt.qos {self.wanted_qos}"
            )
        return "; ".join(changes)


class MqttConnection:
    """One broker connection: sends what the delivery hands it, and tells the delivery what the broker did."""

    def __init__(self, config: MqttConfig, device_id: str, delivery: Delivery) -> None:
        self.config = config
        self.device_id = device_id
        self.prefix = f"{config.prefix}/{device_id}"
        self.status_topic = f"{self.prefix}/status"
        self.events_topic = f"{self.prefix}/events"
        self.state_topic = f"{self.prefix}/state"
        self.where = f"{config.host}:{config.port}"
        self._delivery = delivery
        self._warning: tuple[str, float] | None = None
        self._limits = BrokerLimits(config.qos)
        self._tls: ssl.SSLContext | None = tls_context(config) if config.tls else None
        # MQTT 5 first: its CONNACK tells the broker's limits (retain, maximum QoS); 3.1.1 for a broker that
        # speaks nothing newer (paho does not step down from 5 by itself).
        self._protocol = mqtt.MQTTv5
        self._closing = False  # close() has begun: a disconnect is ours, and no client replaces this one
        self._retired: mqtt.Client | None = None  # the MQTT 5 client a 3.1.1 one replaces
        self._client_lock = threading.Lock()  # guards _client and _closing against the step down to 3.1.1
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"{APP_NAME}-{self.device_id}",
            protocol=self._protocol,
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

    def connect(self) -> None:
        """Connect in paho's network thread, which reconnects by itself; never raises because the broker is
        down."""
        # clean_start is MQTT 5's; a 3.1.1 client starts clean by its constructor's default
        clean = True if self._protocol == mqtt.MQTTv5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        try:
            self._client.connect_async(
                self.config.host, self.config.port, keepalive=self.config.keepalive_s, clean_start=clean
            )
        except (OSError, ValueError) as err:  # paho checks the host and port here, without connecting
            self._warn(
                "bad", f"MQTT broker {self.where}: cannot connect ({err}); check mqtt.host and mqtt.port"
            )
        self._client.loop_start()

    def close(self, deadline: float) -> None:
        """Publish ``offline`` if connected (its ack awaited until ``deadline``, monotonic); disconnect."""
        with self._client_lock:
            self._closing = True
        if self._delivery.is_connected:
            info = self._announce(self.status_topic, STATUS_OFFLINE)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as err:
                logger.debug("MQTT: offline status not confirmed: %s", err)
        self._client.disconnect()
        self._client.loop_stop()

    def _step_down_to_mqtt311(self, old: mqtt.Client) -> None:
        """Replace ``old`` (disconnecting after an MQTT 5 refusal) with a 3.1.1 client. Runs in a thread of
        its own: ``loop_stop`` joins paho's network thread, which cannot join itself."""
        old.loop_stop()
        with self._client_lock:
            if self._closing:
                return
            self._client = self._make_client()
            self.connect()

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

    def send_event(self, payload: str) -> int | None:
        """Publish one event; its message id, or None when it must be sent again later."""
        qos = self._limits.qos(self.config.qos)
        info = self._client.publish(self.events_topic, payload, qos=qos)
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
            return None  # paho does not keep QoS 0 while disconnected: send it again later
        return info.mid

    def send_state(self, payload: str) -> None:
        """Publish the retained state."""
        self._client.publish(
            self.state_topic, payload, qos=self._limits.qos(self.config.qos), retain=self._limits.retain
        )

    def _announce(self, topic: str, payload: str) -> mqtt.MQTTMessageInfo:
        """Publish what describes the device (status, discovery): retained, QoS 1, as the broker allows."""
        return self._client.publish(topic, payload, qos=self._limits.qos(1), retain=self._limits.retain)

    def _set_will(self, client: mqtt.Client) -> None:
        client.will_set(
            self.status_topic, STATUS_OFFLINE, qos=self._limits.qos(1), retain=self._limits.retain
        )

    def _adopt_limits(self, client: mqtt.Client, properties: Any, refused: int | None = None) -> None:
        """Take the broker's limits, and warn once when they make us publish differently from the config."""
        changes = self._limits.adopt(properties, refused)
        self._set_will(client)  # the next (re)connect uses it
        self._delivery.set_forget_on_disconnect(self._limits.qos(self.config.qos) == 0)
        if changes is not None:
            logger.warning(
                "MQTT broker %s limits what it accepts: %s; lift the limit in the broker's config, "
                "or set mqtt.qos to match",
                self.where,
                changes,
            )

    # -- paho callbacks (paho's network thread) -----------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        threading.current_thread().name = "mqtt"  # paho's network thread, named for logs and stack dumps

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.value == UNSUPPORTED_PROTOCOL_VERSION and self._protocol == mqtt.MQTTv5:
            logger.info("MQTT broker %s speaks MQTT 3.1.1, not 5: connecting with MQTT 3.1.1", self.where)
            self._protocol = mqtt.MQTTv311
            self._retired = client
            client.disconnect()  # ends this client's network thread instead of retrying MQTT 5
            threading.Thread(
                target=self._step_down_to_mqtt311, args=(client,), name="mqtt-3.1.1", daemon=True
            ).start()
            return
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
        info = self._announce(self.status_topic, STATUS_ONLINE)
        self._delivery.connected(info.mid)
        logger.info("MQTT: connected to %s", self.where)
        if self.config.discovery:
            for topic, config in self.discovery_configs().items():
                self._announce(topic, json.dumps(config))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        err = probe_connect(self.config.host, self.config.port, self._tls, PROBE_TIMEOUT_S)
        reason = describe_connect_error(err, self._tls is not None) if err is not None else "unknown error"
        self._warn(
            "fail:" + reason,
            f"MQTT broker {self.where} unreachable: {reason}; "
            f"retrying with backoff up to {RECONNECT_MAX_S} s, events are kept meanwhile",
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self._closing or client is self._retired:  # our own stop, or the MQTT 5 client stepped down
            self._delivery.disconnected()
            return
        if self._delivery.disconnected():
            # paho says "Unspecified error" when the socket closed without a DISCONNECT: the broker went away
            cause = "the broker closed it or stopped" if str(reason) == "Unspecified error" else str(reason)
            self._warn(
                "lost",
                f"MQTT broker {self.where}: connection lost ({cause}); "
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
