"""One frame through the stages: detect → crop → classify (one invoke) → track, with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2

from device.camera import Frame
from device.classify import EmotionClassifier
from device.detect import Box, FaceDetector
from device.overlay import FaceLabel
from device.preprocess import face_batch
from device.track import FaceTracker, Track, TrackEvent


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced: the faces' boxes (main-frame pixels), track events, stage seconds.

    On a frame where the tracks coast, the boxes are where the tracks are predicted to be.
    """

    boxes: list[Box]
    events: list[TrackEvent]
    timings: dict[str, float]


class Pipeline:
    """The per-frame work of the daemon, free of threads and I/O so the benchmark runs it as is."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, tracker: FaceTracker) -> None:
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame through detection, classification and tracking."""
        start = time.perf_counter()
        tracker = self.tracker
        boxes = self.detector.detect(
            frame.gray_lores, frame.scale_to_main, tracker.live_boxes(frame.time_s), tracker.all_confirmed
        )
        detected = time.perf_counter()
        if boxes is None:  # nothing searched: the tracks coast, and no face is classified
            events = tracker.coast(frame.time_s)
            shown = [track.shown_box for track in tracker.shown(frame.time_s)]
            timings = {"detect": detected - start, "classify": 0.0, "track": time.perf_counter() - detected}
            return FrameResult(shown, events, timings)
        # The crop comes from the full-resolution frame, whatever image the detector searched.
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY) if boxes else frame.gray_lores
        scores = self.classifier.classify(face_batch(gray, boxes, self.classifier.card.crop))
        classified = time.perf_counter()
        events = self.tracker.update(boxes, scores, frame.time_s)
        tracked = time.perf_counter()
        return FrameResult(
            boxes,
            events,
            {"detect": detected - start, "classify": classified - detected, "track": tracked - classified},
        )


def face_labels(tracks: list[Track], labels: tuple[str, ...]) -> list[FaceLabel]:
    """What the overlay shows for these tracks (``FaceTracker.shown``: the ones placed on this frame)."""
    return [
        FaceLabel(
            face_id=track.face_id,
            box=track.shown_box,
            emotion=track.emotion,
            confidence=float(track.scores[labels.index(track.emotion)]),
            scores=dict(zip(labels, map(float, track.scores), strict=True)),
            confirmed=track.confirmed,
        )
        for track in tracks
    ]
