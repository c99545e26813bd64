"""FaceDetector: Haar cascade over the small gray image every N frames, else in windows around tracks."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from device.config import DetectConfig
from device.const import (
    ALONE_WINDOW_SCALE_FACTOR,
    COARSE_STEP_MAX_PX,
    GROUP_EPS,
    HAAR_CASCADE,
    HAAR_WINDOW_PX,
    HINT_MIN_HITS,
    SECOND_CASCADE,
    SECOND_MIN_NEIGHBORS,
    TRACK_HIT_RANGE,
    TRACK_SIZE_RANGE,
    VERIFY_CASCADE,
    VERIFY_FACE_PX,
    VERIFY_MARGIN_FRAC,
    VERIFY_MIN_WEIGHT,
)
from device.errors import MoodcastError

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


def as_box(values: Iterable[float]) -> Box:
    """Four numbers as a Box ``(x, y, w, h)`` of whole pixels (rounded)."""
    x, y, w, h = values
    return (round(x), round(y), round(w), round(h))


def load_cascade(name: str = HAAR_CASCADE) -> cv2.CascadeClassifier:
    """Load a cascade shipped with OpenCV (``cv2.data``)."""
    path = Path(cv2.data.haarcascades) / name  # type: ignore[attr-defined]  # not in OpenCV's stubs
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise MoodcastError(f"{path}: Haar cascade missing or unreadable; reinstall opencv-python-headless<5")
    return cascade


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (whole pixels or not)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


@dataclass(frozen=True)
class FullSearch:
    """A whole-image search: Haar's grouped boxes, and hints of small faces to look at again.

    ``hints`` are clusters of raw hits at the sizes OpenCV scans with a 2-pixel step (``COARSE_STEP_MAX_PX``
    in const.py) that did not reach ``minNeighbors`` and lie on no box: a face there may simply have been
    sampled at a quarter of the positions the reference samples. Both in main-frame pixels.
    """

    boxes: list[Box]
    hints: list[Box]


class _Window(NamedTuple):
    """A track's search window on the full-resolution frame: its corners, the track's size (px), and whether
    it gathers the whole frame's exact hits (``FaceDetector.search_tracks``)."""

    x0: int
    y0: int
    x1: int
    y1: int
    size: int
    exact: bool


