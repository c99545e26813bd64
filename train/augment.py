"""Augmentation for 48x48 faces, applied to batches in the input pipeline (never part of the model).

Two stages: ``photometric`` changes the light on the raw uint8 faces (before the device's lighting
normalisation, as a camera would), then ``build_augmenter`` and ``random_erase`` change the geometry of the
normalised 0..1 faces.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import layers

# Photometric ranges, per face: what a hallway camera meets between daylight and a dim evening.
BRIGHTNESS_RANGE = (0.3, 1.6)  # gain on the grey levels (clipped at 255)
GAMMA_RANGE = (0.5, 2.0)  # drawn log-uniform
BLUR_SIGMA_PX = (0.4, 1.2)
NOISE_STD_LEVELS = (2.0, 8.0)
JPEG_QUALITY = (30, 90)
PHOTOMETRIC_PROBABILITY = {"light": 0.8, "blur": 0.2, "noise": 0.3, "jpeg": 0.2}


def photometric(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomly change brightness, gamma, blur, sensor noise and JPEG quality of uint8 faces ``(N, H, W)``.

    Returns a new uint8 array of the same shape; each change is drawn per face with the probabilities in
    ``PHOTOMETRIC_PROBABILITY``. The lighting normalisation cancels most of a pure gain or gamma, but not the
    levels lost in the dark or clipped in the light, nor blur, noise and compression: those are what the
    network must learn to ignore.
    """
    out = np.empty_like(faces)
    levels = np.arange(256, dtype=np.float32) / 255.0
    for i, face in enumerate(faces):
        if rng.random() < PHOTOMETRIC_PROBABILITY["light"]:
            gamma = float(np.exp(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1]))))
            gain = rng.uniform(*BRIGHTNESS_RANGE)
            table = np.clip(255.0 * gain * levels**gamma, 0, 255).round().astype(np.uint8)
            face = cv2.LUT(face, table)
        if rng.random() < PHOTOMETRIC_PROBABILITY["blur"]:
            face = cv2.GaussianBlur(face, (0, 0), rng.uniform(*BLUR_SIGMA_PX))
        if rng.random() < PHOTOMETRIC_PROBABILITY["noise"]:
            noise = rng.normal(0.0, rng.uniform(*NOISE_STD_LEVELS), face.shape)
            face = np.clip(face + noise, 0, 255).astype(np.uint8)
        if rng.random() < PHOTOMETRIC_PROBABILITY["jpeg"]:
            quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
            _, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
            face = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        out[i] = face
    return out


def build_augmenter(seed: int) -> keras.Sequential:
    """Flips, small shifts, rotations and zooms, and contrast jitter, for normalised images scaled 0..1."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            layers.RandomRotation(0.04, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom((-0.15, 0.1), fill_mode="nearest", seed=seed + 3),
            layers.RandomContrast(0.2, seed=seed + 5),
        ],
        name="augment",
    )


def random_erase(images: tf.Tensor, probability: float = 0.5, max_frac: float = 0.4) -> tf.Tensor:
    """Fill one random rectangle per image (with ``probability``) with a random gray level."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    size = tf.cast(height, tf.float32)
    box_h = tf.cast(tf.random.uniform([batch], 0.1, max_frac) * size, tf.int32)
    box_w = tf.cast(tf.random.uniform([batch], 0.1, max_frac) * size, tf.int32)
    top = tf.cast(tf.random.uniform([batch]) * tf.cast(height - box_h, tf.float32), tf.int32)
    left = tf.cast(tf.random.uniform([batch]) * tf.cast(width - box_w, tf.float32), tf.int32)
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, tf.newaxis, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + box_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + box_w)[:, None, None])
        & (tf.random.uniform([batch, 1, 1]) < probability)
    )
    fill = tf.random.uniform([batch, 1, 1, 1], dtype=images.dtype)
    return tf.where(inside[..., tf.newaxis], fill, images)


def mixup(
    images: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, alpha: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mix each face of a batch with another face of the same batch (mixup: Zhang et al., ICLR 2018).

    ``images`` ``(B, H, W, 1)`` 0..1, ``targets`` ``(B, 7)`` class shares, ``weights`` ``(B,)``. Each face
    draws ``lam`` from Beta(``alpha``, ``alpha``), folded to 0.5..1 so that it stays the larger part of its
    own mix, and is mixed with the face at the batch's shuffled position; images, targets and weights are
    all mixed with the same ``lam``. Returns the three mixed tensors, shapes unchanged. ``alpha`` > 0.
    """
    batch = tf.shape(images)[0]
    first = tf.random.gamma([batch], alpha)
    second = tf.random.gamma([batch], alpha)
    lam = first / (first + second)
    lam = tf.maximum(lam, 1.0 - lam)
    partner = tf.random.shuffle(tf.range(batch))
    lam_images = tf.cast(lam[:, None, None, None], images.dtype)
    lam_targets = tf.cast(lam[:, None], targets.dtype)
    lam_weights = tf.cast(lam, weights.dtype)
    return (
        lam_images * images + (1 - lam_images) * tf.gather(images, partner),
        lam_targets * targets + (1 - lam_targets) * tf.gather(targets, partner),
        lam_weights * weights + (1 - lam_weights) * tf.gather(weights, partner),
    )
