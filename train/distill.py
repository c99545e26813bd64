"""Knowledge distillation: a trained model's scores on the training faces as part of the targets.

The teacher (a trained Keras model of this project, e.g. the shipped run's ``model.keras``) scores each
training face once, before training, mirror-averaged like the device; each target becomes
``(1 - w) x its own target + w x the teacher's scores`` (Hinton, Vinyals & Dean, "Distilling the Knowledge in
a Neural Network", 2015; a student of the teacher's own size: Furlanello et al., "Born-Again Neural
Networks", ICML 2018). The scores are taken at temperature 1: the teachers trained here learned soft targets
(FER+ vote shares, label smoothing), so their scores are already soft.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.trained import TrainedModelError, load_trained

# How far one face's teacher scores may sum from 1 (a softmax's float rounding) and still be probabilities.
PROBABILITY_TOLERANCE = 1e-3


def teacher_scores(path: Path, images: np.ndarray, normalization: str) -> np.ndarray:
    """The teacher's probabilities ``(N, 7)`` (rows sum to 1) for uint8 faces ``(N, 48, 48)``, the mean of
    each face's and its mirror image's scores, the faces normalised by ``normalization``
    (``device.vision.preprocess``), as the teacher was trained.

    Raises TrainedModelError when ``path`` cannot be loaded as a Keras model, or is a model whose input is not
    a 48 x 48 grey face, whose output is not the 7 classes (``train.trained.load_trained``), or whose scores
    are not probabilities (logits).
    """
    from train.fit import predict

    model = load_trained("--teacher", path)
    mirrored = images[:, :, ::-1]
    scores = (predict(model, images, normalization) + predict(model, mirrored, normalization)) / 2
    sums = scores.sum(axis=1)
    if scores.min() < 0 or np.abs(sums - 1).max() > PROBABILITY_TOLERANCE:
        raise TrainedModelError(
            f"--teacher {path}: gives scores that are not probabilities (lowest {scores.min():.3g}, rows "
            f"summing to from {sums.min():.3g} to {sums.max():.3g}); expected a model ending in a softmax"
        )
    return (scores / sums[:, np.newaxis]).astype(np.float32)


def distilled_targets(targets: np.ndarray, scores: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) x targets + weight x scores``, both ``(N, 7)`` with rows summing to 1; ``weight`` in
    0..1 (1: the teacher alone). Raises ValueError when the shapes differ."""
    if targets.shape != scores.shape:
        raise ValueError(f"targets {targets.shape} and teacher scores {scores.shape} differ in shape")
    return ((1.0 - weight) * targets + weight * scores).astype(np.float32)
