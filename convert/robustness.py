"""How often a face keeps its label when the light, focus, compression or crop changes.

Each perturbation is applied to the raw uint8 face, before the card's lighting normalisation, as a camera or a
detector would change it; the label of the perturbed face is compared with the label of the clean one.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

BOX_SHIFT_PX = 4
BLUR_SIGMA_PX = 1.0
JPEG_QUALITY = 30


def _gain(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda faces: np.clip(faces.astype(np.float32) * factor, 0, 255).round().astype(np.uint8)


def _gamma(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).round().astype(np.uint8)
    return lambda faces: np.stack([cv2.LUT(face, table) for face in faces])


def _blur(faces: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(face, (0, 0), BLUR_SIGMA_PX) for face in faces])


def _jpeg(faces: np.ndarray) -> np.ndarray:
    out: list[np.ndarray] = []
    for face in faces:
        _, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        if decoded is None:
            raise ValueError("a face did not survive JPEG encoding")
        out.append(decoded)
    return np.stack(out)


def _shift(faces: np.ndarray) -> np.ndarray:
    """Move the crop window ``BOX_SHIFT_PX`` right, down, left or up (face by face), edges replicated."""
    pad = BOX_SHIFT_PX
    size = faces.shape[1]
    directions = ((pad, 0), (0, pad), (-pad, 0), (0, -pad))
    out = []
    for i, face in enumerate(faces):
        dx, dy = directions[i % len(directions)]
        padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        out.append(padded[pad + dy : pad + dy + size, pad + dx : pad + dx + size])
    return np.stack(out)


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "brightness x0.3": _gain(0.3),
    "brightness x0.4": _gain(0.4),
    "brightness x0.5": _gain(0.5),
    "brightness x1.6": _gain(1.6),
    "gamma 0.5": _gamma(0.5),
    "gamma 2.0": _gamma(2.0),
    f"gaussian blur sigma {BLUR_SIGMA_PX:g} px": _blur,
    f"jpeg quality {JPEG_QUALITY}": _jpeg,
    f"box shift {BOX_SHIFT_PX} px": _shift,
}


def labels_unchanged(faces: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """The share of faces whose label survives each perturbation, by name (0..1, 4 decimals).

    ``faces``: uint8 ``(N, H, W)``; ``predict`` maps such faces to class indices ``(N,)``.
    """
    clean = predict(faces)
    return {
        name: round(float((predict(change(faces)) == clean).mean()), 4)
        for name, change in PERTURBATIONS.items()
    }
