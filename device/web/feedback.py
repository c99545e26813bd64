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
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from device.config import FeedbackConfig
from device.const import FEEDBACK_FRAMES_KEPT, FEEDBACK_KEPT_S
from device.errors import ConfigError
from device.paths import write_whole
from device.vision.detect import Box
from device.vision.preprocess import CropSpec, crop_face
from device.web.analyze import AnalyzeError

logger = logging.getLogger(__name__)


class KeptFrame(NamedTuple):
    """A raw frame the frame loop handed to ``keep``, numbered in order, when (``time.monotonic()``, s), with
    the box of each face on it."""

    seq: int
    at_s: float
    image: np.ndarray
    boxes: dict[int, Box]


class FeedbackStore:
    """Keeps the newest raw frames with the boxes of their faces (``keep``) and cuts a corrected face from the
    newest that shows it (a face the page shows may have just left the frame), for at most ``kept_s`` seconds.
    One face on one kept frame is one file: saving it again rewrites that file, under the newest label."""

    def __init__(
        self,
        config: FeedbackConfig,
        crop: CropSpec,
        labels: tuple[str, ...],
        kept_s: float = FEEDBACK_KEPT_S,
        on_saved: Callable[[], None] = lambda: None,
    ) -> None:
        """Create ``config.dir`` and prove a file can be written in it; ConfigError (feedback.dir) if not.
        Frames older than ``kept_s`` seconds are dropped and no face is cut from them. ``on_saved`` is called
        once per face saved (not for a face saved again), as ``saved`` rises."""
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
        self.kept_s = kept_s
        self.on_saved = on_saved
        self._frames: deque[KeptFrame] = deque(maxlen=FEEDBACK_FRAMES_KEPT)
        self._kept = 0  # frames kept so far: the next one's seq
        self._frames_lock = threading.Lock()  # apart from the write's, so keep() never waits for the disk
        self._lock = threading.Lock()
        self._files: dict[tuple[int, int], Path] = {}  # (frame seq, face id): its file, while kept
        self.saved = 0  # faces saved since start (a face saved again, or moved to another label, counts once)

    def keep(self, image: np.ndarray, boxes: dict[int, Box]) -> None:
        """The frame loop's newest raw (not annotated) frame and the box of each face on it; a frame without
        faces is not kept, but still drops the frames that are too old (an empty room keeps none)."""
        now = time.monotonic()
        if boxes:
            image, boxes = image.copy(), dict(boxes)
        with self._frames_lock:
            self._drop_old(now)
            if boxes:
                self._frames.append(KeptFrame(self._kept, now, image, boxes))
                self._kept += 1

    def _drop_old(self, now: float) -> None:
        """Drop the kept frames older than ``kept_s`` (s, by ``time.monotonic()``); hold _frames_lock."""
        while self._frames and now - self._frames[0].at_s > self.kept_s:
            self._frames.popleft()

    def save(self, face_id: int, label: str) -> Path:
        """Save face ``face_id``'s crop under ``label`` and return its path.

        The same face saved again while the frame of its last save is still kept (``kept_s``) replaces that
        file, cut from the newest frame and moved to ``label``'s folder if that changed: the newest label
        wins, so a mis-pick corrected a moment later leaves one file. AnalyzeError 400: unknown label, 404:
        face not in view, 500: the file cannot be written."""
        if label not in self.labels:
            raise AnalyzeError(
                HTTPStatus.BAD_REQUEST, f"unknown label {label!r}; expected one of {self.labels}"
            )
        with self._frames_lock:  # the frame loop appends while a request looks
            self._drop_old(time.monotonic())
            kept = next((frame for frame in reversed(self._frames) if face_id in frame.boxes), None)
            oldest = self._frames[0].seq if self._frames else self._kept
        if kept is None:
            raise AnalyzeError(HTTPStatus.NOT_FOUND, f"face {face_id} is not in view")
        gray = cv2.cvtColor(kept.image, cv2.COLOR_BGR2GRAY)
        crop = crop_face(gray, kept.boxes[face_id], self.crop)
        folder = self.dir / label
        with self._lock:
            self._files = {key: file for key, file in self._files.items() if key[0] >= oldest}
            earlier = next((key for key in self._files if key[1] == face_id), None)
            before = self._files.get(earlier) if earlier is not None else None
            if before is None:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                path = folder / f"{stamp}-face{face_id}-{secrets.token_hex(3)}.png"
            else:
                path = folder / before.name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                write_png(path, crop)
            except OSError as err:
                logger.warning(
                    "feedback: cannot save face %d as %s in %s (%s); fix feedback.dir",
                    face_id, label, folder, err.strerror or err,
                )  # fmt: skip
                raise AnalyzeError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"feedback.dir: cannot write {path} ({err.strerror or err}); fix the folder",
                ) from None
            if before is not None and before != path:
                try:
                    before.unlink(missing_ok=True)
                except OSError as err:  # saved under the new label; the old one stays too
                    logger.warning("feedback: cannot remove %s (%s)", before, err.strerror or err)
            if earlier is not None:
                del self._files[earlier]
            self._files[(kept.seq, face_id)] = path
            if before is None:
                self.saved += 1
                self.on_saved()
        logger.info("feedback: face %d saved as %s (%s)", face_id, label, path)
        return path


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``image`` as a PNG at ``path`` whole or not at all, fsynced (``device.paths.write_whole``): a
    full disk, a file-size limit or a power cut leaves no half image where ``train`` would read it, only
    perhaps a hidden ``.<name>.tmp`` it skips. Raises OSError, for an image that cannot be encoded too."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode a {image.shape} image as PNG")
    write_whole({path: encoded.tobytes()}, durable=True)
