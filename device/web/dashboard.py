"""What the web page shows: the faces in view (from the events), their scores over the last minutes, the
room mood, and the history store; fed by the frame loop, read by the HTTP threads."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from device.const import HISTORY_SAMPLE_S, SERIES_S
from device.outputs.mood import RoomMood
from device.outputs.sink import EventSink, SinkStats
from device.web.history import HistoryStore


class Dashboard(EventSink):
    """An EventSink for the page: a face card per face between its ``new`` and ``end`` events, showing
    the emotion and confidence the events show; ``observe`` adds the tracks' smoothed scores and the
    room mood to the live series once a second, and a sample to the history every HISTORY_SAMPLE_S."""

    name = "dashboard"

    def __init__(self, labels: tuple[str, ...], mood: RoomMood, history: HistoryStore) -> None:
        self.labels = labels
        self.mood = mood
        self.history = history
        self._lock = threading.Lock()
        self._faces: dict[int, dict[str, Any]] = {}
        self._series: dict[int, deque[tuple[float, list[float]]]] = {}
        self._mood_series: deque[tuple[float, int, list[float]]] = deque()
        self._history_at = 0.0
        self._published = 0

    # -- EventSink ------------------------------------------------------------------------------
    def publish_event(self, event: dict[str, Any]) -> None:
        face_id = int(event["face_id"])
        with self._lock:
            self._published += 1
            if event["type"] == "end":
                self._faces.pop(face_id, None)
                return
            self._faces[face_id] = {
                "id": face_id,
                "emotion": event["emotion"],
                "confidence": event["confidence"],
                "duration_s": float(event.get("duration_s", 0.0)),
                "at": time.monotonic(),
            }

    def publish_state(self, state: dict[str, Any]) -> None:
        pass

    def stats(self) -> SinkStats:
        return SinkStats(published=self._published)

    def close(self) -> None:
        self.history.close()

    # -- fed by the frame loop ------------------------------------------------------------------
    def observe(self, now_s: float, tracks: list[tuple[int, str, list[float]]]) -> None:
        """The confirmed tracks now: ``(face id, emotion, smoothed scores)``; ``now_s`` is epoch seconds.

        A clock set back (a Pi without a real-time clock, corrected) voids what was observed after ``now_s``:
        those series points are dropped and the next history sample is taken now, not when the clock gets back
        to where it was."""
        if now_s < self._history_at:
            self._history_at = now_s - HISTORY_SAMPLE_S
        with self._lock:
            for points in self._series.values():
                while points and points[-1][0] > now_s:
                    points.pop()
            while self._mood_series and self._mood_series[-1][0] > now_s:
                self._mood_series.pop()
            for face_id, _emotion, scores in tracks:
                self._series.setdefault(face_id, deque()).append((now_s, [round(s, 3) for s in scores]))
            shares = self.mood.shares()
            self._mood_series.append((now_s, len(tracks), [shares.get(label, 0.0) for label in self.labels]))
            horizon = now_s - SERIES_S
            for face_id in list(self._series):
                points = self._series[face_id]
                while points and points[0][0] < horizon:
                    points.popleft()
                if not points:
                    del self._series[face_id]
            while self._mood_series and self._mood_series[0][0] < horizon:
                self._mood_series.popleft()
        if now_s - self._history_at >= HISTORY_SAMPLE_S:
            self._history_at = now_s
            self.history.add(
                [
                    (now_s, face_id, emotion, max(scores) if scores else 0.0)
                    for face_id, emotion, scores in tracks
                ]
            )

    # -- read by the page -----------------------------------------------------------------------
    def faces(self) -> dict[str, Any]:
        """The face cards and each face's score series (``[epoch s, [score per label]]``)."""
        now = time.monotonic()
        with self._lock:
            cards = [
                {
                    "id": face["id"],
                    "emotion": face["emotion"],
                    "confidence": face["confidence"],
                    "on_screen_s": round(face["duration_s"] + now - face["at"], 1),
                }
                for face in sorted(self._faces.values(), key=lambda f: f["id"])
            ]
            series = {str(face_id): [[t, s] for t, s in points] for face_id, points in self._series.items()}
        return {"labels": list(self.labels), "faces": cards, "series": series}

    def mood_json(self) -> dict[str, Any]:
        """The room mood now and its recent series (``[epoch s, faces, [share per label]]``)."""
        with self._lock:
            series = [[t, n, s] for t, n, s in self._mood_series]
        return {
            "labels": list(self.labels),
            "window_s": self.mood.window_s,
            "shares": self.mood.shares(),
            "dominant": self.mood.dominant(),
            "series": series,
        }
