"""One frame through the stages: detect → crop → classify (one invoke) → track, with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.const import EXACT_BOX_SCORE_MARGIN, WIDER_SEARCH_FACTOR
from device.sources.camera import Frame
from device.vision.classify import EmotionClassifier
from device.vision.detect import Box, FaceDetector, FaceVerifier, as_box, covers, iou
from device.vision.preprocess import face_batch
from device.vision.schedule import Search, SearchBudget, SearchSchedule
from device.vision.track import FaceTracker, Track, TrackEvent, appearance


@dataclass(frozen=True)
class FaceLabel:
    """One tracked face as the screen shows it (see face_labels); box is (x, y, w, h) in frame pixels."""

    face_id: int
    box: tuple[int, int, int, int]
    emotion: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    confirmed: bool = True


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced: faces' boxes (main-frame pixels), their scores, track events, stage seconds.

    ``scores`` has a row per box, None for a box not classified on this frame. On a frame where the
    tracks coast, the boxes are where the tracks are predicted to be and nothing is classified.
    """

    boxes: list[Box]
    scores: list[np.ndarray | None]
    events: list[TrackEvent]
    timings: dict[str, float]


class Pipeline:
    """The per-frame work of the daemon, free of threads and I/O so the benchmark runs it as is.

    Every face is classified on the frames that search around tracks, at the box found on the
    full-resolution frame. A whole-frame search, on the small image, classifies only the faces that
    start a track; the others only move their tracks.
    """

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, tracker: FaceTracker) -> None:
        self.detector = detector
        self.schedule = SearchSchedule(detector.config)
        self.budget = SearchBudget(detector.config)
        self.verifier = FaceVerifier() if detector.config.verify else None
        self.classifier = classifier
        self.tracker = tracker

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame through detection, classification and tracking."""
        start = time.perf_counter()
        tracker = self.tracker
        self.budget.frame(frame.index, frame.time_s)
        search = self.schedule.next(bool(tracker.tracks), tracker.all_confirmed)
        if search is Search.NONE:
            events = tracker.coast(frame.time_s)
            shown = [track.shown_box for track in tracker.shown()]
            timings = {"detect": 0.0, "classify": 0.0, "track": time.perf_counter() - start}
            return FrameResult(shown, [None] * len(shown), events, timings)
        gray = _Gray(frame)
        boxes = self._find(frame, search, gray)
        if gray.made:
            looks = [appearance(gray.get(), box) for box in boxes]
        else:  # a whole-frame search alone: the faces' looks from the small image
            scale = frame.scale_to_main
            looks = [appearance(frame.gray_lores, as_box(v / scale for v in box)) for box in boxes]
        owners = tracker.owners(boxes, frame.time_s, looks)
        kept = self._verified(search, gray, boxes, owners)
        boxes = [boxes[i] for i in kept]
        looks = [looks[i] for i in kept]
        # A whole-frame search classifies only the faces that start a track; a track search, every face.
        full = search is not Search.TRACKS
        wanted = [k for k, i in enumerate(kept) if owners[i] is None] if full else list(range(len(boxes)))
        detected = time.perf_counter()
        if full:
            self.budget.searched(detected - start, frame.gray_lores.shape[1])
        scores: list[np.ndarray | None] = [None] * len(boxes)
        if wanted:
            batch = face_batch(gray.get(), [boxes[i] for i in wanted], self.classifier.card.crop)
            for index, row in zip(wanted, self.classifier.classify(batch), strict=True):
                scores[index] = row
        classified = time.perf_counter()
        events = tracker.update(boxes, scores, frame.time_s, looks)
        tracked = time.perf_counter()
        return FrameResult(
            boxes,
            scores,
            events,
            {"detect": detected - start, "classify": classified - detected, "track": tracked - classified},
        )

    def _find(self, frame: Frame, search: Search, gray: _Gray) -> list[Box]:
        """The frame's face boxes (main-frame pixels): the search the schedule chose, then a second look
        for the live tracks a whole-frame search missed and for the hints of small faces."""
        tracker = self.tracker
        lores_width = frame.gray_lores.shape[1]
        # Each live track's window: its margin, and whether it gives the whole-frame search's own box (an
        # announced track whose label is near a class boundary, so its label is the one a whole-frame search
        # would give wherever the track was predicted) or its window's own, which moves with the window and
        # costs about a third as much (a clear label, which a few pixels cannot change; or a track not yet
        # announced: a crowd face whose whole-frame box weighs just under the verifier's threshold gets
        # further tries, the 20th face).
        margins = tracker.window_margins(self.detector.config.track_window_frac)
        exact = [t.confirmed and t.score_margin < EXACT_BOX_SCORE_MARGIN for t in tracker.tracks]
        live = tracker.live_boxes(frame.time_s)
        if search is Search.TRACKS:
            return self.detector.search_tracks(gray.get(), live, margins, exact)
        if search is Search.FULL_WIDER and lores_width < frame.image.shape[1]:
            # As on the usual whole-frame search, a tracked face found here only moves its track (it is
            # classified on the track searches, at the whole frame's own box).
            wider, scale = wider_image(gray.get(), lores_width)
            scan = self.detector.scan(wider, scale)
        else:
            scan = self.detector.scan(
                frame.gray_lores, frame.scale_to_main, second=search is Search.FULL_SECOND
            )
        boxes, hints = scan.boxes, scan.hints
        if tracker.tracks:
            # Live tracks the whole-frame search did not find (a face in a crowd that Haar misses at the
            # small image's scale) are searched for in their windows, on the full-resolution frame.
            threshold = tracker.config.iou_threshold
            missed = [
                (t, m, e)
                for t, m, e in zip(live, margins, exact, strict=True)
                if all(iou(t, b) < threshold for b in boxes)
            ]
            if missed:
                found = self.detector.search_tracks(
                    gray.get(),
                    [t for t, _, _ in missed],
                    [m for _, m, _ in missed],
                    [e for _, _, e in missed],
                )
                boxes = boxes + [b for b in found if all(iou(b, other) < 0.3 for other in boxes)]
        # Small faces the coarse scan of the small image sampled too sparsely to group: each hint that is no
        # live track is searched again in its window, on the full-resolution frame, with the reference's own
        # step and minNeighbors. What it finds is new and goes to the verifier.
        if any(not any(covers(k, h) for k in live + boxes) for h in hints):
            boxes = boxes + self.detector.search_hints(gray.get(), hints, live + boxes)
        return boxes

    def _verified(
        self, search: Search, gray: _Gray, boxes: list[Box], owners: list[Track | None]
    ) -> list[int]:
        """The indices of the boxes kept after the verifier (all of them when it is off).

        A box must pass the verifier when it would start a track, continue one not yet announced, one whose
        last check failed or one the last search missed (a lost track must not be taken back by a false face
        on its path), and, on the usual whole-frame searches, for every track: a false face never becomes a
        track (the cat's face of the clutter clip passes on one frame in three), and a track that a coin took
        over as its face walked past it is not followed on the coin. An announced track keeps a box that fails
        once (a face in a crowd fails now and then); two in a row, it does not (see ``keeps``).
        """
        tracker = self.tracker
        spot = search is Search.FULL
        checks = [
            owner is None or not owner.confirmed or owner.failed_checks > 0 or spot or tracker.missed(owner)
            for owner in owners
        ]
        if self.verifier is None or not any(checks):
            return list(range(len(boxes)))
        kept = []
        for index, (owner, box, check) in enumerate(zip(owners, boxes, checks, strict=True)):
            passed = not check or self.verifier.accepts(gray.get(), box)
            if owner is None or not check:
                if passed:
                    kept.append(index)
                continue
            owner.failed_checks = 0 if passed else owner.failed_checks + 1
            if keeps(owner, passed, tracker.missed(owner)):
                kept.append(index)
        return kept


class _Gray:
    """The frame in full-resolution gray, converted once, when a step first needs it (track windows, the
    verifier, the classifier's crops): a frame that only gets a whole-frame search never converts it."""

    def __init__(self, frame: Frame) -> None:
        self._frame = frame
        self._gray: np.ndarray | None = None

    @property
    def made(self) -> bool:
        return self._gray is not None

    def get(self) -> np.ndarray:
        if self._gray is None:
            self._gray = cv2.cvtColor(self._frame.image, cv2.COLOR_BGR2GRAY)
        return self._gray


def keeps(owner: Track, passed: bool, missed: bool) -> bool:
    """Whether a box the verifier checked goes on to continue ``owner`` (its ``failed_checks`` already
    counts this check): one that passed does; an announced track keeps a box that fails once (a face in a
    crowd fails now and then), unless the last search missed the track: a lost track is taken back only by
    a box that passes, never by a false one on its way."""
    return passed or (owner.confirmed and owner.failed_checks < 2 and not missed)


def wider_image(gray_main: np.ndarray, lores_width_px: int) -> tuple[np.ndarray, float]:
    """The detection image of a ``Search.FULL_WIDER`` frame: ``WIDER_SEARCH_FACTOR`` times the usual width
    (even, at most the frame's), and its scale to the main frame."""
    height, width = gray_main.shape[:2]
    wide = min(round(lores_width_px * WIDER_SEARCH_FACTOR / 2) * 2, width)
    scale = width / wide
    small = cv2.resize(gray_main, (wide, max(round(height / scale), 1)), interpolation=cv2.INTER_AREA)
    return small, scale


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