class FaceDetector:
    """Finds faces and returns boxes in main-frame pixels; which search a frame gets is schedule.py's call.

    ``scan`` searches the whole small image (boxes, and hints of small faces); ``search_hints`` and
    ``search_tracks`` search windows on the full-resolution frame, over the scales near the face's. Haar's
    cost in a window depends mostly on the face's size relative to the window, not on the pixels, so a
    window costs about as much at full resolution as shrunk; an announced track's window gives exactly the
    box a whole-frame search would: the crop the classifier sees is the one the reference pipeline would cut.
    Where no box found in a track's window covers the track's centre, the window is searched on its own with
    the reference's cascade, then with the second one (``SECOND_CASCADE``, unless ``detect.second_cascade``
    is off): a face only the second cascade finds keeps its track (the crying child of the 20-face crowd).
    """

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._cascade = load_cascade()
        self._second = load_cascade(SECOND_CASCADE)
        self._cascades = (False, True) if config.second_cascade else (False,)  # second=...: a window's tries
        self._size_checked = False

    def scan(self, gray_lores: np.ndarray, scale_to_main: float, second: bool = False) -> FullSearch:
        """Search the whole small image: Haar's boxes and the hints of small faces (see ``FullSearch``).

        One pass of the cascade (the reference's, or with ``second`` the ``SECOND_CASCADE``): its raw hits
        are grouped as ``detectMultiScale`` groups them (the same boxes), and once more, with a lower count,
        at the coarsely scanned sizes for the hints.
        """
        if not self._size_checked:
            self._size_checked = True
            self._check_smallest_face(gray_lores.shape[:2], scale_to_main)
        side = max(int(self.config.min_size_px / scale_to_main), 1)
        cascade, min_neighbors = self._chosen(second)
        raw = cascade.detectMultiScale(
            gray_lores, scaleFactor=self.config.scale_factor, minNeighbors=0, minSize=(side, side)
        )
        hits = [as_box(box) for box in raw]
        boxes = _group(hits, min_neighbors)
        coarse = [box for box in hits if box[2] <= COARSE_STEP_MAX_PX]
        hints = [h for h in _group(coarse, HINT_MIN_HITS - 1) if all(iou(h, b) < 0.3 for b in boxes)]
        return FullSearch(
            [as_box(v * scale_to_main for v in box) for box in boxes],
            [as_box(v * scale_to_main for v in box) for box in hints],
        )

    def find(self, gray_main: np.ndarray, gray_lores: np.ndarray, scale_to_main: float) -> list[Box]:
        """A whole-frame search as the camera path's turns make it: the small image's boxes, the faces its
        hints lead to on the full-resolution frame, and the second cascade's boxes where no face was found
        (a still photo gets the far faces and the weakly scored faces a camera gets over a few frames)."""
        scan = self.scan(gray_lores, scale_to_main)
        boxes = scan.boxes + self.search_hints(gray_main, scan.hints, scan.boxes)
        if not self.config.second_cascade:
            return boxes
        second = self.scan(gray_lores, scale_to_main, second=True)
        return boxes + [box for box in second.boxes if not any(covers(known, box) for known in boxes)]

    def search_hints(self, gray_main: np.ndarray, hints: list[Box], known: list[Box]) -> list[Box]:
        """The faces found by searching each hint's window on the full-resolution frame with the reference's
        step and ``minNeighbors``, except where a ``known`` box (found or tracked) already is."""
        hints = [h for h in hints if not any(covers(k, h) for k in known)]
        if not hints:
            return []
        found: list[Box] = []
        for box in self.search_tracks(gray_main, hints, exact=[False] * len(hints), coarse=False):
            if not any(covers(other, box) for other in known):
                found.append(box)
        return found

    def search_tracks(
        self,
        gray_main: np.ndarray,
        tracks_main: list[Box],
        margins: Sequence[float] | None = None,
        exact: Sequence[bool] | None = None,
        coarse: bool = True,
    ) -> list[Box]:
        """Search a window around each track: ``margins`` of its size on every side (by default
        ``track_window_frac``; wider for a track whose motion is not known yet).

        A window marked ``exact`` (all by default) gets the box a search of the whole full-resolution frame
        gives (the reference's box, not one within Haar's pixel noise of it): its raw hits are those of the
        whole frame's own pyramid levels (see ``_level_hits``), grouped as ``detectMultiScale`` groups them.
        The window searched on its own, as the others are, gives another box for each place it starts,
        so the box, and the label of a face near a class boundary, follow the track's predicted position;
        it costs about a third as much, and is also the second look at a face the whole frame's search
        misses; where the window holds no other track's box (and ``coarse``), with the coarser pyramid step
        ``ALONE_WINDOW_SCALE_FACTOR``: half the cost again. A window not marked exact whose own search boxes
        nothing on its track gathers the exact hits as well (a face leaving the frame). Where still no box
        covers the track's centre (a crowd face's window may hold only its neighbours'), the window is
        searched on its own with the reference's step and cascade, then with the second cascade (see the
        class docstring). ``coarse`` False (hints' windows) keeps the reference's step everywhere.
        """
        height, width = gray_main.shape[:2]
        if margins is None:
            margins = [self.config.track_window_frac] * len(tracks_main)
        if exact is None:
            exact = [True] * len(tracks_main)
        windows: list[_Window] = []
        searched: list[Box] = []  # the track of each window
        for (x, y, w, h), margin, same in zip(tracks_main, margins, exact, strict=True):
            size = max(w, h)
            pad = margin * size
            x0, y0 = max(int(x - pad), 0), max(int(y - pad), 0)
            x1, y1 = min(int(x + w + pad), width), min(int(y + h + pad), height)
            if min(x1 - x0, y1 - y0) >= HAAR_WINDOW_PX:
                windows.append(_Window(x0, y0, x1, y1, size, same))
                searched.append((x, y, w, h))
        # A window not marked exact is searched on its own first; where that boxes nothing on its track
        # (a face leaving the frame, which only the whole frame's denser hits group), it gets the exact hits.
        own = [
            []
            if window.exact
            else self._own_search(gray_main, window, False, coarse and _alone(window, searched))
            for window in windows
        ]
        hits = self._window_hits(
            gray_main,
            [
                window._replace(exact=window.exact or not any(covers(box, track) for box in boxes))
                for window, boxes, track in zip(windows, own, searched, strict=True)
            ],
        )
        found: list[Box] = []
        for window, own_boxes, window_hits, track in zip(windows, own, hits, searched, strict=True):
            boxes = own_boxes + _group(window_hits, self.config.min_neighbors)
            # The track's face is one the whole frame's search misses (one of a crowd, whose window may hold
            # only its neighbours' boxes): the window is searched on its own, with the reference's cascade
            # (unless it was already), then, where that finds no box on the track either, the second one.
            for second in self._cascades:
                if any(covers(box, track) for box in boxes):
                    break
                if second or window.exact:
                    boxes = boxes + self._own_search(gray_main, window, second)
            for box in boxes:
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
        return found

    def _own_search(
        self, gray_main: np.ndarray, window: _Window, second: bool, coarse: bool = False
    ) -> list[Box]:
        """The window searched on its own (``detectMultiScale`` on its pixels, at ``TRACK_SIZE_RANGE`` of its
        track's size; with ``coarse``, the pyramid step ``ALONE_WINDOW_SCALE_FACTOR``, or ``scale_factor``
        where that is coarser still): boxes in main-frame pixels, each at the place this window puts it."""
        x0, y0, x1, y1, size, _ = window
        low, high = TRACK_SIZE_RANGE
        found = self._search(
            gray_main[y0:y1, x0:x1],
            max(low * size, self.config.min_size_px),
            high * size + 1,
            second,
            max(ALONE_WINDOW_SCALE_FACTOR, self.config.scale_factor) if coarse else self.config.scale_factor,
        )
        return [(bx + x0, by + y0, bw, bh) for bx, by, bw, bh in found]

    def _window_hits(self, gray_main: np.ndarray, windows: list[_Window]) -> list[list[Box]]:
        """For each exact window, the raw hits of the whole frame's pyramid whose centre lies in it, at the
        sizes of ``TRACK_HIT_RANGE`` (the whole cluster Haar groups into the face's box); [] for the rest.

        The windows that need a level share its scan: the level's rows each needs, merged where they
        overlap, are scanned once (a row's hits do not depend on the other rows scanned with it), so a
        frame's faces of one size cost one scan of their rows, not one per face.
        """
        height, width = gray_main.shape[:2]
        low, high = TRACK_HIT_RANGE
        hits: list[list[Box]] = [[] for _ in windows]
        for factor in self._pyramid(width, height):
            side = round(HAAR_WINDOW_PX * factor)
            using = [
                i
                for i, window in enumerate(windows)
                if window.exact
                and max(low * window.size, self.config.min_size_px) <= side <= high * window.size + 1
            ]
            if not using:
                continue
            level_w, level_h = round(width / factor), round(height / factor)
            step = 1 if factor > 2 else 2  # OpenCV's step at this level
            spans = []  # each window's rows and columns in the level: hits whose centre lies in the window
            for i in using:
                x0, y0, x1, y1, _, _ = windows[i]
                top = max(int((y0 - side / 2) / factor), 0)
                top -= top % step
                right = min(math.ceil((x1 + side / 2) / factor) + 1, level_w)
                bottom = min(math.ceil((y1 + side / 2) / factor) + 1, level_h)
                spans.append((top, bottom, right, i))
            level = _level(gray_main, level_w, level_h, max(s[2] for s in spans), max(s[1] for s in spans))
            for top, bottom, right, members in _merge_rows(spans):
                for lx, ly in _level_hits(self._cascade, level[top:bottom, :right], step):
                    box = (round(lx * factor), round((ly + top) * factor), side, side)
                    cx, cy = box[0] + side / 2, box[1] + side / 2
                    for i in members:
                        x0, y0, x1, y1, _, _ = windows[i]
                        if x0 <= cx < x1 and y0 <= cy < y1:
                            hits[i].append(box)
        return hits

    def _pyramid(self, width: int, height: int) -> list[float]:
        """The scale factors of ``detectMultiScale``'s pyramid on a ``width`` x ``height`` image."""
        factors = []
        factor = 1.0
        while round(width / factor) > HAAR_WINDOW_PX and round(height / factor) > HAAR_WINDOW_PX:
            factors.append(factor)
            factor *= self.config.scale_factor
        return factors

    def _chosen(self, second: bool) -> tuple[cv2.CascadeClassifier, int]:
        """The cascade and its min neighbours: the reference's (``detect.min_neighbors``) or the second."""
        return (self._second, SECOND_MIN_NEIGHBORS) if second else (self._cascade, self.config.min_neighbors)

    def _search(
        self, gray: np.ndarray, min_size: float, max_size: float, second: bool, scale_factor: float
    ) -> list[Box]:
        side = max(int(min_size), 1)
        cascade, min_neighbors = self._chosen(second)
        found = cascade.detectMultiScale(
            gray,
            scaleFactor=scale_factor,
            minNeighbors=min_neighbors,
            minSize=(side, side),
            maxSize=(int(max_size), int(max_size)),
        )
        return in_reading_order([as_box(box) for box in found])

    def _check_smallest_face(self, shape: tuple[int, ...], scale_to_main: float) -> None:
        """Warn once when the small image (``shape``: height, width) cannot show a face of ``min_size_px`` as
        wide as Haar's window, or the frame cannot hold one at all."""
        height, width = shape
        smallest = math.ceil(HAAR_WINDOW_PX * scale_to_main)
        main_width = round(width * scale_to_main)
        main_height = round(height * scale_to_main)
        logger.info(
            "detection image %d px wide (frame %d px): new faces are found from %d px",
            width,
            main_width,
            smallest,
        )
        # The small image is never larger than the frame: its side under Haar's window says it for both.
        if min(width, height) < HAAR_WINDOW_PX or min(main_width, main_height) < self.config.min_size_px:
            logger.warning(
                "the %dx%d frame is smaller than a face of detect.min_size_px %d (and Haar's %d px window): "
                "no face can be found in it; use a larger camera.width_px / camera.height_px or input",
                main_width,
                main_height,
                self.config.min_size_px,
                HAAR_WINDOW_PX,
            )
            return
        if self.config.min_size_px >= smallest:
            return
        needed = math.ceil(main_width * HAAR_WINDOW_PX / self.config.min_size_px)
        if needed > main_width:
            logger.warning(
                "detect.min_size_px %d: the %d px wide frame finds new faces from %d px at best "
                "(Haar's window is %d px); raise camera.width_px (a camera) or use a larger input to find "
                "smaller ones",
                self.config.min_size_px,
                main_width,
                smallest,
                HAAR_WINDOW_PX,
            )
            return
        logger.warning(
            "detect.min_size_px %d: the %d px wide detection image finds new faces from %d px; "
            "set detect.width_px to %d (or 0, the default, to size it by detect.min_size_px) to find them "
            "down to %d px (each full search costs more)",
            self.config.min_size_px,
            width,
            smallest,
            needed,
            self.config.min_size_px,
        )


