"""Train the emotion CNN on FER2013: data → targets → model → train → evaluate → report.

python -m train --data ../shared/data/fer2013 --votes ../shared/data/ferplus/votes.csv --out runs/train
python -m train --data fer2013.csv --votes fer2013new.csv --out runs/train   (the public files as published)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.console import print_err, print_out, tolerating_lost_stdout
from device.errors import first_line
from device.paths import file_argument
from device.vision.preprocess import NORMALIZATIONS
from train import report
from train.const import LABELS
from train.data import Dataset, DatasetError, Split, check_extra, load, load_extra, merge_splits
from train.distill import distilled_targets, teacher_scores
from train.metrics import classification_metrics, format_report
from train.precision import PRECISIONS, cpu_flags, resolve_precision
from train.run_folder import (
    BACKUP_FOLDER,
    BEST_MODEL,
    HISTORY_FILE,
    RunFolderError,
    lock,
    read_history,
    reconcile_history,
    settings,
    start_problem,
    started_from,
    training_finished,
    write_settings,
)
from train.trained import TrainedModelError, keras_file_problem, start_from
from train.votes import Votes, VotesError, blended_targets, load_votes, split_problem

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/fer2013"),
        help="fer2013.csv or the folder holding train/ and test/",
    )
    parser.add_argument(
        "--votes",
        type=file_argument,
        help="FER+ votes: soft targets, not-a-face faces left out, and a FER+ test report; votes.csv (keyed "
        "by file path) with --data as image folders, or FERPlus's fer2013new.csv (by row) with fer2013.csv",
    )
    parser.add_argument(
        "--vote-blend",
        type=float,
        help="target = (1 - b) x FER2013 one-hot + b x FER+ --votes shares (default 0.5; 0 = FER2013 only)",
    )
    parser.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default="equalize_hist",
        help="lighting normalisation of each face (device.vision.preprocess), recorded in the model card",
    )
    parser.add_argument(
        "--extra-data",
        type=Path,
        action="append",
        default=[],
        help="more training faces, e.g. a household's corrections from the daemon's feedback: a folder of "
        "<class>/ image folders (repeatable); weighted by --extra-weight and reported apart",
    )
    parser.add_argument(
        "--extra-weight", type=float, help="sample weight of each --extra-data face (default 2)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="checkpoints, model and report")
    parser.add_argument("--epochs", type=int, help="default 40, or 2 with --quick")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--width", type=int, help="channels of the first block (default 32; 8 with --quick)")
    parser.add_argument("--patience", type=int, help="early stopping, in epochs (default 12; 2 with --quick)")
    parser.add_argument(
        "--ema-momentum",
        type=float,
        default=0.0,
        help="average the weights over the steps (exponential moving average, Polyak & Juditsky, 1992) with "
        "this momentum per step, e.g. 0.999; validation, checkpoints and the exported model use the average "
        "(default 0: off)",
    )
    parser.add_argument(
        "--mixup-alpha",
        type=float,
        default=0.0,
        help="mix training faces and their targets in pairs, each weight drawn from Beta(a, a) (mixup, Zhang "
        "et al., 2018), e.g. 0.2 (default 0: off)",
    )
    parser.add_argument(
        "--teacher",
        type=file_argument,
        help="distil a trained model: its mirror-averaged scores on each training face become part of the "
        "target (Hinton et al., 2015), e.g. runs/train-e120/model.keras; weighted by --teacher-weight",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        help="target = (1 - w) x the target without a teacher + w x the teacher's scores (default 0.5)",
    )
    parser.add_argument(
        "--init",
        type=file_argument,
        help="start from a trained model's weights rather than random ones, with a new schedule (a warm "
        "restart: Loshchilov & Hutter, 2017), e.g. runs/train-long/model.keras with a lower --learning-rate; "
        "the model must be this network at this --width",
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): mixed_bfloat16 on a GPU or a CPU with native bfloat16 (AVX512-BF16, AMX), "
        "where it halves the epoch time, else float32 (emulated bfloat16 is several times slower)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--quick", action="store_true", help="a narrow model for 2 epochs: a smoke test")
    args = parser.parse_args(argv)
    defaults = {"epochs": (40, 2), "width": (32, 8), "patience": (12, 2)}  # (a run, a --quick smoke test)
    for flag, (run, quick) in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, quick if args.quick else run)
    for flag, least in (("epochs", 1), ("batch_size", 1), ("width", 1), ("patience", 0)):
        if (value := getattr(args, flag)) < least:
            parser.error(f"--{flag.replace('_', '-')}: expected a whole number >= {least}, got {value}")
    if args.extra_weight is not None and not args.extra_data:
        parser.error("--extra-weight: weighs --extra-data faces, and no --extra-data was given")
    if args.extra_weight is None:
        args.extra_weight = 2.0
    if args.vote_blend is not None and args.votes is None:
        parser.error("--vote-blend: blends in FER+ --votes, and no --votes was given")
    if args.vote_blend is None:
        args.vote_blend = 0.5
    if args.teacher_weight is not None and args.teacher is None:
        parser.error("--teacher-weight: weighs a --teacher's scores, and no --teacher was given")
    if args.teacher_weight is None:
        args.teacher_weight = 0.5
    if not 0.0 < args.teacher_weight <= 1.0:
        parser.error(f"--teacher-weight: expected a number above 0 and at most 1, got {args.teacher_weight}")
    for flag in ("learning_rate", "extra_weight"):
        if not 0 < getattr(args, flag) < math.inf:
            parser.error(f"--{flag.replace('_', '-')}: expected a number > 0, got {getattr(args, flag)}")
    if not 0.0 <= args.ema_momentum < 1.0:
        parser.error(f"--ema-momentum: expected a number from 0 to below 1, got {args.ema_momentum}")
    if not 0.0 <= args.mixup_alpha < math.inf:
        parser.error(f"--mixup-alpha: expected a number >= 0, got {args.mixup_alpha}")
    if not 0.0 <= args.vote_blend <= 1.0:
        parser.error(f"--vote-blend: expected a number from 0 to 1, got {args.vote_blend}")
    return args


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Square-root inverse-frequency weight per class ``(7,)``, normalised to mean 1 over the samples.

    'disgust' has 436 faces against 7215 'happy': full inverse weighting costs overall accuracy,
    no weighting leaves disgust near zero recall; the square root is the middle road.
    """
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1))
    weights /= (weights * counts).sum() / counts.sum()
    return weights


