"""POST /api/v1/analyze: one still image through the camera path's detector, crop and classifier.

The analyser owns its own detector, verifier and classifier (a TFLite interpreter is not shared between
threads) and runs them in one worker thread at the lowest CPU priority, so requests wait for the frame
loop, never the other way round. The worker also parses the body and decodes the image, so only one image is
decoded at a time; a request is admitted (``admit``) before its body is read, and one past ANALYZE_ADMITTED
is answered 429 at once.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hashlib
import logging
import os
import queue
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.config import Config
from device.const import (
    ANALYZE_ADMITTED,
    ANALYZE_MAX_BYTES,
    ANALYZE_MAX_PARTS,
    ANALYZE_MAX_SIDE_PX,
    ANALYZE_NICE,
    ANALYZE_TIMEOUT_S,
)
from device.display.overlay import StatusLine, draw_overlay
from device.vision.classify import EmotionClassifier
from device.vision.detect import FaceDetector, FaceVerifier
from device.vision.pipeline import FaceLabel
from device.vision.preprocess import face_batch

logger = logging.getLogger(__name__)


class AnalyzeError(Exception):
    """A request the analyser refuses: an HTTP status and a one-line reason for the JSON body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Analysis:
    """What one image gave: its size, one entry per face, and the annotated JPEG when asked for."""

    width_px: int
    height_px: int
    faces: list[dict[str, Any]]
    jpeg: bytes | None = None


def image_size(data: bytes) -> tuple[str, int, int]:
    """``(kind, width, height)`` of a PNG or JPEG from its header alone, before anything is decoded."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise AnalyzeError(HTTPStatus.BAD_REQUEST, "a damaged PNG (no IHDR header)")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:3] == b"\xff\xd8\xff":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                pos += 1
                continue
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                pos += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if pos + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                return "jpeg", width, height
            pos += 2 + length
        raise AnalyzeError(HTTPStatus.BAD_REQUEST, "a damaged JPEG (no frame header)")
    raise AnalyzeError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "not a JPEG or PNG image")


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG as a BGR uint8 array; 4xx AnalyzeError for anything else or anything too big."""
    if not data:
        raise AnalyzeError(HTTPStatus.BAD_REQUEST, "empty body; send a JPEG or PNG image")
    if len(data) > ANALYZE_MAX_BYTES:
        raise AnalyzeError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the image is over {ANALYZE_MAX_BYTES // 2**20} MB"
        )
    _kind, width, height = image_size(data)
    if width > ANALYZE_MAX_SIDE_PX or height > ANALYZE_MAX_SIDE_PX:
        raise AnalyzeError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the image is {width}x{height}; at most {ANALYZE_MAX_SIDE_PX} px a side",
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise AnalyzeError(HTTPStatus.BAD_REQUEST, "the image cannot be decoded")
    return image


def image_from_body(content_type: str, body: bytes) -> bytes:
    """The image bytes of a request: the body itself, or the first file part of a multipart/form-data body.

    400 AnalyzeError for a multipart body without a boundary or a file part, 413 for one of more than
    ANALYZE_MAX_PARTS parts (counted before anything is parsed: a 10 MB body can hold 200,000 tiny parts).
    """
    if not content_type.lower().startswith("multipart/"):
        return body
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if not boundary:
        raise AnalyzeError(HTTPStatus.BAD_REQUEST, "a multipart Content-Type without a boundary")
    if body.count(b"--" + boundary.encode("latin-1")) > ANALYZE_MAX_PARTS + 1:  # + 1: the closing delimiter
        raise AnalyzeError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the multipart body has more than {ANALYZE_MAX_PARTS} parts; send the image as one file part",
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise AnalyzeError(HTTPStatus.BAD_REQUEST, "a damaged multipart body")
    for part in message.iter_parts():
        if part.get_filename() or part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise AnalyzeError(HTTPStatus.BAD_REQUEST, "no file in the multipart body; send the image as a file part")


def model_version(model_path: Path) -> str:
    """The model's version: the first 12 hex digits of its file's SHA-256 (the card has no version)."""
    return hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:12]


