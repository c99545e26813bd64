"""Augmentation for 48x48 faces, applied to batches in the input pipeline (never part of the model)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


def build_augmenter(seed: int) -> keras.Sequential:
    """Flips, small shifts, rotations and zooms, brightness and contrast jitter, for images scaled 0..1."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            layers.RandomRotation(0.04, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom((-0.15, 0.1), fill_mode="nearest", seed=seed + 3),
            layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed + 4),
            layers.RandomContrast(0.3, seed=seed + 5),
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
