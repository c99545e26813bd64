"""Score faces with the Keras model and with the .tflite through the device's own classifier."""

from __future__ import annotations

import keras
import numpy as np

from device.vision.classify import EmotionClassifier
from device.vision.preprocess import normalize

BATCH = 256


def keras_scores(model: keras.Model, images: np.ndarray, normalization: str = "none") -> np.ndarray:
    """Probabilities ``(N, classes)`` of the Keras model for uint8 faces ``(N, H, W)``."""
    return model.predict(normalize(images, normalization)[..., np.newaxis], batch_size=BATCH, verbose=0)


def tflite_scores(classifier: EmotionClassifier, images: np.ndarray) -> np.ndarray:
    """Probabilities ``(N, classes)`` of the .tflite for uint8 faces ``(N, H, W)``, as the device has them:
    normalised as its card says, temperature-scaled by its card's calibration."""
    faces = normalize(images, classifier.card.crop.normalization)[..., np.newaxis]
    return np.concatenate([classifier.classify(faces[i : i + BATCH]) for i in range(0, len(faces), BATCH)])