class Analyzer:
    """Detects and classifies faces in still images, one at a time, in a low-priority worker thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.detector = FaceDetector(config.detect)
        self.verifier = FaceVerifier() if config.detect.verify else None
        self.classifier = EmotionClassifier(config.model.path, threads=1)
        self.model = {"name": self.classifier.card.name, "version": model_version(config.model.path)}
        self._admitted = threading.BoundedSemaphore(ANALYZE_ADMITTED)
        # bounded by the admission: only admitted requests submit
        self._jobs: queue.SimpleQueue[tuple[str, bytes, bool, Future[Analysis]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="analyze", daemon=True)
        self._thread.start()

    @contextmanager
    def admit(self) -> Iterator[bool]:
        """One of the ANALYZE_ADMITTED request slots, held while the block runs (read the body, ``submit``);
        False at once when all are taken: answer 429 without reading the body."""
        if not self._admitted.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self._admitted.release()

    def submit(self, content_type: str, body: bytes, annotate: bool) -> Analysis:
        """Analyse the image of one request body (``image_from_body``, ``decode_image``, ``analyze``) in the
        worker; their 4xx AnalyzeError, or 503 when it takes over ANALYZE_TIMEOUT_S. Call within ``admit``."""
        future: Future[Analysis] = Future()
        self._jobs.put((content_type, body, annotate, future))
        try:
            return future.result(timeout=ANALYZE_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise AnalyzeError(HTTPStatus.SERVICE_UNAVAILABLE, "the analysis took too long; retry") from None

    def close(self) -> None:
        """Stop the worker after the jobs queued."""
        self._jobs.put(None)

    def _work(self) -> None:
        try:  # Linux: nice is per thread, so this lowers the worker alone, not the frame loop
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ANALYZE_NICE)
        except (AttributeError, OSError) as err:
            logger.debug("analyze: cannot lower the worker's priority (%s)", err)
        while (job := self._jobs.get()) is not None:
            self._run(*job)
            del job  # the image and its body go now, not when the next job comes

    def _run(self, content_type: str, body: bytes, annotate: bool, future: Future[Analysis]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(self.analyze(decode_image(image_from_body(content_type, body)), annotate))
        except Exception as err:  # handed to the request: AnalyzeError its 4xx, anything else a 500
            future.set_exception(err)

    def analyze(self, image: np.ndarray, annotate: bool = False) -> Analysis:
        """The camera path on one image: a whole-frame search on the small gray image and the far faces its
        hints lead to on the full-resolution one (``FaceDetector.find``), the verifier, the calibrated crops
        from the full-resolution gray image, one classifier invoke."""
        height, width = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        lores_width = self.config.detect.lores_width_px(width)
        scale = width / lores_width
        lores = cv2.resize(gray, (lores_width, max(round(height / scale), 1)), interpolation=cv2.INTER_AREA)
        boxes = self.detector.find(gray, lores, scale)
        if self.verifier is not None:
            boxes = [box for box in boxes if self.verifier.accepts(gray, box)]
        labels = self.classifier.labels
        scores = self.classifier.classify(face_batch(gray, boxes, self.classifier.card.crop))
        faces = []
        shown = []
        for number, (box, row) in enumerate(zip(boxes, scores, strict=True), start=1):
            best = int(np.argmax(row))
            all_scores = {label: round(float(s), 4) for label, s in zip(labels, row, strict=True)}
            faces.append(
                {
                    "box": [int(v) for v in box],
                    "emotion": labels[best],
                    "confidence": round(float(row[best]), 4),
                    "scores": all_scores,
                }
            )
            shown.append(FaceLabel(number, box, labels[best], float(row[best]), all_scores))
        jpeg = None
        if annotate:
            drawn = image.copy()
            draw_overlay(drawn, shown, StatusLine(None, len(shown), f"model {self.model['name']}"))
            ok, encoded = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise RuntimeError("cv2.imencode failed on the annotated image")
            jpeg = encoded.tobytes()
        return Analysis(width, height, faces, jpeg)
