"""FaceDetector: Haar cascade on a small gray image; the whole frame every N frames, else near tracks."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from device.config import DetectConfig
from device.const import HAAR_CASCADE
from device.errors import MoodcastError

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

HAAR_WINDOW_PX = 24  # the frontal-face cascade's base window
TRACK_FACE_PX = 64  # a tracked face is searched at about this width


def load_cascade(name: str = HAAR_CASCADE) -> cv2.CascadeClassifier:
    """Load a cascade shipped with OpenCV (``cv2.data``)."""
    path = Path(cv2.data.haarcascades) / name
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
    """Finds faces on the detection image and returns boxes in main-frame pixels.

    The whole detection image is searched every ``full_search_interval`` frames (and whenever there is
    nothing to follow); in between only a window around each live track is searched, at that track's
    scale, which costs a fraction of a full search, and only every ``track_search_interval`` frames
    while every track is confirmed: on the frames between, the tracks coast and nothing is searched.
    """

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._cascade = load_cascade()
        self._frames_since_full = config.full_search_interval

    def detect(
        self, gray_lores: np.ndarray, scale_to_main: float, tracks_main: list[Box], may_coast: bool = False
    ) -> list[Box] | None:
        """Detect faces on ``gray_lores``; ``scale_to_main`` maps its pixels to the main frame's.

        Returns None on a frame where nothing was searched (``may_coast``: all tracks are confirmed).
        """
        self._frames_since_full += 1
        if not tracks_main or self._frames_since_full >= self.config.full_search_interval:
            self._frames_since_full = 0
            boxes_lores = self._search(gray_lores, self.config.min_size_px / scale_to_main, None)
        elif may_coast and self._frames_since_full % self.config.track_search_interval:
            return None
        else:
            boxes_lores = self._search_around(gray_lores, scale_to_main, tracks_main)
        return [tuple(round(v * scale_to_main) for v in box) for box in boxes_lores]

    def _search(self, gray: np.ndarray, min_size: float, max_size: float | None) -> list[Box]:
        side = max(int(min_size), 1)
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.config.scale_factor,
            minNeighbors=self.config.min_neighbors,
            minSize=(side, side),
            maxSize=(int(max_size), int(max_size)) if max_size else (0, 0),
        )
        return [tuple(int(v) for v in box) for box in found]

    def _search_around(self, gray: np.ndarray, scale_to_main: float, tracks_main: list[Box]) -> list[Box]:
        """Search a window around each track, shrunk so the face is about ``TRACK_FACE_PX`` wide.

        Haar's cost grows with the pixels and the pyramid levels searched; a track tells both where
        the face is and how big it is, so each window is small and searched over a narrow scale range.
        """
        height, width = gray.shape[:2]
        margin = self.config.track_window_frac
        found: list[Box] = []
        for track in tracks_main:
            x, y, w, h = (v / scale_to_main for v in track)
            size = max(w, h)
            pad = margin * size
            x0, y0 = max(int(x - pad), 0), max(int(y - pad), 0)
            x1, y1 = min(int(x + w + pad), width), min(int(y + h + pad), height)
            if x1 - x0 < HAAR_WINDOW_PX or y1 - y0 < HAAR_WINDOW_PX:
                continue
            shrink = min(1.0, TRACK_FACE_PX / size)
            window = gray[y0:y1, x0:x1]
            if shrink < 1.0:
                window = cv2.resize(window, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
            if min(window.shape[:2]) < HAAR_WINDOW_PX:
                continue
            face = size * shrink
            for bx, by, bw, bh in self._search(window, 0.7 * face, 1.45 * face + 1):
                box = (
                    round(bx / shrink + x0),
                    round(by / shrink + y0),
                    round(bw / shrink),
                    round(bh / shrink),
                )
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
        return found
