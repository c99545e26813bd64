"""The emotion CNN: a lean VGG-style network sized for a Raspberry Pi and a 2-core training CPU."""

from __future__ import annotations

import keras
from keras import layers


def _conv_block(x, filters: int, convs: int, dropout: float):
    for _ in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.MaxPooling2D()(x)
    return layers.Dropout(dropout)(x) if dropout else x


def build_model(input_shape: tuple[int, int, int], num_classes: int, width: int = 32) -> keras.Model:
    """Build the classifier: four conv blocks (48→24→12→6→3), global pooling and a small head.

    The first block is a single narrow convolution: at full resolution each channel costs the most,
    so the capacity sits in the later, smaller feature maps. Only int8-friendly ops are used
    (Conv, BatchNorm folded at conversion, ReLU, pooling, Dense, Softmax). Inputs are scaled 0..1
    by ``device.vision.preprocess.normalize``; the model has no rescaling layer of its own.
    """
    inputs = keras.Input(shape=input_shape, name="face")
    x = _conv_block(inputs, width, convs=1, dropout=0.0)
    x = _conv_block(x, width * 2, convs=2, dropout=0.1)
    x = _conv_block(x, width * 4, convs=2, dropout=0.2)
    x = _conv_block(x, width * 8, convs=2, dropout=0.3)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(width * 8, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.4)(x)
    x = layers.Dense(num_classes, dtype="float32")(x)
    outputs = layers.Softmax(dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name="moodcast_emotion")
