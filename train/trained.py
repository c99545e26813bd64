"""A trained model of this project given to a run: a teacher to distil (``--teacher``) or the weights a run
starts from (``--init``).

The file is checked twice: ``keras_file_problem`` before TensorFlow starts (a wrong path answers in a second),
``load_trained`` once Keras can open it.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from device.errors import first_line
from device.paths import file_problem
from train.const import IMAGE_SIZE_PX, LABELS


class TrainedModelError(Exception):
    """A trained model that cannot serve the run: one line naming the flag, the file and why."""


def keras_file_problem(flag: str, path: Path | None, purpose: str) -> str:
    """Why ``path`` (given as ``flag``, for ``purpose``) names no readable Keras model file, one line, or "":
    missing, a folder, unreadable, or no zip archive (a .tflite, an empty or cut-off file). "" for None (the
    flag not given). Needs no TensorFlow."""
    if path is None:
        return ""
    problem = file_problem(path, f"Keras model file (.keras) {purpose}")
    if not problem and not zipfile.is_zipfile(path):
        problem = f"{path}: not a Keras model file (a .keras file is a zip archive); give a run's model.keras"
    return f"{flag} {problem}" if problem else ""


def load_trained(flag: str, path: Path):
    """The Keras model in ``path`` (uncompiled), checked to take a 48 x 48 grey face ``(None, 48, 48, 1)``
    and give the 7 class scores ``(None, 7)``.

    Raises TrainedModelError (one line starting with ``flag``) when Keras cannot load the file (not a model,
    a custom layer, an unbuilt model) or the shapes differ.
    """
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:  # Keras's errors for a bad file
        first = first_line(err)
        raise TrainedModelError(f"{flag} {path}: cannot be loaded as a Keras model ({first[:200]})") from None
    expected_in, expected_out = (None, IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1), (None, len(LABELS))
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
        raise TrainedModelError(
            f"{flag} {path}: takes {model.input_shape} and gives {model.output_shape}, expected a "
            f"{IMAGE_SIZE_PX}x{IMAGE_SIZE_PX} grey face and {len(LABELS)} class scores"
        )
    return model


def start_from(model, flag: str, path: Path) -> str:
    """Put the weights of the trained model in ``path`` into ``model`` (a new network of this run), which
    must be the same network at the same width: the start of a warm restart (Loshchilov & Hutter, "SGDR",
    ICLR 2017), a new learning-rate schedule from a trained model's weights. Returns the file's SHA-256
    (``model_sha256``), taken as it is loaded, for run.json and the card.

    Raises TrainedModelError (one line) when the file cannot be read or loaded (``model_sha256``,
    ``load_trained``) or its network differs, naming the first weight whose shape differs.
    """
    sha256 = model_sha256(flag, path)
    trained = load_trained(flag, path)
    ours, theirs = model.get_weights(), trained.get_weights()
    if len(ours) != len(theirs):
        raise TrainedModelError(
            f"{flag} {path}: another network ({len(theirs)} weight arrays, this run's has {len(ours)})"
        )
    for index, (mine, given) in enumerate(zip(ours, theirs, strict=True)):
        if mine.shape != given.shape:
            raise TrainedModelError(
                f"{flag} {path}: another network or width (weight {index} is {given.shape}, this run's is "
                f"{mine.shape}); give the --width it was trained with"
            )
    model.set_weights(theirs)
    return sha256


def model_sha256(flag: str, path: Path) -> str:
    """The SHA-256 of the model file in ``path`` (given as ``flag``), 64 hex digits. Raises
    TrainedModelError (one line starting with ``flag``) when it cannot be read: checked before TensorFlow
    started (``keras_file_problem``), it can have been removed, or replaced by a folder, since."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise TrainedModelError(
            f"{flag} {path}: cannot be read ({err.strerror}) since the run checked it; put it back and start "
            "again"
        ) from None
