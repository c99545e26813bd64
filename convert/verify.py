"""Score a split with the Keras model and with the .tflite through the device's own classifier."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from device.classify import EmotionClassifier
from device.preprocess import normalize

BATCH = 256


def keras_scores(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Probabilities ``(N, classes)`` of the Keras model for uint8 faces ``(N, H, W)``."""
    return model.predict(normalize(images)[..., np.newaxis], batch_size=BATCH, verbose=0)


def tflite_scores(model_path: Path, images: np.ndarray, card_path: Path | None = None) -> np.ndarray:
    """Probabilities of the .tflite for uint8 faces, exactly as the device computes them.

    Loading through ``EmotionClassifier`` also checks that the card beside the model matches its tensors.
    """
    classifier = EmotionClassifier(model_path, card_path)
    faces = normalize(images)[..., np.newaxis]
    return np.concatenate([classifier.classify(faces[i : i + BATCH]) for i in range(0, len(faces), BATCH)])