def _level(gray_main: np.ndarray, level_w: int, level_h: int, right: int, bottom: int) -> np.ndarray:
    """Columns ``:right`` and rows ``:bottom`` of the whole frame resized to ``level_w`` x ``level_h`` as
    ``detectMultiScale`` resizes it, without resizing the rest: the frame's top left part, resized with the
    whole frame's own ratios (so each level pixel comes from the same source pixels and weights)."""
    height, width = gray_main.shape[:2]
    fx, fy = level_w / width, level_h / height
    src_w = min(math.ceil((right + 1) / fx) + 2, width)
    src_h = min(math.ceil((bottom + 1) / fy) + 2, height)
    if src_w == width and src_h == height:
        return cv2.resize(gray_main, (level_w, level_h), interpolation=cv2.INTER_LINEAR_EXACT)
    part = cv2.resize(gray_main[:src_h, :src_w], None, fx=fx, fy=fy, interpolation=cv2.INTER_LINEAR_EXACT)
    return part[:bottom, :right]


def _alone(window: _Window, tracks: list[Box]) -> bool:
    """True when no box of ``tracks`` but the window's own (the one it was cut around) overlaps ``window``."""
    x0, y0, x1, y1 = window.x0, window.y0, window.x1, window.y1
    overlapping = [t for t in tracks if t[0] < x1 and t[0] + t[2] > x0 and t[1] < y1 and t[1] + t[3] > y0]
    return len(overlapping) <= 1


