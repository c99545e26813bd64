"""FaceTracker: stable face ids across frames (IoU on predicted boxes), EMA-smoothed scores, track events."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from device.config import TrackConfig
from device.const import (
    APPEARANCE_BINS,
    NEW_TRACK_WINDOW_FRAC,
    REACQUIRE_DISTANCE_FRAC,
    REACQUIRE_MIN_SIMILARITY,
    REACQUIRE_SIZE_RATIO,
)
from device.vision.detect import Box, iou, reading_order


@dataclass
class Track:
    """One face followed over time."""

    face_id: int
    box: Box
    scores: np.ndarray
    first_seen_s: float
    last_seen_s: float
    hits: int = 1
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)
    emotion: str = ""
    announced_emotion: str = ""
    last_event_s: float = 0.0
    emotion_frames: dict[str, int] = field(default_factory=dict)
    shown_box: Box = (0, 0, 0, 0)  # where the face is drawn: its detection, or its prediction while coasting
    shown_s: float = -1.0  # the frame time of shown_box
    seen_frame: int = -1  # the tracker's frame count when a search last found this face
    shown_frame: int = -1  # the tracker's frame count when shown_box was placed
    appearance: np.ndarray | None = None  # a small gray histogram of the face (see appearance())
    failed_checks: int = 0  # the verifier's failures on its boxes in a row: verified on every frame while > 0
    side_px: float = 0.0  # the face's size: its boxes' sides smoothed (0: the first box's side)

    def __post_init__(self) -> None:
        if not self.side_px:
            self.side_px = float(max(self.box[2], self.box[3]))

    @property
    def score_margin(self) -> float:
        """How far the label is from a class boundary: the best smoothed score minus the second, 0..1."""
        second, best = np.partition(self.scores, -2)[-2:]
        return float(best - second)

    def predicted(self, now_s: float) -> Box:
        """The box moved on by its velocity to ``now_s``."""
        dt = now_s - self.last_seen_s
        x, y, w, h = self.box
        return (round(x + self.velocity[0] * dt), round(y + self.velocity[1] * dt), w, h)


@dataclass(frozen=True)
class TrackEvent:
    """A change worth telling subscribers: ``kind`` is ``new``, ``update`` or ``end``."""

    kind: str
    track: Track
    emotion: str
    confidence: float
    scores: dict[str, float]


class FaceTracker:
    """Associates each frame's detections with live tracks and emits new/update/end events."""

    def __init__(self, config: TrackConfig, labels: tuple[str, ...]) -> None:
        self.config = config
        self.labels = labels
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._frame = -1  # frames seen by update() or coast(): which tracks are on a frame is told by this
        self._last_search_frame = -1

    def update(
        self,
        boxes: list[Box],
        scores: np.ndarray | Sequence[np.ndarray | None],
        now_s: float,
        looks: Sequence[np.ndarray | None] | None = None,
    ) -> list[TrackEvent]:
        """Fold one frame's detections into the tracks; return the events.

        ``scores`` has a row per box (the rows of one array, as the benchmark's reference pipeline passes
        them, or a list), or None for a box that was not classified on this frame: that box
        moves its track without a new reading, and must continue a live track (see ``owners``).
        ``looks`` has each box's ``appearance()`` (or None): a face found again after a gap must look
        like the track it continues.
        """
        self._frame += 1
        looks = list(looks) if looks is not None else [None] * len(boxes)
        matched_tracks, matched_boxes = self._associate(boxes, now_s, looks)
        # New tracks are numbered in the boxes' reading order, whatever order the detector found them in
        unmatched = set(range(len(boxes))) - set(matched_boxes)
        starting = sorted(unmatched, key=lambda i: reading_order(boxes[i]))
        unclassified = [boxes[index] for index in starting if scores[index] is None]
        if unclassified:
            raise ValueError(f"boxes {unclassified} start tracks but were not classified")
        events: list[TrackEvent] = []
        self._last_search_frame = self._frame
        alpha = self.config.smoothing
        for track_index, box_index in zip(matched_tracks, matched_boxes, strict=True):
            track = self.tracks[track_index]
            dt = now_s - track.last_seen_s
            if dt > 0:
                vx = (boxes[box_index][0] - track.box[0]) / dt
                vy = (boxes[box_index][1] - track.box[1]) / dt
                if track.hits == 1:  # the first measured motion: nothing to smooth it with
                    track.velocity = (vx, vy)
                else:
                    track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
            track.box = track.shown_box = boxes[box_index]
            track.side_px = 0.7 * track.side_px + 0.3 * max(track.box[2], track.box[3])
            track.shown_s = now_s
            track.seen_frame = track.shown_frame = self._frame
            reading = scores[box_index]
            if reading is not None:
                track.scores = (1 - alpha) * track.scores + alpha * reading
            track.last_seen_s = now_s
            track.hits += 1
            look = looks[box_index]
            if look is not None:
                track.appearance = look if track.appearance is None else 0.8 * track.appearance + 0.2 * look
            self._note_emotion(track)
            events.extend(self._progress(track, now_s))
        for box_index in starting:
            box, reading = boxes[box_index], scores[box_index]
            assert reading is not None  # checked above: every starting box was classified
            track = Track(
                next(self._ids),
                box,
                reading.astype(np.float32),
                now_s,
                now_s,
                shown_box=box,
                shown_s=now_s,
                seen_frame=self._frame,
                shown_frame=self._frame,
                appearance=looks[box_index],
            )
            self._note_emotion(track)
            self.tracks.append(track)
            events.extend(self._progress(track, now_s))
        events.extend(self._expire(now_s))
        return events

    def owners(
        self, boxes: list[Box], now_s: float, looks: Sequence[np.ndarray | None] | None = None
    ) -> list[Track | None]:
        """The live track each of these boxes would continue (None: the box would start a new one)."""
        looks = list(looks) if looks is not None else [None] * len(boxes)
        matched_tracks, matched_boxes = self._associate(boxes, now_s, looks)
        owner: list[Track | None] = [None] * len(boxes)
        for t, b in zip(matched_tracks, matched_boxes, strict=True):
            owner[b] = self.tracks[t]
        return owner

    def coast(self, now_s: float) -> list[TrackEvent]:
        """A frame with no search: the tracks found by the last search move on by their velocity."""
        self._frame += 1
        for track in self.tracks:
            if track.seen_frame == self._last_search_frame:
                track.shown_box, track.shown_s = track.predicted(now_s), now_s
                track.shown_frame = self._frame
        return self._expire(now_s)

    def shown(self) -> list[Track]:
        """The tracks placed on the newest frame (the last update() or coast()), detected or coasting."""
        return [track for track in self.tracks if track.shown_frame == self._frame]

    def missed(self, track: Track) -> bool:
        """True when the last search did not find ``track`` (its face is hidden, turned away or gone)."""
        return track.seen_frame != self._last_search_frame

    @property
    def all_confirmed(self) -> bool:
        """True when there are tracks and every one is confirmed (a frame may then skip the search)."""
        return bool(self.tracks) and all(track.confirmed for track in self.tracks)

    def finish(self) -> list[TrackEvent]:
        """End every live track (the source has ended); return their ``end`` events."""
        events = [self._event("end", track) for track in self.tracks if track.confirmed]
        self.tracks = []
        return events

    def live_boxes(self, now_s: float) -> list[Box]:
        """Where the detector should look for the live tracks on the next frame."""
        return [track.predicted(now_s) for track in self.tracks]

    def window_margins(self, margin: float) -> list[float]:
        """The margin of each live track's search window (``live_boxes`` order), in face sizes: ``margin``,
        or ``NEW_TRACK_WINDOW_FRAC`` for a track found once, whose motion is not known yet."""
        return [margin if track.hits > 1 else max(margin, NEW_TRACK_WINDOW_FRAC) for track in self.tracks]

    def _associate(
        self, boxes: list[Box], now_s: float, looks: Sequence[np.ndarray | None]
    ) -> tuple[list[int], list[int]]:
        """Match boxes to tracks: by IoU with the predicted box first; then, as ByteTrack gives lost
        tracks a second chance, a track the last search missed takes a box of its size near the path from
        where it was to where it was heading, if the box looks like it (``REACQUIRE_*`` in const.py)."""
        pairs = []
        for t, track in enumerate(self.tracks):
            predicted = track.predicted(now_s)
            for b, box in enumerate(boxes):
                overlap = max(iou(predicted, box), iou(track.box, box))
                if overlap < self.config.iou_threshold:
                    continue
                # a track the last search missed (its face hidden) takes by overlap only a face of its last
                # box's size that looks like it: another face coming out from behind the same pillar is not it
                if self.missed(track) and not (
                    _similar_size(box, max(track.box[2], track.box[3])) and _alike(track, looks[b])
                ):
                    continue
                pairs.append((overlap, t, b))
        matched_tracks: list[int] = []
        matched_boxes: list[int] = []
        for _, t, b in sorted(pairs, reverse=True):
            if t not in matched_tracks and b not in matched_boxes:
                matched_tracks.append(t)
                matched_boxes.append(b)
        second = []
        for t, track in enumerate(self.tracks):
            if t in matched_tracks or not self.missed(track):
                continue  # matched, or found by the last search: it moves by IoU alone
            size = track.side_px
            predicted = track.predicted(now_s)
            for b, box in enumerate(boxes):
                if b in matched_boxes or not _similar_size(box, size):
                    continue
                distance = _distance_to_path(box, track.box, predicted)
                if distance > REACQUIRE_DISTANCE_FRAC * size or not _alike(track, looks[b]):
                    continue
                # on the way, the nearer to where the track was heading the likelier: two faces on one
                # track's way are not left to the order of the boxes
                second.append((distance + 0.5 * _centre_distance(box, predicted), t, b))
        for _, t, b in sorted(second):
            if t not in matched_tracks and b not in matched_boxes:
                matched_tracks.append(t)
                matched_boxes.append(b)
        return matched_tracks, matched_boxes

    def _note_emotion(self, track: Track) -> None:
        """Move the track's label to the top score only when it leads the current label by the hysteresis."""
        best = int(np.argmax(track.scores))
        if not track.emotion:
            track.emotion = self.labels[best]
        elif self.labels[best] != track.emotion:
            current = track.scores[self.labels.index(track.emotion)]
            if track.scores[best] - current >= self.config.hysteresis:
                track.emotion = self.labels[best]
        track.emotion_frames[track.emotion] = track.emotion_frames.get(track.emotion, 0) + 1

    def _progress(self, track: Track, now_s: float) -> list[TrackEvent]:
        if not track.confirmed:
            if track.hits < self.config.confirm_frames:
                return []
            track.confirmed = True
            return [self._announce("new", track, now_s)]
        heartbeat = self.config.heartbeat_s
        if track.emotion != track.announced_emotion or (
            heartbeat and now_s - track.last_event_s >= heartbeat
        ):
            return [self._announce("update", track, now_s)]
        return []

    def _announce(self, kind: str, track: Track, now_s: float) -> TrackEvent:
        event = self._event(kind, track)
        track.announced_emotion = event.emotion
        track.last_event_s = now_s
        return event

    def _expire(self, now_s: float) -> list[TrackEvent]:
        events, live = [], []
        for track in self.tracks:
            if now_s - track.last_seen_s > self.config.lost_after_s:
                if track.confirmed:
                    events.append(self._event("end", track))
            else:
                live.append(track)
        self.tracks = live
        return events

    def _event(self, kind: str, track: Track) -> TrackEvent:
        return TrackEvent(
            kind=kind,
            track=track,
            emotion=track.emotion,
            confidence=float(track.scores[self.labels.index(track.emotion)]),
            scores={label: round(float(s), 4) for label, s in zip(self.labels, track.scores, strict=True)},
        )


