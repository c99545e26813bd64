"""Ordered, at-least-once delivery of the outbox's events through an MQTT client: the sender's state machine.

Events wait in the outbox (``device.outputs.outbox``) until the broker acknowledges them. The sender thread
(:meth:`Delivery.run`) hands them to the client in ``seq`` order, ``INFLIGHT_WINDOW`` unacknowledged at most,
and only while the connection is *ready*: after a (re)connect the client first re-sends what it held from
before, and the acknowledgement of the ``online`` status (published first on every connect) says it has, so
new events never overtake old ones. Nothing here knows paho: the client is reached through the two send
functions given to :meth:`run`, and its callbacks report to :meth:`connected`, :meth:`disconnected` and
:meth:`acknowledged`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from device.const import INFLIGHT_WINDOW
from device.outputs.outbox import Outbox

# Hand one event payload to the client: its message id, or None when the client did not take it (send again).
SendEvent = Callable[[str], "int | None"]
SendState = Callable[[str], object]


class Delivery:
    """The outbox, what the client holds of it, and whether the connection is ready; thread-safe."""

    def __init__(self, outbox: Outbox, forget_on_disconnect: bool) -> None:
        """``forget_on_disconnect``: the client drops unsent messages on a disconnect (MQTT QoS 0)."""
        self._outbox = outbox
        self._forget_on_disconnect = forget_on_disconnect
        self._cond = threading.Condition()
        self._handed: dict[int, int | None] = {}  # seq → client mid, for events the client holds
        self._mids: dict[int, int] = {}  # client mid → seq
        self._early_acks: set[int] = set()  # mids acknowledged before the client's publish returned them
        self._handing = False  # the sender is handing a batch to the client
        self._online_mid: int | None = None  # the status message whose acknowledgement makes us ready
        self._connected = False
        self._ready = False  # connected, and the client has re-sent what it held from before
        self._stopping = False
        self._state: str | None = None
        self._state_dirty = False
        self._published = 0
        self._last_seq = outbox.last_seq()
        self._queued_at_close: int | None = None  # the outbox's count, kept when it is closed

    # -- the producer (the frame loop) --------------------------------------------------------------

    def put(self, seq: int, payload: str) -> list[int]:
        """Queue one event; return the seqs dropped past the outbox's bound (never one the client holds)."""
        with self._cond:
            dropped = self._outbox.put(seq, payload, keep=self._handed)
            self._last_seq = max(self._last_seq, seq)
            self._cond.notify_all()
            return dropped

    def set_state(self, payload: str) -> None:
        """The newest state summary; sent once the connection is ready, the older unsent one replaced."""
        with self._cond:
            self._state = payload
            self._state_dirty = True
            self._cond.notify_all()

    def last_seq(self) -> int:
        with self._cond:
            return self._last_seq

    def set_forget_on_disconnect(self, forget: bool) -> None:
        """The broker's limits made events QoS 0 (or no longer): the client keeps none across a disconnect."""
        with self._cond:
            self._forget_on_disconnect = forget

    @property
    def lost(self) -> int:
        """Undelivered events given up: in an outbox file damaged at start or unreadable while running, or
        held in memory at close."""
        return self._outbox.lost

    @property
    def damaged_files(self) -> int:
        return self._outbox.damaged_files

    @property
    def close_problem(self) -> str:
        """Why :meth:`close` lost events, and what to do ("" when it lost none)."""
        return self._outbox.close_problem

    @property
    def is_connected(self) -> bool:
        return self._connected

    def counts(self) -> tuple[int, int]:
        """(events the broker has acknowledged, events waiting in the outbox)."""
        with self._cond:
            queued = self._queued_at_close if self._queued_at_close is not None else len(self._outbox)
            return self._published, queued

    # -- the connection (the client's network thread) -----------------------------------------------

    def connected(self, online_mid: int) -> None:
        """The broker accepted us and the ``online`` status went out as ``online_mid``."""
        with self._cond:
            self._connected = True
            self._online_mid = online_mid
            if self._state is not None:  # the retained state goes out again on every connect
                self._state_dirty = True

    def disconnected(self) -> bool:
        """The connection is gone; return whether it was up (and we are not stopping)."""
        with self._cond:
            was_connected = self._connected
            self._connected = False
            self._ready = False
            self._online_mid = None
            if self._forget_on_disconnect:  # the client forgot them; ours stay in the outbox
                for mid in [mid for mid, seq in self._mids.items() if seq in self._handed]:
                    self._mids.pop(mid)
                self._handed.clear()
            self._cond.notify_all()
            return was_connected and not self._stopping

    def acknowledged(self, mid: int) -> None:
        """The broker has message ``mid``. paho holds its message lock here: never call into it from this."""
        with self._cond:
            if mid == self._online_mid:
                # The client re-sends what it held before it reads any acknowledgement, so from here on
                # new events go out after the old ones.
                self._online_mid = None
                self._ready = True
                self._cond.notify_all()
            elif mid in self._mids:
                self._confirm(mid)
            elif self._handing:
                self._early_acks.add(mid)

    # -- the sender thread ----------------------------------------------------------------------------

    def run(self, send_event: SendEvent, send_state: SendState) -> None:
        """Hand queued events to the client in seq order while ready, until :meth:`stop`."""
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._stopping:  # stop() has flushed what it could
                    return
                state = self._state if self._state_dirty else None
                self._state_dirty = False
                batch = self._outbox.head(INFLIGHT_WINDOW - len(self._handed), skip=self._handed)
                for seq, _ in batch:
                    self._handed[seq] = None
                self._handing = True
            if state is not None:
                send_state(state)
            for seq, payload in batch:
                mid = send_event(payload)
                with self._cond:
                    if mid is None:
                        self._handed.pop(seq, None)  # not taken: send it again later
                        continue
                    if seq not in self._handed:  # forgotten by a disconnect meanwhile
                        continue
                    self._handed[seq] = mid
                    self._mids[mid] = seq
                    if mid in self._early_acks:
                        self._early_acks.discard(mid)
                        self._confirm(mid)
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

    # -- shut-down ------------------------------------------------------------------------------------

    def stop(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the outbox to empty while connected, then end :meth:`run`;
        return how many events are left undelivered."""
        with self._cond:
            # Flush only while connected: a broker that is away will not come back for our shutdown.
            self._cond.wait_for(
                lambda: not self._connected or (len(self._outbox) == 0 and not self._state_dirty),
                timeout=max(0.0, timeout_s),
            )
            left = len(self._outbox)
            self._stopping = True
            self._cond.notify_all()
            return left

    def close(self) -> int:
        """Close the outbox; return how many undelivered events are lost with it that its file would have
        kept (held in memory, a full card). ``counts`` then gives the events the file keeps."""
        with self._cond:
            queued = len(self._outbox)
            lost = self._outbox.close()
            self._queued_at_close = queued - lost
            return lost
