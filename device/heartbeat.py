"""Heartbeat: the daemon's signs of life: systemd's watchdog and STATUS, /healthz, the retained state."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import sdnotify

from device.config import Config, redact_url
from device.metrics import Metrics
from device.outputs.mood import RoomMood
from device.outputs.sink import EventSink
from device.vision.track import FaceTracker

# A change of the retained state (faces, dominant emotion, camera) is published at most this often;
# an unchanged one every mqtt.state_interval_s.
STATE_CHANGE_MIN_INTERVAL_S = 1.0


def watchdog_interval_s() -> float:
    """Half the watchdog timeout systemd gives us (``WATCHDOG_USEC``, sd_watchdog_enabled(3)), else 5 s."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 5.0


class Heartbeat:
    """Tells systemd, /healthz and the outputs that the frame loop is alive, and how the room looks."""

    def __init__(
        self,
        config: Config,
        notifier: sdnotify.SystemdNotifier,
        metrics: Metrics,
        sinks: tuple[EventSink, ...],
        tracker: FaceTracker,
        mood: RoomMood,
    ) -> None:
        self.config = config
        self._notifier = notifier
        self._metrics = metrics
        self._sinks = sinks  # every output the app built; the app builds this after them
        self._tracker = tracker
        self._mood = mood
        self._last_frame_s = time.monotonic()
        self._watchdog_s = watchdog_interval_s()
        self._last_watchdog = 0.0
        self._state_sent: dict[str, Any] | None = None  # the last state published, without fps
        self._state_sent_at = 0.0
        self._camera_lost = False

    def healthy(self) -> bool:
        """True while frames flow (a frame within the camera's stall timeout) and the camera is not lost."""
        return (
            not self._camera_lost
            and time.monotonic() - self._last_frame_s < self.config.camera.stall_timeout_s
        )

    def frame_done(self, now: float) -> None:
        """A frame went through the whole loop at ``now`` (monotonic)."""
        self._last_frame_s = now

    def beat(self, camera_lost: bool, fps: float) -> None:
        """The loop is alive: feed the systemd watchdog, follow the camera's state, publish the state.

        Called once per frame and, while the camera delivers nothing, from the wait for the next frame:
        the watchdog then catches a hung loop, not a missing camera."""
        now = time.monotonic()
        if now - self._last_watchdog >= self._watchdog_s:
            self._notifier.notify("WATCHDOG=1")
            self._last_watchdog = now
        if camera_lost != self._camera_lost:
            self._camera_lost = camera_lost
            camera = redact_url(self.config.camera.device)
            status = f"camera {camera} lost; reopening it" if camera_lost else f"running on {camera}"
            self._notifier.notify(f"STATUS={status}")
        self._metrics.camera_connected.set(0 if camera_lost else 1)
        self._publish_state(now, fps)

    def stopped(self) -> None:
        """The loop has ended and every face with it: publish the state once more (no faces, 0 fps), or the
        retained state would go on showing the last faces to every later subscriber."""
        for sink in self._sinks:
            sink.publish_state(self.state(0.0))

    def _publish_state(self, now: float, fps: float) -> None:
        """Publish the retained state when it changed (at most every STATE_CHANGE_MIN_INTERVAL_S) and
        every ``mqtt.state_interval_s`` in any case."""
        if not self._sinks:
            return
        state = self.state(fps)
        summary = {key: value for key, value in state.items() if key not in ("fps", "mood_shares")}
        since = now - self._state_sent_at
        changed = summary != self._state_sent
        if (changed and since >= STATE_CHANGE_MIN_INTERVAL_S) or since >= self.config.mqtt.state_interval_s:
            for sink in self._sinks:
                sink.publish_state(state)
            self._state_sent, self._state_sent_at = summary, now

    def state(self, fps: float) -> dict[str, Any]:
        """The retained dashboard summary: confirmed faces, the dominant emotion, fps, and the camera
        (``ok``, or ``lost`` while it delivers nothing and is being reopened: no faces are then known)."""
        if self._camera_lost:
            return {
                "faces": 0,
                "dominant": None,
                "fps": 0.0,
                "camera": "lost",
                "mood": None,
                "mood_shares": {},
            }
        tracks = [t for t in self._tracker.tracks if t.confirmed]
        emotions = Counter(t.emotion for t in tracks)
        dominant = emotions.most_common(1)[0][0] if emotions else None
        return {
            "faces": len(tracks),
            "dominant": dominant,
            "fps": round(fps, 1),
            "camera": "ok",
            "mood": self._mood.dominant(),  # the room mood over mood.window_s, and each emotion's share
            "mood_shares": self._mood.shares(),
        }
