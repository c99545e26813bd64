"""FaceDetector: Haar cascade over the small gray image every N frames, else in windows around tracks."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from device.config import DetectConfig
from device.const import (
    HAAR_CASCADE,
    HAAR_WINDOW_PX,
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
        if not self._size_checked:
            self._size_checked = True
            self._check_smallest_face(gray_lores.shape[1], scale_to_main)
        boxes = self._search(gray_lores, self.config.min_size_px / scale_to_main, None)
        return [as_box(v * scale_to_main for v in box) for box in boxes]

    def search_tracks(self, gray_main: np.ndarray, tracks_main: list[Box]) -> list[Box]:
        """Search a window around each track (``track_window_frac`` of its size on every side)."""
        height, width = gray_main.shape[:2]
        low, high = TRACK_SIZE_RANGE
        found: list[Box] = []
        for x, y, w, h in tracks_main:
            size = max(w, h)
            pad = self.config.track_window_frac * size
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
        factor = VERIFY_FACE_PX / w
        size = (max(round((x1 - x0) * factor), 1), max(round((y1 - y0) * factor), 1))
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        patch = cv2.resize(gray_main[y0:y1, x0:x1], size, interpolation=interpolation)
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