def _alike(track: Track, look: np.ndarray | None) -> bool:
    """False only when both looks are known and differ (``REACQUIRE_MIN_SIMILARITY``)."""
    if look is None or track.appearance is None:
        return True
    return similarity(track.appearance, look) >= REACQUIRE_MIN_SIMILARITY


def _similar_size(box: Box, side_px: float) -> bool:
    """True when ``box`` may be the face of a track ``side_px`` wide: within ``REACQUIRE_SIZE_RATIO``,
    either way."""
    ratio = max(box[2], box[3]) / max(side_px, 1.0)
    return 1 / REACQUIRE_SIZE_RATIO <= ratio <= REACQUIRE_SIZE_RATIO


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def _distance_to_path(box: Box, last: Box, predicted: Box) -> float:
    """Pixels from ``box``'s centre to the nearest point of the straight path between the centres of the
    track's ``last`` box and its ``predicted`` one: a face that walked behind a pillar, paused there and came
    out on the far side is on that path, wherever it paused."""
    centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    start = np.array([last[0] + last[2] / 2, last[1] + last[3] / 2])
    end = np.array([predicted[0] + predicted[2] / 2, predicted[1] + predicted[3] / 2])
    path = end - start
    length2 = float(path @ path)
    along = 0.0 if length2 == 0 else min(max(float((centre - start) @ path) / length2, 0.0), 1.0)
    return float(np.linalg.norm(centre - (start + along * path)))


def appearance(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """A face's look: the normalised gray histogram of the middle of its box (in ``gray``'s pixels).

    Cheap, and the same at any scale, so a box on the small image and one on the full frame compare.
    """
    x, y, w, h = box
    x0, y0 = max(x + w // 5, 0), max(y + h // 5, 0)
    patch = gray[y0 : max(y + h - h // 5, y0), x0 : max(x + w - w // 5, x0)]
    if patch.size < 16:
        return None
    hist = np.bincount((patch.ravel() // (256 // APPEARANCE_BINS)).astype(np.intp), minlength=APPEARANCE_BINS)
    return (hist / hist.sum()).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two normalised histograms: 1.0 for the same, 0.0 for disjoint."""
    return float(np.sum(np.sqrt(a * b)))