def training_targets(
    data: Dataset, votes: Votes | None, blend: float, extra: Split | None = None, extra_weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Training faces, their targets ``(N, 7)`` and sample weights ``(N,)``, and facts for the report.

    With votes, the faces FER+ rejects as not a face are left out and each target blends the FER2013 label
    with the vote shares (``blended_targets``); without, the target is FER2013's one-hot label. Weights
    follow the FER2013 label (``class_weights``). ``extra`` faces (``--extra-data``) follow, one-hot, each
    weighted ``extra_weight``.
    """
    split = data["Training"]
    images, labels = split.images, split.labels
    facts: dict = {"targets": "FER2013 one-hot"}
    if votes is None:
        targets = np.eye(len(LABELS), dtype=np.float32)[labels]
    else:
        keep = ~votes.not_a_face(split.names)
        counts, _ = votes.emotion_counts(split.names)
        images, labels = images[keep], labels[keep]
        targets = blended_targets(labels, counts[keep], blend)
        facts = {
            "targets": f"{1 - blend:g} x FER2013 one-hot + {blend:g} x FER+ vote shares",
            "vote_blend": blend,
            "left_out_not_a_face": int((~keep).sum()),
        }
        logger.info(
            "FER+ votes: %s; %d Training faces left out as not a face", facts["targets"], (~keep).sum()
        )
    weights = class_weights(labels)[labels].astype(np.float32)
    if extra is not None:
        images = np.concatenate([images, extra.images])
        targets = np.concatenate([targets, np.eye(len(LABELS), dtype=np.float32)[extra.labels]])
        weights = np.concatenate([weights, np.full(len(extra.labels), extra_weight, np.float32)])
        facts["extra_faces"] = int(len(extra.labels))
        facts["extra_weight"] = extra_weight
    return images, targets, weights, facts


def evaluate(model, data: Dataset, votes: Votes | None, normalization: str) -> dict[str, dict]:
    """PrivateTest metrics of the Keras model: against FER2013's labels, and against the FER+ majority."""
    from train.fit import predict

    test = data["PrivateTest"]
    predicted = predict(model, test.images, normalization).argmax(axis=1)
    metrics = {"fer2013": classification_metrics(test.labels, predicted, list(LABELS))}
    if votes is not None:
        majority = votes.majority(test.names)
        known = majority >= 0
        metrics["ferplus"] = classification_metrics(majority[known], predicted[known], list(LABELS))
    return metrics


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    # SIGTERM (systemd, a closed session) stops the run as Ctrl-C does: at the last finished epoch.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Keras prints each epoch on stdout: a reader gone (| head) or no stdout (>&-) must not stop the run.
    with tolerating_lost_stdout("train"):
        try:
            return run(args)
        except KeyboardInterrupt:
            print_err(f"train: {interrupted(args)}")
            return 130
        except RunFolderError as err:
            print_err(f"train: {err}")
            return 2


def interrupted(args: argparse.Namespace) -> str:
    """What a stopped run says: how far it got and whether --resume continues it."""
    out = args.out
    try:
        done = read_history(out / HISTORY_FILE).epochs
    except RunFolderError:
        done = 0
    if (out / BACKUP_FOLDER).is_dir() or training_finished(out):
        return (
            f"interrupted after {done} finished epochs of {args.epochs}; continue with the same command and "
            "--resume (make train-resume)"
        )
    return "interrupted before its first epoch finished: nothing to resume; start it again"


def run(args: argparse.Namespace) -> int:
    """Check the run folder and the data, then train, evaluate and report (``main`` turns a stop and a
    run-folder problem into one line)."""
    commit = git_commit()  # the code that trains, before anything can move HEAD during the run
    problem = start_problem(args)
    if problem:
        print_err(f"train: {problem}")
        return 2

    # Data (no TensorFlow yet: a wrong path answers in a second)
    try:
        data = load(args.data)
        votes = load_votes(args.votes) if args.votes else None
        extras = [load_extra(folder) for folder in args.extra_data]
        check_extra(data, list(zip(args.extra_data, extras, strict=True)))
    except (DatasetError, VotesError) as err:
        print_err(f"train: {err}")
        return 2
    problem = (
        votes_problem(args, data, votes)
        or keras_file_problem("--teacher", args.teacher, "to distil")
        # a resume takes the weights from its backup, and the init's path and hash from run.json
        or ("" if args.resume else keras_file_problem("--init", args.init, "to start from"))
    )
    if problem:
        print_err(f"train: {problem}")
        return 2
    flags = settings(args)  # as given: TensorFlow resolves --precision auto below
    extra = merge_splits(extras) if extras else None
    images, targets, weights, target_facts = training_targets(
        data, votes, args.vote_blend, extra, args.extra_weight
    )
    try:
        model, training, target_facts, init_sha256 = start_model(
            args, (images, targets, weights), target_facts, extra
        )
    except TrainedModelError as err:
        print_err(f"train: {err}")
        return 2
    # Nothing is written to --out before: a start refused above leaves no half-made run there, and a run.json
    # already there (a run in the folder) is not replaced by the flags of one that never started.
    args.out.mkdir(parents=True, exist_ok=True)
    held = lock(args.out)
    try:
        if not args.resume:
            write_settings(args.out, flags, init_sha256)
        elif (args.out / BACKUP_FOLDER).is_dir():
            reconcile_history(args.out)
        if started := started_from(args.out):
            logger.info("the run started from %s (sha256 %s)", started["init"], started.get("init_sha256"))
            target_facts = target_facts | started
        return train_and_report(args, model, data, votes, extra, training, target_facts, commit)
    finally:
        held.close()


def start_model(
    args: argparse.Namespace,
    training: tuple[np.ndarray, np.ndarray, np.ndarray],
    target_facts: dict,
    extra: Split | None,
) -> tuple[keras.Model, tuple[np.ndarray, np.ndarray, np.ndarray], dict, str | None]:
    """The run's new network, seeded, under its precision (``--precision auto`` resolved into
    ``args.precision``), and where it starts: the teacher's scores blended into the targets (``distil``),
    and on a fresh start with ``--init`` the given model's weights. Returns the model, the training faces,
    targets and weights (``training`` with the teacher's scores blended in) and their facts, and the
    SHA-256 of the ``--init`` file (None without one, or on a resume, which takes its weights from the
    backup). Raises TrainedModelError (one line) for a teacher or init model that cannot serve. Writes
    nothing to ``args.out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from train import fit

    keras.utils.set_random_seed(args.seed)
    args.precision = resolve_precision(
        args.precision, cpu_flags(), has_gpu=bool(tf.config.list_physical_devices("GPU"))
    )
    model = fit.new_model(args)
    if args.teacher is not None:
        training, target_facts = distil(args, training, target_facts, extra)
    if args.init is None or args.resume:
        return model, training, target_facts, None
    return model, training, target_facts, start_from(model, "--init", args.init)


def votes_problem(args: argparse.Namespace, data: Dataset, votes: Votes | None) -> str:
    """Why the votes cannot serve this data (one line), or "": a votes file that pairs with the other data
    layout, or a fer2013new.csv whose rows are not fer2013.csv's (``pairing_problem``); or votes naming too
    few of its Training faces (``coverage_problem``: keyed by other names, or cut short). FER+ has no votes
    for about 0.5 % of the faces, the ones it dropped as not a face."""
    if votes is None:
        return ""
    return split_problem(args.data, data, args.votes, votes, "Training")


def distil(
    args: argparse.Namespace,
    training: tuple[np.ndarray, np.ndarray, np.ndarray],
    target_facts: dict,
    extra: Split | None,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict]:
    """The training faces with the teacher's scores blended into the FER2013 faces' targets
    (``train.distill``), and the facts saying so. ``--extra-data`` faces keep their own labels: they are a
    household's corrections of what a model said. Raises TeacherError (one line)."""
    images, targets, weights = training
    weight = args.teacher_weight
    own = len(images) - (len(extra.labels) if extra is not None else 0)
    scores = teacher_scores(args.teacher, images[:own], args.normalization)
    agree = float((scores.argmax(axis=1) == targets[:own].argmax(axis=1)).mean())
    logger.info("teacher %s: top class is the target's on %.1f %% of the faces", args.teacher, 100 * agree)
    targets = np.concatenate([distilled_targets(targets[:own], scores, weight), targets[own:]])
    facts = target_facts | {
        "targets": f"{1 - weight:g} x ({target_facts['targets']}) + {weight:g} x the teacher's scores",
        "teacher": str(args.teacher),
        "teacher_weight": weight,
    }
    return (images, targets, weights), facts


def train_and_report(
    args: argparse.Namespace,
    model: keras.Model,
    data: Dataset,
    votes: Votes | None,
    extra: Split | None,
    training: tuple[np.ndarray, np.ndarray, np.ndarray],
    target_facts: dict,
    commit: str,
) -> int:
    """Train ``model`` (``start_model``'s) on ``training`` (faces, targets, sample weights) in ``args.out``,
    whose lock ``run`` holds, evaluate on PrivateTest, write the report."""
    from train import fit

    train_ds = fit.training_dataset(*training, args)
    val = data["PublicTest"]
    val_ds = fit.validation_dataset(val.images, val.labels, args.normalization)

    # Model
    fit.compile_model(model, args, steps_per_epoch=len(train_ds))
    logger.info("model %s: %d parameters, %s", model.name, model.count_params(), args.precision)

    # Train (a resumed run whose training had finished only evaluates and exports)
    if args.resume and not (args.out / BACKUP_FOLDER).is_dir():
        logger.info("%s: training had finished; evaluating and exporting %s", args.out, BEST_MODEL)
    else:
        before = read_history(args.out / HISTORY_FILE).epochs
        try:
            fit.fit(model, train_ds, val_ds, args)
        except (OSError, ValueError) as err:
            if not args.resume or read_history(args.out / HISTORY_FILE).epochs > before:
                raise
            # Both of Keras's backups unreadable (a full disk, a kill mid-save): restoring failed.
            first = first_line(err)
            raise RunFolderError(
                f"{args.out / BACKUP_FOLDER}: cannot be restored ({first}); remove it to start again"
            ) from None
    history = read_history(args.out / HISTORY_FILE)  # every epoch, the ones before a resume too

    # Evaluate on PrivateTest, the final report only
    model = fit.export_float32(args.out / BEST_MODEL, args)
    metrics = evaluate(model, data, votes, args.normalization)
    if extra is not None:  # training faces: how well the model learned them, not a test
        predicted = fit.predict(model, extra.images, args.normalization).argmax(axis=1)
        metrics["extra"] = classification_metrics(extra.labels, predicted, list(LABELS))
    report.plot_curves(args.out / HISTORY_FILE, args.out / "curves.png")
    facts = {
        "split": "PrivateTest",
        "dataset": "FER2013",
        "epochs": history.epochs,
        "best_val_accuracy": round(history.best or 0.0, 4),
        "max_epochs": args.epochs,  # the learning-rate schedule's length; early stopping may end sooner
        "patience": args.patience,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "width": args.width,
        "ema_momentum": args.ema_momentum,
        "mixup_alpha": args.mixup_alpha,
        "precision": args.precision,
        "parameters": model.count_params(),
        "normalization": args.normalization,
        **target_facts,
        "data_sha256": data.sha256,
        "git_commit": commit,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report.write_report(args.out, metrics["fer2013"], facts)
    if "ferplus" in metrics:
        report.write_json(args.out / "report-ferplus.json", metrics["ferplus"])
    if "extra" in metrics:
        report.write_json(args.out / "report-extra.json", metrics["extra"])
    (args.out / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
    lines = []
    for name, found in metrics.items():
        where = "(training faces, not a test)" if name == "extra" else "PrivateTest"
        lines.append(f"{name} {where}\n{format_report(found)}")
    lines.append(f"model: {args.out / 'model.keras'}  report: {args.out / 'report.json'}")
    # The run's outcome is its files, written by now: a reader gone (| head) or no stdout leaves it 0.
    print_out("\n".join(lines), "train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
