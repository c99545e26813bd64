"""Convert the Keras model to TFLite, verify it with the device's code, calibrate it, write its card.

    python -m convert --model runs/train/model.keras --data ../shared/data/fer2013 \
        --votes ../shared/data/ferplus/votes.csv --out models/emotion-int8.tflite

Beside the model it writes the card (``emotion-int8.json``) and the report folder (``emotion-int8-report/``):
FER2013 and FER+ metrics on PrivateTest, confusion matrices, calibration with its reliability diagram, and the
robustness table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.calibrate import fit_temperature, reliability
from convert.card import (
    QUANTIZATIONS,
    build_card,
    card_json,
    card_metrics,
    crop_section,
    read_json,
    write_card,
)
from convert.errors import AccuracyDropError, ConvertError
from convert.robustness import labels_unchanged
from device.config import folder_problem
from device.console import print_err, print_out
from device.errors import ModelError, first_line
from device.paths import file_argument, file_problem, named_as_folder, write_whole
from device.vision.classify import EmotionClassifier, apply_temperature, card_path_for
from device.vision.preprocess import NORMALIZATIONS, normalize
from train import report
from train.const import LABELS
from train.data import Dataset, DatasetError, load
from train.metrics import classification_metrics, format_report
from train.votes import Votes, VotesError, load_votes, split_majority, split_problem

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("convert")

REPORT_SPLIT = "PrivateTest"
CALIBRATION_SPLIT = "PublicTest"
# The crop calibration ``tools.calibrate_crop`` writes; a checkout without one converts with a zero crop.
DEFAULT_CROP = Path("models/crop.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=file_argument, default=Path("runs/train/model.keras"), help="float32 Keras model"
    )
    parser.add_argument(
        "--training", type=file_argument, help="training facts (default: training.json beside --model)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/fer2013"),
        help="fer2013.csv or the folder holding train/ and test/",
    )
    parser.add_argument("--out", help="the .tflite (default: models/emotion-<quantization>.tflite)")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="int8")
    parser.add_argument(
        "--flip-average",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score each face and its mirror image and average (on by default; chosen on PublicTest)",
    )
    parser.add_argument(
        "--votes",
        type=file_argument,
        help="FER+ votes (votes.csv with image folders, fer2013new.csv with fer2013.csv): adds FER+ "
        "majority metrics to the report and the card",
    )
    parser.add_argument(
        "--crop", type=file_argument, help=f"crop calibration (default: {DEFAULT_CROP}, zeros if absent)"
    )
    parser.add_argument("--representative", type=int, default=500, help="Training faces for int8 calibration")
    parser.add_argument("--seed", type=int, default=1234, help="seeds the representative sample")
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="largest accuracy loss against Keras allowed, as a fraction (0.01 = 1 point)",
    )
    args = parser.parse_args(argv)
    args.training = args.training or args.model.with_name("training.json")
    if args.out is not None and not args.out.strip():
        parser.error("--out: expected the .tflite's path, got an empty path")
    if args.out is not None and (spelled := named_as_folder(args.out)):  # Path() drops the '/' or '/.'
        parser.error(f"--out: {'; '.join(spelled)}")
    args.out = Path(args.out) if args.out else Path(f"models/emotion-{args.quantization}.tflite")
    if args.representative < 1:
        parser.error(f"--representative: expected a whole number >= 1, got {args.representative}")
    if not math.isfinite(args.max_drop):  # nan would switch the guard off
        parser.error(f"--max-drop: expected a number, got {args.max_drop}")
    return args


def out_problem(out: Path, inputs: tuple[Path, ...] = ()) -> str:
    """Why the model cannot be written at ``out`` (a folder there, at its card's path or a file at its report
    folder's; a folder this user cannot create or write: ``device.config.folder_problem``; or ``out`` or its
    card being one of the ``inputs``, the Keras model and training facts it would overwrite), or "": checked
    before the minutes of conversion, not after."""
    if out.is_dir():
        return f"--out {out}: is a folder, expected the .tflite's path"
    card, report_dir = card_path_for(out), report_dir_for(out)
    if card.is_dir():
        return f"--out {out}: its card's path {card} is a folder"
    if report_dir.exists() and not report_dir.is_dir():
        return f"--out {out}: its report folder's path {report_dir} is a file"
    for written in (out, card):
        for given in inputs:
            if written.resolve() == given.resolve():
                return f"--out {out}: would write {written} over the input {given}; choose another path"
    problem = folder_problem(out.parent)
    return f"--out {problem}" if problem else ""


def replace_files(contents: dict[Path, bytes]) -> None:
    """Write the files whole or not at all, fsynced (``device.paths.write_whole``), creating their folders: a
    full disk or no permission leaves the files that were there whole, not a truncated model beside an old
    card, and a power cut right after (a Pi's SD card) leaves the new model, not an empty file. Raises
    ConvertError naming the file."""
    try:
        for folder in {target.parent for target in contents}:
            folder.mkdir(parents=True, exist_ok=True)
        write_whole(contents, durable=True)
    except OSError as err:  # write_whole's names the file it could not write; mkdir's the folder
        raise ConvertError(f"{err.filename}: cannot write it ({err.strerror or err})") from None


def keras_archive_problem(path: Path) -> str:
    """Why ``path`` cannot be a Keras model (missing, or no zip archive: truncated, corrupt), or "": checked
    in a moment, before the data is read and TensorFlow imported."""
    if not path.is_file():
        return f"{path}: model file not found; run 'make train' or pass --model"
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" of a file that is there
        return (
            f"{path}: not a readable Keras archive (not a zip file: truncated, corrupt or another kind of "
            "file); pass --model with the model.keras of a finished training run"
        )
    return ""


def load_keras_model(path: Path) -> keras.Model:
    """The float32 Keras model at ``path``. Raises ConvertError (one line) for a missing file, one that is no
    Keras archive (truncated, corrupt: ``keras_archive_problem``), one Keras cannot load, or a
    mixed-precision checkpoint."""
    if problem := keras_archive_problem(path):
        raise ConvertError(problem)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # only now: TensorFlow takes seconds to import, and a bad argument should not wait for it

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors… for a bad file
        first = first_line(err)
        if first.startswith("File not found"):  # the file is there: Keras's text would mislead
            first = "Keras cannot read it"
        raise ConvertError(f"{path}: not a readable Keras model ({first}); pass --model") from None
    mixed = sorted({policy for policy in _layer_policies(model) if policy != "float32"})
    if mixed:
        raise ConvertError(
            f"{path}: a mixed-precision training checkpoint ({', '.join(mixed)} layers); convert the float32 "
            f"export training wrote beside it: --model {path.with_name('model.keras')}"
        )
    return model


def _layer_policies(model: keras.Model) -> set[str]:
    """The dtype policy of ``model`` and of every layer in it, nested models included ("mixed_bfloat16")."""
    found = {model.dtype_policy.name}
    for layer in model.layers:
        found |= _layer_policies(layer) if hasattr(layer, "layers") else {layer.dtype_policy.name}
    return found


def report_dir_for(model_path: Path) -> Path:
    """The report folder beside the model: ``emotion-int8.tflite`` → ``emotion-int8-report/``."""
    return model_path.with_name(f"{model_path.stem}-report")


def convert(args: argparse.Namespace) -> dict:
    """Run every step in order; return the card written. Raises ConvertError for anything a user can fix."""
    # Inputs (TensorFlow last: a wrong file answers before its seconds of import)
    training = read_json(args.training, "training facts", "pass --training with the run's training.json")
    normalization = training_normalization(args.training, training)
    crop = crop_calibration(args.crop)
    data, votes = load_data(args)
    if training.get("data_sha256") not in (None, data.sha256):
        logger.warning("%s differs from the data the model was trained on (data_sha256)", args.data)
    model = load_keras_model(args.model)
    from convert.quantize import flip_averaged, representative_faces, to_tflite  # TensorFlow, loaded by now
    from convert.verify import keras_scores, tflite_scores

    if args.flip_average:
        model = flip_averaged(model)
    height, width, channels = (int(d) for d in model.input_shape[1:])
    input_shape = (height, width, channels)

    # Convert
    representative = None
    if args.quantization == "int8":
        faces = normalize(data["Training"].images, normalization)[..., np.newaxis]
        representative = representative_faces(faces, args.representative, args.seed)
        logger.info("calibrating int8 on %d Training faces (seed %d)", len(representative), args.seed)
    flatbuffer = to_tflite(model, args.quantization, representative)

    # Verify on the report split and fit the temperature on the validation split, the .tflite through the
    # device's own classifier (with the provisional card: no temperature yet)
    with tempfile.TemporaryDirectory(prefix="moodcast-verify-") as tmp:
        candidate = Path(tmp) / args.out.name
        candidate.write_bytes(flatbuffer)
        provisional = build_card(
            list(LABELS),
            input_shape,
            crop,
            normalization,
            args.quantization,
            None,
            training,
            args.flip_average,
        )
        write_card(card_path_for(candidate), provisional)
        try:
            classifier = EmotionClassifier(candidate)
            validation = data[CALIBRATION_SPLIT]
            temperature = fit_temperature(tflite_scores(classifier, validation.images), validation.labels)
            raw_scores = tflite_scores(classifier, data[REPORT_SPLIT].images)
            robustness = labels_unchanged(
                data[REPORT_SPLIT].images, lambda faces: tflite_scores(classifier, faces).argmax(axis=1)
            )
        except ModelError as err:
            raise ConvertError(f"the converted model fails on the device's runtime: {err}") from None
    test = data[REPORT_SPLIT]
    lite_predicted = raw_scores.argmax(axis=1)
    keras_predicted = keras_scores(model, test.images, normalization).argmax(axis=1)
    lite = classification_metrics(test.labels, lite_predicted, list(LABELS))
    reference = classification_metrics(test.labels, keras_predicted, list(LABELS))
    drop = reference["accuracy"] - lite["accuracy"]
    agreement = float((lite_predicted == keras_predicted).mean())
    # What is printed is a copy of the report: a reader gone (| head) or no stdout leaves the status as it is.
    print_out(summary(args, lite, reference, len(flatbuffer), agreement), "convert")
    if drop > args.max_drop:
        raise AccuracyDropError(
            f"{args.quantization} model loses {100 * drop:.1f} points against Keras on {REPORT_SPLIT} "
            f"({lite['accuracy']:.4f} vs {reference['accuracy']:.4f}, limit {100 * args.max_drop:.1f}); "
            f"{args.out} not written; calibrate on more faces (--representative) or raise --max-drop"
        )
    calibration: dict[str, Any] = {
        "temperature": temperature,
        "method": "temperature scaling (Guo et al., 2017), NLL of FER2013 labels",
        "fitted_on": f"FER2013 {CALIBRATION_SPLIT}",
        "uncalibrated": reliability(raw_scores, test.labels),
        "calibrated": reliability(apply_temperature(raw_scores, temperature), test.labels),
    }
    majority = ferplus_majority(data, votes, args.votes)
    calibration["ferplus_majority_ece"] = ferplus_calibration(majority, raw_scores, temperature)
    ferplus = ferplus_metrics(majority, lite_predicted)

    # Ship: the model, its card and its report, side by side
    metrics = card_metrics(REPORT_SPLIT, lite, reference["accuracy"], ferplus, robustness)
    card = build_card(
        list(LABELS),
        input_shape,
        crop,
        normalization,
        args.quantization,
        metrics,
        training,
        args.flip_average,
        {key: calibration[key] for key in ("temperature", "method", "fitted_on")}
        | {"ece": calibration["calibrated"]["ece"], "ece_uncalibrated": calibration["uncalibrated"]["ece"]},
    )
    write_report(report_dir_for(args.out), lite, reference, ferplus, calibration, robustness, agreement)
    replace_files({args.out: flatbuffer, card_path_for(args.out): card_json(card).encode()})
    where = f"model: {args.out}  card: {card_path_for(args.out)}  report: {report_dir_for(args.out)}"
    print_out(f"{format_extras(ferplus, calibration, robustness)}\n{where}", "convert")
    return card


def training_normalization(path: Path, training: dict) -> str:
    """The lighting normalisation the model was trained with: the ``normalization`` of its training facts
    (``path``, read into ``training``), "none" where the key is absent (runs from before normalisation).
    Raises ConvertError naming the file and the field for a value the device cannot apply (null included)."""
    normalization = training.get("normalization", "none")
    if normalization not in NORMALIZATIONS:
        expected = ", ".join(NORMALIZATIONS)
        raise ConvertError(
            f"{path}: normalization: expected one of {expected}, got {json.dumps(normalization)}; the device "
            "normalises faces in no other way: convert a run trained with one of them (train --normalization)"
        )
    return str(normalization)


def crop_calibration(given: Path | None) -> dict:
    """The card's ``input.crop`` (``convert.card.crop_section``) from ``--crop``, or from ``DEFAULT_CROP``
    where none was given: zeros, with a WARNING, when that is absent. Raises ConvertError for a --crop that
    is not a readable file: a path the user named must be there."""
    if given is not None and (problem := file_problem(given, "crop calibration")):
        raise ConvertError(f"--crop {problem}; run 'python -m tools.calibrate_crop' or pass --crop its file")
    crop = crop_section(given or DEFAULT_CROP)
    if crop["source"].startswith("default"):
        logger.warning("%s not found: the card records a zero crop margin and offset", DEFAULT_CROP)
    return crop


def load_data(args: argparse.Namespace) -> tuple[Dataset, Votes | None]:
    """The FER2013 splits and, with ``--votes``, the FER+ votes, checked to pair with them
    (``train.votes.pairing_problem``) and to cover the faces the report scores against them
    (``train.votes.coverage_problem``, the check training makes of its Training faces). Raises ConvertError
    (one line) for data or votes that cannot serve."""
    try:
        data = load(args.data)
        votes = load_votes(args.votes) if args.votes else None
    except (DatasetError, VotesError) as err:
        raise ConvertError(str(err)) from None
    if votes is not None and (problem := split_problem(args.data, data, args.votes, votes, REPORT_SPLIT)):
        raise ConvertError(problem)
    return data, votes


def ferplus_majority(data: Dataset, votes: Votes | None, votes_path: Path | None) -> np.ndarray | None:
    """The FER+ majority of each report split face ``(N,)``, an index into LABELS or -1 where it is not an
    emotion (``train.votes.split_majority``), the votes read from ``votes_path``; None without votes.
    Raises ConvertError when no face has one."""
    if votes is None or votes_path is None:
        return None
    try:
        return split_majority(votes, votes_path, REPORT_SPLIT, data[REPORT_SPLIT].names)
    except VotesError as err:
        raise ConvertError(str(err)) from None


def ferplus_metrics(majority: np.ndarray | None, predicted: np.ndarray) -> dict | None:
    """Metrics of the top classes ``predicted`` ``(N,)`` against the FER+ ``majority`` ``(N,)``
    (``ferplus_majority``), on the faces whose majority is an emotion; None without votes."""
    if majority is None:
        return None
    known = majority >= 0
    return classification_metrics(majority[known], predicted[known], list(LABELS))


def ferplus_calibration(majority: np.ndarray | None, scores: np.ndarray, temperature: float) -> dict | None:
    """Expected calibration error against the FER+ ``majority`` ``(N,)`` (``ferplus_majority``), on the faces
    whose majority is an emotion, of the report split's ``scores`` ``(N, 7)`` before and after
    ``temperature`` (fitted on FER2013 labels): ``{"faces", "uncalibrated", "calibrated"}``; None without
    votes."""
    if majority is None:
        return None
    known = majority >= 0
    return {
        "faces": int(known.sum()),
        "uncalibrated": reliability(scores[known], majority[known])["ece"],
        "calibrated": reliability(apply_temperature(scores[known], temperature), majority[known])["ece"],
    }


def write_report(
    folder: Path,
    lite: dict,
    reference: dict,
    ferplus: dict | None,
    calibration: dict,
    robustness: dict[str, float],
    agreement: float,
) -> None:
    """``report.json`` and the PNGs: confusion matrices (FER2013, FER+ where ``ferplus``; an old FER+ one is
    removed where not) and the reliability diagram."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "split": REPORT_SPLIT,
        "fer2013": lite,
        "ferplus_majority": ferplus,
        "keras_fer2013_accuracy": reference["accuracy"],
        "same_top_class_as_keras": round(agreement, 4),
        "calibration": calibration,
        "labels_unchanged": robustness,
    }
    report.write_json(folder / "report.json", content)
    report.plot_confusion(lite, folder / "confusion-fer2013.png", f"FER2013 labels, {REPORT_SPLIT}")
    if ferplus is not None:
        report.plot_confusion(ferplus, folder / "confusion-ferplus.png", f"FER+ majority, {REPORT_SPLIT}")
    else:  # a report before, with --votes, left one: it is another model's
        (folder / "confusion-ferplus.png").unlink(missing_ok=True)
    report.plot_reliability(
        {
            "uncalibrated": calibration["uncalibrated"],
            f"T = {calibration['temperature']:g}": calibration["calibrated"],
        },
        folder / "reliability.png",
        f"Reliability, FER2013 {REPORT_SPLIT}",
    )


