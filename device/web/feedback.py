"""Feedback (opt-in, ``feedback.enabled``): a person marks a face's label wrong on the page and picks the
right one; the face's 48x48 crop is saved as ``<feedback.dir>/<class>/<name>.png``, the image-folder layout
``python -m train --extra-data`` reads. This stores faces: the README's privacy note says so."""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
from collections import deque
from http import HTTPStatus
from pathlib import Path

import cv2
import numpy as np

from device.config import FeedbackConfig
from device.const import FEEDBACK_FRAMES_KEPT
from device.errors import ConfigError
from device.vision.detect import Box
from device.vision.preprocess import CropSpec, crop_face
from device.web.analyze import AnalyzeError

logger = logging.getLogger(__name__)


class FeedbackStore:
    """Keeps the newest raw frames with the boxes of their faces (``keep``) and cuts a corrected face from the
    newest that shows it (a face the page shows may have just left the frame)."""

    def __init__(self, config: FeedbackConfig, crop: CropSpec, labels: tuple[str, ...]) -> None:
        """Create ``config.dir`` and prove a file can be written in it; ConfigError (feedback.dir) if not."""
        self.dir = Path(config.dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError as err:
            raise ConfigError(
                "feedback.dir",
                f"{self.dir}: cannot write there ({err.strerror or err})",
                "set feedback.dir to a folder this user may write",
            ) from None
        self.crop = crop
        self.labels = labels
        self._frames: deque[tuple[np.ndarray, dict[int, Box]]] = deque(maxlen=FEEDBACK_FRAMES_KEPT)
        self._frames_lock = threading.Lock()  # apart from the write's, so keep() never waits for the disk
        self._lock = threading.Lock()
        self.saved = 0

    def keep(self, image: np.ndarray, boxes: dict[int, Box]) -> None:
        """The frame loop's newest raw (not annotated) frame and the box of each face on it."""
        if boxes:
            kept = (image.copy(), dict(boxes))
            with self._frames_lock:
                self._frames.append(kept)

    def save(self, face_id: int, label: str) -> Path:
        """Save face ``face_id``'s crop under ``label``; 400: unknown label, 404: face not in view."""
        if label not in self.labels:
            raise AnalyzeError(
                HTTPStatus.BAD_REQUEST, f"unknown label {label!r}; expected one of {self.labels}"
            )
        with self._frames_lock:  # the frame loop appends while a request looks
            kept = next((frame for frame in reversed(self._frames) if face_id in frame[1]), None)
        if kept is None:
            raise AnalyzeError(HTTPStatus.NOT_FOUND, f"face {face_id} is not in view")
        image, boxes = kept
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        crop = crop_face(gray, boxes[face_id], self.crop)
        folder = self.dir / label
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = folder / f"{stamp}-face{face_id}-{secrets.token_hex(3)}.png"
        with self._lock:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), crop):
                    raise OSError("cv2.imwrite failed")
            except OSError as err:
                raise AnalyzeError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"feedback.dir: cannot write {path} ({err}); fix the folder",
                ) from None
            self.saved += 1
        logger.info("feedback: face %d saved as %s (%s)", face_id, label, path)
        return path
