"""EventPublisher: the MQTT output. Queues events and state for the broker in order; counts what it drops.

What is where: the connection to the broker (paho, TLS, the Last Will, the broker's limits, announcing the
device) is ``mqtt_client.py``, the ordered at-least-once delivery of events is ``delivery.py``, the bounded
outbox it drains is ``outbox.py``, the Home Assistant discovery payloads are ``discovery.py``, and the wording
of connection problems is ``mqtt_wording.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from device.config import MqttConfig
from device.const import DROP_WARNING_S
from device.outputs.delivery import Delivery
from device.outputs.mqtt_client import MqttConnection
from device.outputs.outbox import open_outbox
from device.outputs.sink import EventSink, SinkStats

logger = logging.getLogger(__name__)


class EventPublisher(EventSink):
    """Publishes the device's status, face events, state and discovery configs to one MQTT broker."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, device_id: str) -> None:
        self.config = config
        self._delivery = Delivery(
            open_outbox(config.outbox_path, config.outbox_max), forget_on_disconnect=config.qos == 0
        )
        self._connection = MqttConnection(config, device_id, self._delivery)
        self._lock = threading.Lock()  # the drop counters
        self._dropped = 0
        self._drops_unlogged = 0
        self._drop_logged_at = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect in the background and start the sender; never raises because the broker is down."""
        logger.info("MQTT: publishing to %s as %s/...", self._connection.where, self._connection.prefix)
        self._connection.connect()
        self._thread = threading.Thread(
            target=self._delivery.run,
            args=(self._connection.send_event, self._connection.send_state),
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

    def stats(self) -> SinkStats:
        """Counters for /metrics and the status line."""
        published, queued = self._delivery.counts()
        with self._lock:
            dropped = self._dropped
        return SinkStats(
            published=published,
            queued=queued,
            dropped=dropped,
            connected=self._delivery.is_connected,
            lost=self._delivery.lost,
            damaged_files=self._delivery.damaged_files,
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, publish ``offline``, disconnect."""
        deadline = time.monotonic() + timeout_s
        self._delivery.stop(deadline - time.monotonic())
        self._log_drops(final=True)
        self._connection.close(deadline)
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        lost = self._delivery.close()
        stats = self.stats()
        if stats.queued + lost:
            path = self.config.outbox_path
            if not path:
                fate = "lost"
            elif lost:
                why = self._delivery.close_problem  # a full card, or one that cannot be read
                fate = f"{stats.queued} kept in {path}, {lost} lost: held in memory, as {why}"
            else:
                fate = f"kept in {path}"
            logger.warning(
                "MQTT: stopped with %d events not delivered to %s (%s)",
                stats.queued + lost,
                self._connection.where,
                fate,
            )
        logger.info("MQTT: stopped (%d events published, %d dropped)", stats.published, stats.dropped)

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
            self.config.outbox_max,
            self._connection.where,
            unlogged,
            since,
            total,
        )