def format_extras(ferplus: dict | None, calibration: dict, robustness: dict[str, float]) -> str:
    """The terminal lines after the summary: FER+ table, calibration and robustness."""
    lines = []
    if ferplus is not None:
        lines += ["FER+ majority", format_report(ferplus)]
    line = (
        f"calibration: temperature {calibration['temperature']:g}, "
        f"ECE {calibration['uncalibrated']['ece']:.4f} "
        f"→ {calibration['calibrated']['ece']:.4f}"
    )
    if by_votes := calibration["ferplus_majority_ece"]:
        line += f"; FER+ majority ECE {by_votes['uncalibrated']:.4f} → {by_votes['calibrated']:.4f}"
    lines.append(line)
    lines += ["labels unchanged:"] + [f"  {name:<28}{share:.1%}" for name, share in robustness.items()]
    return "\n".join(lines)


def summary(args: argparse.Namespace, lite: dict, reference: dict, size: int, agreement: float) -> str:
    """The terminal table: both accuracies, the size, and the per-class scores of the .tflite."""
    drop = 100 * (reference["accuracy"] - lite["accuracy"])
    lines = [
        f"{REPORT_SPLIT} ({sum(m['support'] for m in lite['per_class'].values())} faces)",
        f"{'keras float32':<16}accuracy {reference['accuracy']:.4f}",
        f"{'tflite ' + args.quantization:<16}accuracy {lite['accuracy']:.4f}  "
        f"({drop:.2f} points below Keras, limit {100 * args.max_drop:.2f}; same top class {agreement:.1%})",
        f"{'size':<16}{size / 1024:.0f} KiB",
        format_report(lite),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to: <tmp>", once per export
    args = parse_args(argv)
    problem = out_problem(args.out, (args.model, args.training)) or keras_archive_problem(args.model)
    if problem:
        print_err(f"convert: {problem}")
        return 2
    try:
        convert(args)
    except AccuracyDropError as err:
        print_err(f"convert: {err}")
        return 1
    except ConvertError as err:
        print_err(f"convert: {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
