"""Face events in the schema of ARCHITECTURE.md: tracker events become numbered payloads for the outputs."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from device.const import EVENT_SCHEMA_VERSION
from device.vision.track import TrackEvent

logger = logging.getLogger(__name__)


def iso_time(epoch_s: float) -> str:
    """UTC ISO-8601 with milliseconds and a Z, as in the event schema."""
    stamp = datetime.fromtimestamp(epoch_s, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class EventFactory:
    """Turns tracker events into schema payloads, numbering them with a gap-free ``seq``.

    Track times are seconds on the source's clock; ``clock_origin_s`` is the wall time of that
    clock's zero, so a video file gives repeatable relative times and a camera gives real ones.
    ``run`` is a random id of this run of the daemon, in every event: ``seq`` never goes back within a
    run, and continues across runs while the outbox file's ``.seq`` is kept; a new ``run`` tells a
    subscriber when numbering may have started again (docs/MQTT.md). ``duration_s`` is the seconds from
    ``first_seen`` to the event, or in an ``end`` event to ``last_seen``, the face's last frame.
    """

    def __init__(self, device_id: str, clock_origin_s: float, last_seq: int = 0, run: str = "") -> None:
        self.device_id = device_id
        self.clock_origin_s = clock_origin_s
        self.seq = last_seq
        self.run = run or secrets.token_hex(4)

    def build(
        self, event: TrackEvent, frame: int, now_s: float, frame_size: tuple[int, int]
    ) -> dict[str, Any]:
        """The payload for one event; ``now_s`` is the frame's time on the source clock."""
        self.seq += 1
        track = event.track
        # How long the face has been in view: an end event comes track.lost_after_s after the face was last
        # seen, and that wait is not time in view (a face seen 5.0 s was said to have stayed 7.2 s).
        seen_until_s = track.last_seen_s if event.kind == "end" else max(now_s, track.last_seen_s)
        payload: dict[str, Any] = {
            "schema": EVENT_SCHEMA_VERSION,
            "type": event.kind,
            "device": self.device_id,
            "face_id": track.face_id,
            "ts": iso_time(self.clock_origin_s + now_s),
            "frame": frame,
            "seq": self.seq,
            "run": self.run,
            "emotion": event.emotion,
            "confidence": round(event.confidence, 4),
            "scores": event.scores,
            "box": list(track.box),
            "frame_size": list(frame_size),
            "first_seen": iso_time(self.clock_origin_s + track.first_seen_s),
            "duration_s": round(seen_until_s - track.first_seen_s, 3),
        }
        if event.kind == "end":
            payload["last_seen"] = iso_time(self.clock_origin_s + track.last_seen_s)
            total = sum(track.emotion_frames.values()) or 1
            payload["summary"] = {
                label: round(count / total, 3)
                for label, count in sorted(track.emotion_frames.items(), key=lambda kv: -kv[1])
            }
        return payload
