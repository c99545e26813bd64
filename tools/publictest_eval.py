"""A trained Keras model's figures on PublicTest, the split that chooses recipes and models.

FER2013 accuracy and macro recall, FER+ majority accuracy and macro recall (the faces whose majority is one of
the 7 emotions), each face scored with its mirror image and the scores averaged as the device does, and the
mean of the two macro recalls: the balanced figure docs/MODEL.md's shipping rule compares, fixed before each
run ("ship only if it beats the shipped model's").

    python -m tools.publictest_eval --model runs/train-long/model.keras

The faces are normalised as the run's training.json (beside the model) says. Exit status 0, or 2 with one
line for a model, training facts, data or votes that cannot be read or do not pair.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from convert.__main__ import keras_archive_problem, load_keras_model, training_normalization
from convert.card import read_json
from convert.errors import ConvertError
from device.console import print_err, print_out
from device.paths import file_argument
from tools.labelled_split import LabelsError, add_label_arguments, labelled_split
from train.const import LABELS
from train.metrics import classification_metrics

SPLIT = "PublicTest"


def balanced_figures(labels: np.ndarray, majority: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The rule's figures (0..1) for one model's predicted classes ``(N,)`` on N faces: FER2013 ``labels``
    ``(N,)`` and the FER+ ``majority`` ``(N,)`` (indices into LABELS, -1 where it is no emotion: left out of
    the FER+ figures)."""
    fer2013 = classification_metrics(labels, predicted, list(LABELS))
    known = majority >= 0
    ferplus = classification_metrics(majority[known], predicted[known], list(LABELS))
    return {
        "fer2013_accuracy": fer2013["accuracy"],
        "fer2013_macro_recall": fer2013["macro_recall"],
        "ferplus_accuracy": ferplus["accuracy"],
        "ferplus_macro_recall": ferplus["macro_recall"],
        "mean_macro_recall": (fer2013["macro_recall"] + ferplus["macro_recall"]) / 2,
    }


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    """Check the inputs (the files before TensorFlow loads), score PublicTest, return ``balanced_figures``.
    Raises ConvertError or LabelsError (one line)."""
    if problem := keras_archive_problem(args.model):
        raise ConvertError(problem)
    training = read_json(args.training, "training facts", "pass --training with the run's training.json")
    normalization = training_normalization(args.training, training)
    test, majority = labelled_split(args.data, args.votes, SPLIT)
    model = load_keras_model(args.model)
    from convert.quantize import flip_averaged  # TensorFlow, loaded by now
    from convert.verify import keras_scores

    predicted = keras_scores(flip_averaged(model), test.images, normalization).argmax(axis=1)
    return balanced_figures(test.labels, majority, predicted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.publictest_eval", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model",
        type=file_argument,
        default=Path("runs/train/model.keras"),
        help="a training run's model.keras",
    )
    parser.add_argument(
        "--training", type=file_argument, help="training facts (default: training.json beside the model)"
    )
    add_label_arguments(parser)
    args = parser.parse_args(argv)
    args.training = args.training or args.model.with_name("training.json")
    try:
        figures = evaluate(args)
    except (ConvertError, LabelsError) as err:
        print_err(f"publictest_eval: {err}")
        return 2
    return print_out(
        f"{SPLIT}: FER2013 {figures['fer2013_accuracy']:.1%} / {figures['fer2013_macro_recall']:.1%}, "
        f"FER+ majority {figures['ferplus_accuracy']:.1%} / {figures['ferplus_macro_recall']:.1%} "
        f"(accuracy / macro recall); mean of the macro recalls {figures['mean_macro_recall']:.2%}",
        "publictest_eval",
    )


if __name__ == "__main__":
    sys.exit(main())