def _merge_rows(spans: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, list[int]]]:
    """Windows' ``(top, bottom, right, index)`` row spans of one level merged where their rows overlap:
    ``(top, bottom, right, indices)`` each, ``right`` the widest of the merged. The tops are aligned to the
    level's step, so a merged span visits each window's rows at the positions its own span would."""
    merged: list[tuple[int, int, int, list[int]]] = []
    for top, bottom, right, index in sorted(spans):
        if merged and top < merged[-1][1]:
            m_top, m_bottom, m_right, members = merged[-1]
            merged[-1] = (m_top, max(m_bottom, bottom), max(m_right, right), [*members, index])
        else:
            merged.append((top, bottom, right, [index]))
    return merged


def _level_hits(cascade: cv2.CascadeClassifier, rows: np.ndarray, step: int) -> list[tuple[int, int]]:
    """Haar's raw hits at the base window on ``rows`` of one pyramid level, at the positions and with the
    step OpenCV visits them when it scans the whole level: each row is scanned from the level's left edge
    (after a window the first stage rejects, OpenCV skips the next one, so the positions visited depend on
    where a row starts), and 1 pixel apart for a level above 2x (``step`` 1): the rows are doubled by
    pixel repetition and scanned at 2x, which is the level itself scanned with step 1."""
    window = HAAR_WINDOW_PX
    if step == 1:
        doubled = cv2.resize(rows, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        found = cascade.detectMultiScale(
            doubled, scaleFactor=2.0, minNeighbors=0, minSize=(2 * window,) * 2, maxSize=(2 * window,) * 2
        )
        return [(int(x) // 2, int(y) // 2) for x, y, _, _ in found]
    found = cascade.detectMultiScale(
        rows, scaleFactor=1.1, minNeighbors=0, minSize=(window, window), maxSize=(window, window)
    )
    return [(int(x), int(y)) for x, y, _, _ in found]


def covers(box: Box, other: Box) -> bool:
    """True when ``other``'s centre lies in ``box`` (a face there is already found or tracked)."""
    cx, cy = other[0] + other[2] / 2, other[1] + other[3] / 2
    return box[0] <= cx < box[0] + box[2] and box[1] <= cy < box[1] + box[3]


def _group(hits: list[Box], min_neighbors: int) -> list[Box]:
    """Raw hits grouped as ``detectMultiScale`` groups them: clusters of more than ``min_neighbors`` hits
    (``min_neighbors`` 0: every hit is its own cluster of one, merged with the hits around it)."""
    if not hits:
        return []
    rects = [list(box) for box in hits]
    if min_neighbors <= 0:  # groupRectangles returns raw hits ungrouped at 0: doubled, each cluster counts 2+
        rects, min_neighbors = rects + rects, 1
    grouped, _weights = cv2.groupRectangles(rects, min_neighbors, GROUP_EPS)
    return in_reading_order([as_box(box) for box in grouped])


def reading_order(box: Box) -> tuple[int, int, int, int]:
    """The sort key of boxes top to bottom, then left to right (then by size)."""
    x, y, w, h = box
    return y, x, w, h


def in_reading_order(boxes: list[Box]) -> list[Box]:
    """Boxes in ``reading_order``. OpenCV's threads deliver raw hits in an order that changes from run to run,
    and its grouping returns clusters in that order: faces found on one frame then got their ids in another
    order each run of the same clip."""
    return sorted(boxes, key=reading_order)


class FaceVerifier:
    """Says whether a box that would start a track is a face: a second, stricter cascade must agree.

    The box is cut from the full-resolution gray frame with a margin, scaled so that the face is
    ``VERIFY_FACE_PX`` wide, and searched by OpenCV's ``frontalface_alt2`` cascade over the sizes near
    the face's; the box passes when the best hit's level weight (the last stage's sum) reaches
    ``VERIFY_MIN_WEIGHT``. Haar's false hits on round, shaded things (moons, coins, eyes of animals)
    fail it; it costs a few milliseconds a box, and only boxes that would start a track are verified.
    """

    def __init__(self) -> None:
        self._cascade = load_cascade(VERIFY_CASCADE)

    def accepts(self, gray_main: np.ndarray, box_main: Box) -> bool:
        """True when the stricter cascade finds a face at this box."""
        return self.weight(gray_main, box_main) >= VERIFY_MIN_WEIGHT

    def weight(self, gray_main: np.ndarray, box_main: Box) -> float:
        """The best hit's level weight at this box (0.0 when there is none)."""
        x, y, w, h = box_main
        if w <= 0 or h <= 0:
            return 0.0
        pad = int(VERIFY_MARGIN_FRAC * w)
        height, width = gray_main.shape[:2]
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        x1, y1 = min(x + w + pad, width), min(y + h + pad, height)
        if x1 <= x0 or y1 <= y0:
            return 0.0
        crop = gray_main[y0:y1, x0:x1]
        # A face at the frame's edge keeps its margin (the edge's pixels repeated): cut off, the face would
        # fill the patch to its border, where the cascade's windows around it do not fit.
        crop = cv2.copyMakeBorder(
            crop, y0 - (y - pad), y + h + pad - y1, x0 - (x - pad), x + w + pad - x1, cv2.BORDER_REPLICATE
        )
        factor = VERIFY_FACE_PX / w
        size = (max(round(crop.shape[1] * factor), 1), max(round(crop.shape[0] * factor), 1))
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        patch = cv2.resize(crop, size, interpolation=interpolation)
        low, high = TRACK_SIZE_RANGE
        _boxes, _levels, weights = self._cascade.detectMultiScale3(
            patch,
            scaleFactor=1.1,
            minNeighbors=1,
            minSize=(int(low * VERIFY_FACE_PX), int(low * VERIFY_FACE_PX)),
            maxSize=(int(high * VERIFY_FACE_PX) + 1, int(high * VERIFY_FACE_PX) + 1),
            outputRejectLevels=True,
        )
        return float(np.max(weights)) if len(weights) else 0.0
