"""Keras model → TFLite flatbuffer: int8 (full-integer), float16 or float32, batch dimension kept dynamic."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from convert.card import QUANTIZATIONS
from convert.errors import ConvertError
from device.errors import first_line
from device.paths import discard_writes


def representative_faces(faces: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded sample of ``count`` faces (float32 ``(N, H, W, C)`` scaled 0..1) for int8 calibration."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(faces), size=min(count, len(faces)), replace=False)
    return faces[np.sort(picks)]


def flip_averaged(model: keras.Model) -> keras.Model:
    """Wrap ``model`` so it scores each face and its mirror image, averaging the two views' logits.

    Expressions are left-right symmetric and training saw mirrored faces, so the two views make a cheap
    ensemble (one more pass of a sub-millisecond model). The logits are averaged before the model's own
    softmax, so the int8 output keeps the softmax's fixed 1/256 scale. The mirror is a REVERSE_V2 op,
    which has an int8 kernel.
    """
    try:
        softmax = model.get_layer("scores")
    except ValueError:
        raise ConvertError("--flip-average needs the model's final Softmax layer named 'scores'") from None
    logits = keras.Model(model.inputs, softmax.input, name="logits")
    inputs = keras.Input(model.input_shape[1:], name="face")
    mirrored = keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror")(inputs)
    averaged = keras.layers.Average()([logits(inputs), logits(mirrored)])
    outputs = keras.layers.Softmax(name="scores")(averaged)
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_averaged")


@contextlib.contextmanager
def stderr_held() -> Iterator[None]:
    """While it runs, what is written on file descriptor 2 (the converter's own lines, LLVM's ``errs()``:
    'fully_quantize: 0, inference_type: 6, ...') goes to a scratch file, copied to stderr after (a failed
    copy dropped, as ``device.console.print_err`` drops a line); with no stderr (``2>&-``) it goes to
    /dev/null, which then stays there. LLVM remembers a write to stderr that failed, a reader gone
    (``2>&1 | head -c1``) or no stderr, and at exit says 'LLVM ERROR: IO failure on output stream' and exits
    1: a conversion that succeeded, its files written, ended with the status of a failed one."""
    try:
        saved: int | None = os.dup(2)
    except OSError:  # no stderr (2>&-): nothing to copy to
        saved = None
    if saved is None:
        discard = os.open(os.devnull, os.O_WRONLY)
        if discard != 2:
            os.dup2(discard, 2)
            os.close(discard)
        yield
        return
    if sys.stderr is not None:
        with contextlib.suppress(OSError):  # a reader gone: print_err after says nothing either
            sys.stderr.flush()
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            scratch.seek(0)
            held = scratch.read()
            try:
                while held:
                    held = held[os.write(2, held) :]
            except OSError:  # as print_err does: what comes later goes to /dev/null, not to an error
                if sys.stderr is not None:
                    discard_writes(sys.stderr)


def to_tflite(model: keras.Model, quantization: str, representative: np.ndarray | None = None) -> bytes:
    """Convert ``model`` and return the flatbuffer.

    int8 allows integer-only builtin ops and int8 input and output tensors, so an op without an int8
    kernel makes the conversion fail instead of quietly falling back to float. The device quantizes its
    0..1 inputs and dequantizes the scores with the tensors' own scale and zero point.
    """
    if quantization not in QUANTIZATIONS:
        raise ConvertError(f"quantization: expected one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if quantization == "int8" and (representative is None or not len(representative)):
        raise ConvertError("int8 needs representative faces; pass --representative N with N > 0")
    with tempfile.TemporaryDirectory(prefix="moodcast-convert-") as tmp:
        # A SavedModel keeps the input's batch dimension dynamic (None), so the device can resize to N faces.
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if quantization == "int8":
            faces = representative  # checked above: not None for int8

            def calibration() -> Iterator[list[np.ndarray]]:
                assert faces is not None
                for face in faces:
                    yield [face[np.newaxis].astype(np.float32)]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = calibration
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        try:
            with stderr_held():
                return converter.convert()
        except Exception as err:  # the converter raises several types, all with a multi-line message
            first = first_line(err)
            raise ConvertError(
                f"{quantization} conversion failed ({first}); the model has an op without a "
                f"{quantization} TFLite kernel"
            ) from None
