"""Ground truth of the sample videos: loading, box IoU, one-to-one matching and per-video scoring."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsInt

import cv2
import numpy as np

from device.vision.detect import Box, iou
from device.vision.preprocess import CropSpec, crop_box

# The reference detector the samples are built and scored against (full-resolution gray frame).
HAAR_FILE = "haarcascade_frontalface_default.xml"
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_SIZE_PX = 40


@dataclass(frozen=True)
class TruthFace:
    """One face in one frame: its id, its FER-framed square (clipped to the frame) and its class."""

    id: int
    box: Box
    label: str


@dataclass(frozen=True)
class GroundTruth:
    """A sample video's ground truth, as written by ``tools.make_sample_video``."""

    video: str
    fps: float
    width: int
    height: int
    frame_count: int
    faces: dict[int, tuple[int, int]]  # id -> (first_frame, last_frame)
    frames: list[list[TruthFace]]
    partial: list[list[TruthFace]] = field(default_factory=list)  # faces <70 % visible: don't care

    def boxes(self, index: int) -> list[Box]:
        """The truth boxes of frame ``index``."""
        return [face.box for face in self.frames[index]]

    def partial_boxes(self, index: int) -> list[Box]:
        """Boxes of faces too hidden to count in frame ``index`` (detections there are ignored)."""
        return [face.box for face in self.partial[index]] if self.partial else []


def int_box(values: Iterable[SupportsInt]) -> Box:
    """Four numbers as a Box, each truncated by ``int`` (JSON lists, OpenCV's int32 rows)."""
    x, y, w, h = values
    return (int(x), int(y), int(w), int(h))


def _faces(rows: Iterable[dict[str, Any]]) -> list[TruthFace]:
    return [TruthFace(int(r["id"]), int_box(r["box"]), str(r.get("label", ""))) for r in rows]


def load_truth(path: str | Path) -> GroundTruth:
    """Read ``samples/<name>.json``; raise ``ValueError`` naming the file if it is inconsistent."""
    path = Path(path)
    raw = json.loads(path.read_text())
    frames = [_faces(rows) for rows in raw["frames"]]
    partial = [_faces(rows) for rows in raw.get("partial", [])]
    if len(frames) != raw["frame_count"]:
        raise ValueError(f"{path}: frame_count {raw['frame_count']} but {len(frames)} frame lists")
    return GroundTruth(
        video=raw["video"],
        fps=float(raw["fps"]),
        width=int(raw["width"]),
        height=int(raw["height"]),
        frame_count=int(raw["frame_count"]),
        faces={int(f["id"]): (int(f["first_frame"]), int(f["last_frame"])) for f in raw["faces"]},
        frames=frames,
        partial=partial,
    )


def match(
    detected: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], min_iou: float = 0.5
) -> tuple[int, int, int]:
    """Greedy one-to-one matching by IoU; return ``(true_pos, false_pos, false_neg)``."""
    pairs = match_pairs(detected, truth, min_iou)
    tp = len(pairs)
    return tp, len(detected) - tp, len(truth) - tp


def match_pairs(
    detected: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], min_iou: float = 0.5
) -> list[tuple[int, int]]:
    """The ``(detected index, truth index)`` pairs of a greedy one-to-one matching, best IoU first."""
    scored = [(iou(d, t), i, j) for i, d in enumerate(detected) for j, t in enumerate(truth)]
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    used_d: set[int] = set()
    used_t: set[int] = set()
    pairs = []
    for value, i, j in scored:
        if value < min_iou:
            break
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
        pairs.append((i, j))
    return pairs


def to_fer_box(det_box: Sequence[int], margin_frac: float, offset_x_frac: float, offset_y_frac: float) -> Box:
    """Map a detector box to FER2013's framing: exactly ``device.vision.preprocess.crop_box``'s window."""
    spec = CropSpec(margin_frac=margin_frac, offset_x_frac=offset_x_frac, offset_y_frac=offset_y_frac)
    x, y, w, h = det_box
    return crop_box((x, y, w, h), spec)


def from_fer_box(
    fer_box: Sequence[float], margin_frac: float, offset_x_frac: float, offset_y_frac: float
) -> tuple[float, float, float, float]:
    """The square detector box whose ``to_fer_box`` is ``fer_box`` (the inverse, unrounded)."""
    fx, fy, fw, fh = fer_box
    side = max(fw, fh) / (1.0 + 2.0 * margin_frac)
    cx = fx + fw / 2.0 - offset_x_frac * side
    cy = fy + fh / 2.0 - offset_y_frac * side
    return (cx - side / 2.0, cy - side / 2.0, side, side)


