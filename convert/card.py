"""The model card written beside the .tflite (ARCHITECTURE.md schema), read by ``device.vision.classify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from convert.errors import ConvertError
from device.const import CARD_SCHEMA_VERSION as CARD_SCHEMA  # the device reads what we write

CARD_NAME = "moodcast-emotion"
CROP_KEYS = ("margin_frac", "offset_x_frac", "offset_y_frac")
QUANTIZATIONS = ("int8", "float16", "float32")  # the card's "quantization"


def read_json(path: Path, what: str, fix: str) -> dict:
    """Read a JSON object from ``path``; raise ConvertError naming the file and ``fix`` when it cannot."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConvertError(f"{path}: {what} not found; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConvertError(f"{path}: {what} is not readable JSON ({err}); {fix}") from None
    if not isinstance(raw, dict):
        raise ConvertError(f"{path}: expected a JSON object in the {what}, got {type(raw).__name__}")
    return raw


def crop_section(path: Path) -> dict:
    """The card's ``input.crop`` from the calibration file; zeros (and a note saying so) when it is absent."""
    if not Path(path).exists():
        return {**dict.fromkeys(CROP_KEYS, 0.0), "source": f"default: {path} not found, crop not calibrated"}
    raw = read_json(path, "crop calibration", "run 'python -m tools.calibrate_crop' or pass --crop")
    try:
        crop = {key: float(raw[key]) for key in CROP_KEYS}
    except (KeyError, TypeError, ValueError) as err:
        raise ConvertError(f"{path}: expected numbers {', '.join(CROP_KEYS)} ({err!r})") from None
    return {**crop, "source": str(path)}


# The training facts the card carries (those in training.json): the recipe that made the model, and what it
# was trained on. A training.json from before a fact was recorded lacks it, and so does the card (the shipped
# one names no width, precision or patience; the device reads none of them). vote_blend only for a run given
# --votes; extra_* only for a run given --extra-data (household corrections), whose faces data_sha256
# (FER2013's) does not cover, teacher* only for a run given --teacher, and init* only for one that started
# from a trained model's weights (--init: its epochs count only the run's own).
TRAINING_KEYS = (
    "epochs",
    "max_epochs",
    "patience",
    "batch_size",
    "learning_rate",
    "seed",
    "width",
    "parameters",
    "precision",
    "ema_momentum",
    "mixup_alpha",
    "data_sha256",
    "git_commit",
    "targets",
    "vote_blend",
    "extra_faces",
    "extra_weight",
    "teacher",
    "teacher_weight",
    "init",
    "init_sha256",
)


def build_card(
    labels: list[str],
    input_shape: tuple[int, int, int],
    crop: dict,
    normalization: str,
    quantization: str,
    metrics: dict | None,
    training: dict,
    flip_average: bool = False,
    calibration: dict | None = None,
) -> dict:
    """Assemble the card. ``metrics`` is None for the provisional card the verification step loads.

    ``normalization`` is the lighting normalisation the model was trained with (``device.vision.preprocess``);
    ``calibration`` holds the ``temperature`` the device applies to the scores (absent: 1).
    """
    height, width, channels = input_shape
    card = {
        "schema": CARD_SCHEMA,
        "name": CARD_NAME,
        "labels": list(labels),
        "input": {
            "height": height,
            "width": width,
            "channels": channels,
            "scale": "0..1",
            "normalization": normalization,
            "crop": crop,
        },
        "quantization": quantization,
        "flip_average": flip_average,
        "metrics": metrics or {},
        "training": {key: training.get(key) for key in TRAINING_KEYS if key in training},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if calibration is not None:
        card["calibration"] = calibration
    return card


def _per_class(metrics: dict) -> dict:
    return {
        name: {"precision": scores["precision"], "recall": scores["recall"]}
        for name, scores in metrics["per_class"].items()
    }


def card_metrics(
    split: str,
    metrics: dict,
    keras_accuracy: float,
    ferplus: dict | None = None,
    labels_unchanged: dict[str, float] | None = None,
) -> dict:
    """The card's ``metrics`` from ``train.metrics.classification_metrics`` of the .tflite's predictions.

    ``ferplus``: the same against the FER+ majority; ``labels_unchanged``: ``convert.robustness``'s table.
    """
    card = {
        "dataset": "FER2013",
        "split": split,
        "accuracy": metrics["accuracy"],
        "macro_recall": metrics["macro_recall"],
        "keras_accuracy": keras_accuracy,
        "per_class": _per_class(metrics),
    }
    if ferplus is not None:
        card["ferplus_majority"] = {
            "accuracy": ferplus["accuracy"],
            "macro_recall": ferplus["macro_recall"],
            "faces": int(sum(m["support"] for m in ferplus["per_class"].values())),
            "per_class": _per_class(ferplus),
        }
    if labels_unchanged is not None:
        card["labels_unchanged"] = labels_unchanged
    return card


def card_json(card: dict) -> str:
    """The card as the indented JSON text written beside the model."""
    return json.dumps(card, indent=2) + "\n"


def write_card(path: Path, card: dict) -> None:
    """Write the card as indented JSON (``card_json``)."""
    Path(path).write_text(card_json(card))
