"""The one place a face crop becomes the classifier's input, shared by training and the device.

A crop goes: detector box → calibrated square window (``crop_box``) → resized uint8 face (``crop_face``) →
lighting normalisation named by the model card (``NORMALIZATIONS``) → float32 scaled 0..1 (``prepare``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropSpec:
    """How a detector box becomes the model's input, as recorded in the model card.

    The box is grown by ``margin_frac`` of its size on every side and its centre moved by
    ``offset_x_frac``/``offset_y_frac`` of its size, so the crop matches FER2013's framing; the resized crop
    is then normalised by ``normalization`` (one of ``NORMALIZATIONS``, the card's ``input.normalization``).
    """

    width_px: int = 48
    height_px: int = 48
    margin_frac: float = 0.0
    offset_x_frac: float = 0.0
    offset_y_frac: float = 0.0
    normalization: str = "none"


def equalize(faces: np.ndarray) -> np.ndarray:
    """Histogram-equalise each uint8 face of ``(H, W)`` or ``(N, H, W)``; same shape, uint8.

    Global histogram equalisation (Gonzalez & Woods, *Digital Image Processing*, 3.3.1; OpenCV's
    ``equalizeHist``) maps each grey level through the face's own cumulative histogram. The map depends only
    on the order of the grey levels, so a global brightness or gamma change (any monotonic change of the
    levels) gives nearly the same output: a face in dim light reaches the classifier as it would in good
    light.
    """
    if faces.ndim == 2:
        return cv2.equalizeHist(faces)
    return np.stack([cv2.equalizeHist(face) for face in faces]) if len(faces) else faces.copy()


NORMALIZATIONS = ("none", "equalize_hist")


def check_normalization(name: str) -> None:
    """Raise ValueError unless ``name`` is one of ``NORMALIZATIONS`` (the card's ``input.normalization``)."""
    if name not in NORMALIZATIONS:
        raise ValueError(
            f"normalization {name!r} is not supported; expected one of {', '.join(NORMALIZATIONS)}"
        )


def normalize(gray: np.ndarray, normalization: str = "none") -> np.ndarray:
    """Apply the card's lighting ``normalization`` to uint8 faces, then scale to float32 in 0..1.

    ``gray``: uint8 ``(H, W)`` or ``(N, H, W)``; returns float32 of the same shape (the card's
    ``scale: "0..1"``). ``"none"`` only scales (models converted before normalisation existed);
    ``"equalize_hist"`` equalises each face first (``equalize``). Raises ValueError for another name.
    """
    check_normalization(normalization)
    if normalization == "equalize_hist":
        gray = equalize(gray)
    return gray.astype(np.float32) * np.float32(1.0 / 255.0)


def crop_box(box: tuple[int, int, int, int], spec: CropSpec) -> tuple[int, int, int, int]:
    """Return the square crop window ``(x, y, w, h)`` for a detector box, before clipping."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * spec.margin_frac)
    cx = x + w / 2.0 + spec.offset_x_frac * w
    cy = y + h / 2.0 + spec.offset_y_frac * h
    half = side / 2.0
    return (round(cx - half), round(cy - half), round(side), round(side))


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], spec: CropSpec) -> np.ndarray:
    """Cut the face at ``box`` (pixels of ``gray``) and resize it to the model's input, uint8.

    Parts of the window outside the frame are filled by replicating the edge, so a face at the border
    keeps its scale instead of being stretched.
    """
    x, y, w, h = crop_box(box, spec)
    frame_h, frame_w = gray.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame_w), min(y + h, frame_h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {frame_w}x{frame_h} frame")
    crop = gray[y0:y1, x0:x1]
    pad = (y0 - y, y + h - y1, x0 - x, x + w - x1)
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if crop.shape[0] > spec.height_px else cv2.INTER_LINEAR
    return cv2.resize(crop, (spec.width_px, spec.height_px), interpolation=interpolation)


def face_batch(gray: np.ndarray, boxes: list[tuple[int, int, int, int]], spec: CropSpec) -> np.ndarray:
    """Crop every box of a frame into a float32 batch ``(N, H, W, 1)`` 0..1, normalised per ``spec``."""
    if not boxes:
        return np.zeros((0, spec.height_px, spec.width_px, 1), np.float32)
    crops = np.stack([crop_face(gray, box, spec) for box in boxes])
    return normalize(crops, spec.normalization)[..., np.newaxis]
