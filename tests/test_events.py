"""Event payloads (docs/MQTT.md): what their times say."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from device.config import TrackConfig
from device.outputs.events import EventFactory, iso_time
from device.vision.track import FaceTracker

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def parse_iso(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_an_end_events_duration_is_the_time_the_face_was_in_view() -> None:
    """A face last seen at 5.0 s is declared gone track.lost_after_s later; its end event said duration_s 7.2
    (the wait included) where it was in view for 5.0 s from its first frame."""
    tracker = FaceTracker(TrackConfig(confirm_frames=3, lost_after_s=2.0), EMOTIONS)
    factory = EventFactory("dev", 1_000_000.0)
    scores = np.eye(len(EMOTIONS), dtype=np.float32)[[EMOTIONS.index("happy")]]
    payloads = []
    for index in range(200):
        now_s = index / 10.0
        seen = index <= 50  # in view for 0.0-5.0 s
        events = tracker.update([(100, 100, 80, 80)] if seen else [], scores if seen else [], now_s)
        payloads += [factory.build(event, index, now_s, (640, 480)) for event in events]
    new, end = payloads[0], payloads[-1]
    assert (new["type"], end["type"]) == ("new", "end")
    assert new["duration_s"] == pytest.approx(0.2)  # the third frame confirms it
    assert end["duration_s"] == pytest.approx(5.0)
    assert end["last_seen"] == iso_time(1_000_005.0)
    assert parse_iso(end["ts"]) - parse_iso(end["first_seen"]) > 7.0  # declared gone after the wait
