"""The one interface every event output implements (JSON lines, MQTT, the web dashboard), and its counters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SinkStats:
    """What an output has done, for /metrics and the status line.

    ``connected`` is None for an output that has no connection (a file), else whether it is up now.
    ``lost`` counts undelivered events given up: in an outbox file found damaged, or that could not be read
    any more while running, or held in memory at stop because the outbox file could not take them (a full
    card); ``damaged_files`` the damaged outbox files moved aside.
    """

    published: int = 0
    queued: int = 0
    dropped: int = 0
    connected: bool | None = None
    lost: int = 0
    damaged_files: int = 0


class EventSink(ABC):
    """Where face events go. The app calls these from its frame loop, so none of them may block on I/O that
    can stall (a broker away); ``close`` flushes within a bounded time."""

    name: str  # "mqtt", "jsonl": the status line and the logs say which

    def start(self) -> None:  # noqa: B027 (optional: most outputs are ready once built)
        """Begin delivering (connect in the background); never raises because a remote end is down."""

    def last_seq(self) -> int:
        """The highest ``seq`` this output has ever been given and remembers across restarts (0: none)."""
        return 0

    @abstractmethod
    def publish_event(self, event: dict[str, Any]) -> None:
        """Deliver one event payload (it carries its ``seq``)."""

    @abstractmethod
    def publish_state(self, state: dict[str, Any]) -> None:
        """Deliver the dashboard summary (``faces``, ``dominant``, ``fps``); the latest one wins."""

    @abstractmethod
    def stats(self) -> SinkStats:
        """The counters as they are now."""

    @abstractmethod
    def close(self) -> None:
        """Flush what can be flushed within a bounded time, then release everything."""


def status_text(sinks: Sequence[EventSink]) -> str:
    """The status line's word on the outputs that connect somewhere: ``mqtt: connected`` or
    ``mqtt: offline (3 queued)``; ``mqtt: off`` when none does (MQTT is the only one so far)."""
    parts = []
    for sink in sinks:
        stats = sink.stats()
        if stats.connected is None:
            continue
        parts.append(
            f"{sink.name}: connected" if stats.connected else f"{sink.name}: offline ({stats.queued} queued)"
        )
    return "  ".join(parts) or "mqtt: off"
