"""FaceDetector: Haar cascade over the small gray image every N frames, else in windows around tracks."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.config import DetectConfig
from device.const import (
    COARSE_STEP_MAX_PX,
    GROUP_EPS,
    HAAR_CASCADE,
    HAAR_WINDOW_PX,
    HINT_MIN_HITS,
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


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
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


class FaceDetector:
    """Finds faces and returns boxes in main-frame pixels; which search a frame gets is schedule.py's call.

    ``search_full`` searches the whole small image; ``search_tracks`` searches a window around each live
    track on the full-resolution frame, over the scales near the track's. Haar's cost in a window
    depends mostly on the face's size relative to the window, not on the pixels, so a window costs about
    as much at full resolution as shrunk, and it gives the box a whole-frame search would (to within
    Haar's own pixel noise): the crop the classifier sees is the one the reference pipeline would cut.
    """

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._cascade = load_cascade()
        self._size_checked = False

    def search_full(self, gray_lores: np.ndarray, scale_to_main: float) -> list[Box]:
        """Search the whole small image; ``scale_to_main`` maps its pixels to the main frame's."""
        return self.scan(gray_lores, scale_to_main).boxes

    def scan(self, gray_lores: np.ndarray, scale_to_main: float) -> FullSearch:
        """Search the whole small image: Haar's boxes and the hints of small faces (see ``FullSearch``).

        One pass of the cascade: its raw hits are grouped as ``detectMultiScale`` groups them (the same
        boxes), and once more, with a lower count, at the coarsely scanned sizes for the hints.
        """
        if not self._size_checked:
            self._size_checked = True
            self._check_smallest_face(gray_lores.shape[1], scale_to_main)
        side = max(int(self.config.min_size_px / scale_to_main), 1)
        raw = self._cascade.detectMultiScale(
            gray_lores, scaleFactor=self.config.scale_factor, minNeighbors=0, minSize=(side, side)
        )
        hits = [as_box(box) for box in raw]
        boxes = _group(hits, self.config.min_neighbors)
        coarse = [box for box in hits if box[2] <= COARSE_STEP_MAX_PX]
        hints = [h for h in _group(coarse, HINT_MIN_HITS - 1) if all(iou(h, b) < 0.3 for b in boxes)]
        return FullSearch(
            [as_box(v * scale_to_main for v in box) for box in boxes],
            [as_box(v * scale_to_main for v in box) for box in hints],
        )

    def find(self, gray_main: np.ndarray, gray_lores: np.ndarray, scale_to_main: float) -> list[Box]:
        """A whole-frame search as the camera path's first one: the small image's boxes, and the faces its
        hints lead to on the full-resolution frame (a still photo gets the far faces a camera gets)."""
        scan = self.scan(gray_lores, scale_to_main)
        return scan.boxes + self.search_hints(gray_main, scan.hints, scan.boxes)

    def search_hints(self, gray_main: np.ndarray, hints: list[Box], known: list[Box]) -> list[Box]:
        """The faces found by searching each hint's window on the full-resolution frame with the reference's
        step and ``minNeighbors``, except where a ``known`` box (found or tracked) already is."""
        hints = [h for h in hints if not any(covers(k, h) for k in known)]
        if not hints:
            return []
        found: list[Box] = []
        for box in self.search_tracks(gray_main, hints):
            if not any(covers(other, box) for other in known):
                found.append(box)
        return found

    def search_tracks(
        self, gray_main: np.ndarray, tracks_main: list[Box], margins: Sequence[float] | None = None
    ) -> list[Box]:
        """Search a window around each track: ``margins`` of its size on every side (by default
        ``track_window_frac``; wider for a track whose motion is not known yet)."""
        height, width = gray_main.shape[:2]
        low, high = TRACK_SIZE_RANGE
        found: list[Box] = []
        if margins is None:
            margins = [self.config.track_window_frac] * len(tracks_main)
        for (x, y, w, h), margin in zip(tracks_main, margins, strict=True):
            size = max(w, h)
            pad = margin * size
            x0, y0 = max(int(x - pad), 0), max(int(y - pad), 0)
            x1, y1 = min(int(x + w + pad), width), min(int(y + h + pad), height)
            if min(x1 - x0, y1 - y0) < HAAR_WINDOW_PX:
                continue
            window = gray_main[y0:y1, x0:x1]
            min_size = max(low * size, self.config.min_size_px)
            for bx, by, bw, bh in self._search(window, min_size, high * size + 1):
                box = (bx + x0, by + y0, bw, bh)
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
        return found

    def _check_smallest_face(self, width: int, scale_to_main: float) -> None:
        """Warn once when the small image cannot show a face of ``min_size_px`` as wide as Haar's window."""
        smallest = math.ceil(HAAR_WINDOW_PX * scale_to_main)
        main_width = round(width * scale_to_main)
        logger.info(
            "detection image %d px wide (frame %d px): new faces are found from %d px",
            width,
            main_width,
            smallest,
        )
        if self.config.min_size_px >= smallest:
            return
        needed = math.ceil(main_width * HAAR_WINDOW_PX / self.config.min_size_px)
        if needed > main_width:
            logger.warning(
                "detect.min_size_px %d: the %d px wide frame finds new faces from %d px at best "
                "(Haar's window is %d px); raise camera.width_px to find smaller ones",
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

    def _search(self, gray: np.ndarray, min_size: float, max_size: float | None) -> list[Box]:
        side = max(int(min_size), 1)
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.config.scale_factor,
            minNeighbors=self.config.min_neighbors,
            minSize=(side, side),
            maxSize=(int(max_size), int(max_size)) if max_size else (0, 0),
        )
        return [as_box(box) for box in found]


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
    return [as_box(box) for box in grouped]


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