def load_calibration(path: str | Path) -> tuple[float, float, float]:
    """Read ``models/crop.json`` as ``(margin_frac, offset_x_frac, offset_y_frac)``."""
    raw = json.loads(Path(path).read_text())
    return float(raw["margin_frac"]), float(raw["offset_x_frac"]), float(raw["offset_y_frac"])


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """Clip ``(x, y, w, h)`` to a ``width`` x ``height`` frame (w or h is 0 when outside)."""
    x, y, w, h = box
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def reference_detector() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade, the detector the samples are made for."""
    folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in OpenCV's stubs
    cascade = cv2.CascadeClassifier(folder + HAAR_FILE)
    if cascade.empty():
        raise RuntimeError(f"cannot load {HAAR_FILE} from {folder}")
    return cascade


def detect_reference(cascade: cv2.CascadeClassifier, gray: np.ndarray) -> list[Box]:
    """Haar with the reference parameters (1.1, 5, 40x40) on a full-resolution gray image."""
    found = cascade.detectMultiScale(
        gray,
        scaleFactor=HAAR_SCALE_FACTOR,
        minNeighbors=HAAR_MIN_NEIGHBORS,
        minSize=(HAAR_MIN_SIZE_PX, HAAR_MIN_SIZE_PX),
    )
    return [int_box(box) for box in found]


def score_video(
    detections_per_frame: Sequence[Sequence[Sequence[int]] | None],
    truth: GroundTruth,
    calibration: tuple[float, float, float] = (0.0, 0.0, 0.0),
    min_iou: float = 0.5,
) -> dict[str, float]:
    """Score detector boxes against the truth, frame by frame, after mapping them to FER framing.

    ``detections_per_frame[i]`` holds frame i's detector boxes, or ``None`` for a frame that was not
    run (skipped). ``calibration`` is ``(margin_frac, offset_x_frac, offset_y_frac)``. Detections that
    match no counted face but overlap a partly visible one (the JSON's ``partial``) are ignored.
    """
    tp = fp = fn = ignored = frames = 0
    ious: list[float] = []
    for index, dets in enumerate(detections_per_frame):
        if dets is None:
            continue
        frames += 1
        mapped = [clip_box(to_fer_box(d, *calibration), truth.width, truth.height) for d in dets]
        gt = truth.boxes(index)
        pairs = match_pairs(mapped, gt, min_iou)
        ious.extend(iou(mapped[i], gt[j]) for i, j in pairs)
        matched = {i for i, _ in pairs}
        partial = truth.partial_boxes(index)
        for i, box in enumerate(mapped):
            if i in matched:
                continue
            if any(iou(box, p) >= min_iou / 2 for p in partial):
                ignored += 1
            else:
                fp += 1
        tp += len(pairs)
        fn += len(gt) - len(pairs)
    return {
        "frames": frames,
        "true_pos": tp,
        "false_pos": fp,
        "false_neg": fn,
        "ignored": ignored,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
    }


def detect_video(path: str | Path, step: int = 1) -> list[list[Box] | None]:
    """Run the reference Haar on every ``step``-th frame of a video (``None`` for the frames skipped)."""
    cascade = reference_detector()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open the video")
    detections: list[list[Box] | None] = []
    try:
        while True:
            index = len(detections)
            if index % step:
                if not capture.grab():
                    break
                detections.append(None)
                continue
            ok, frame = capture.read()
            if not ok:
                break
            detections.append(detect_reference(cascade, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
    finally:
        capture.release()
    return detections


Labelled = Sequence[tuple[Sequence[int], str]]  # one frame's classified faces: (detector box, label)


def label_agreement(ours: Sequence[Labelled | None], theirs: Sequence[Labelled | None]) -> tuple[int, int]:
    """On the frames both classified, faces matched one to one (IoU >= 0.5): ``(same label, matched)``."""
    same = total = 0
    for mine, other in zip(ours, theirs, strict=True):
        if not mine or not other:
            continue
        for i, j in match_pairs([box for box, _ in mine], [box for box, _ in other], 0.5):
            same += int(mine[i][1] == other[j][1])
            total += 1
    return same, total


def track_label_agreement(
    shown: Sequence[Labelled], truth: GroundTruth, calibration: tuple[float, float, float]
) -> dict[int, tuple[int, int]]:
    """Per ground-truth face: ``(frames its track's label equals the truth, frames the face is counted)``.

    ``shown[i]`` holds the confirmed tracks on frame i as ``(detector box, label)``, as the screen and MQTT
    show them. A face counts on every frame of ``truth.frames`` that lists it; a frame where no track matches
    it (IoU >= 0.5 after mapping the box to FER framing with ``calibration``) counts as a wrong label.
    """
    tally: dict[int, list[int]] = {face_id: [0, 0] for face_id in truth.faces}
    for index, tracks in enumerate(shown):
        faces = truth.frames[index]
        boxes = [to_fer_box(box, *calibration) for box, _ in tracks]
        matched = dict((j, i) for i, j in match_pairs(boxes, [face.box for face in faces], 0.5))
        for j, face in enumerate(faces):
            tally[face.id][1] += 1
            tally[face.id][0] += int(j in matched and tracks[matched[j]][1] == face.label)
    return {face_id: (same, total) for face_id, (same, total) in tally.items()}


def shift_frame(gray: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The frame as a camera moved by whole pixels would see it (edges replicated)."""
    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(gray, matrix, gray.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
