"""Train the emotion CNN on FER2013: data → model → train → evaluate → report.

python -m train --data ../shared/data/fer2013 --out runs/train
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from device.preprocess import normalize  # noqa: E402
from train import report  # noqa: E402
from train.augment import build_augmenter, random_erase  # noqa: E402
from train.const import IMAGE_SIZE_PX, LABELS  # noqa: E402
from train.data import DatasetError, load  # noqa: E402
from train.model import build_model  # noqa: E402

logger = logging.getLogger("train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/fer2013"),
        help="fer2013.csv or the folder holding train/ and test/",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="checkpoints, model and report")
    parser.add_argument("--epochs", type=int, help="default 40, or 2 with --quick")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=32, help="channels of the first block")
    parser.add_argument("--patience", type=int, default=12, help="early stopping, in epochs")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--precision",
        choices=("mixed_bfloat16", "float32"),
        default="mixed_bfloat16",
        help="bfloat16 halves the epoch time on CPUs with AVX512-BF16 and on GPUs",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--quick", action="store_true", help="a narrow model for 2 epochs: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.patience = 8, 2
    if args.epochs is None:
        args.epochs = 2 if args.quick else 40
    return args


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Square-root inverse-frequency weights, normalised to mean 1 over the samples.

    'disgust' has 436 faces against 7215 'happy': full inverse weighting costs overall accuracy,
    no weighting leaves disgust near zero recall; the square root is the middle road.
    """
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1))
    weights /= (weights * counts).sum() / counts.sum()
    return {i: float(w) for i, w in enumerate(weights)}


def make_datasets(data, args):
    augment = build_augmenter(args.seed)
    num_classes = len(LABELS)

    def prepare(split):
        return normalize(data[split].images)[..., np.newaxis], data[split].labels

    x_train, y_train = prepare("Training")
    x_val, y_val = prepare("PublicTest")
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .map(
            lambda x, y: (random_erase(augment(x, training=True)), tf.one_hot(y, num_classes)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    val_ds = (
        tf.data.Dataset.from_tensor_slices((x_val, tf.one_hot(y_val, num_classes)))
        .batch(256)
        .prefetch(tf.data.AUTOTUNE)
    )
    return train_ds, val_ds, y_train


def compile_model(model: keras.Model, args, steps_per_epoch: int) -> None:
    total = args.epochs * steps_per_epoch
    warmup = min(2 * steps_per_epoch, total // 5)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.learning_rate / 10,
        decay_steps=max(total - warmup, 1),
        warmup_target=args.learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-2),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )


def callbacks(args) -> list[keras.callbacks.Callback]:
    backup = args.out / "backup"
    if not args.resume and backup.exists():
        shutil.rmtree(backup)
    return [
        keras.callbacks.BackupAndRestore(str(backup)),
        keras.callbacks.ModelCheckpoint(
            str(args.out / "best.keras"), monitor="val_accuracy", save_best_only=True
        ),
        keras.callbacks.ModelCheckpoint(str(args.out / "last.keras")),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=args.patience),
        keras.callbacks.CSVLogger(str(args.out / "history.csv"), append=args.resume),
    ]


def export_float32(best_path: Path, args) -> keras.Model:
    """Rebuild the best model under the float32 policy, so conversion sees plain float32 ops."""
    trained = keras.models.load_model(best_path, compile=False)
    keras.mixed_precision.set_global_policy("float32")
    model = build_model((IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1), len(LABELS), args.width)
    model.set_weights(trained.get_weights())
    model.save(args.out / "model.keras")
    return model


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    commit = git_commit()  # the code that trains, before anything can move HEAD during the run

    # Data
    try:
        data = load(args.data)
    except DatasetError as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    keras.mixed_precision.set_global_policy(args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, y_train = make_datasets(data, args)

    # Model
    model = build_model((IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1), len(LABELS), args.width)
    compile_model(model, args, steps_per_epoch=len(train_ds))
    logger.info("model %s: %d parameters, %s", model.name, model.count_params(), args.precision)

    # Train
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=args.epochs,
        class_weight=class_weights(y_train),
        callbacks=callbacks(args),
        verbose=1 if sys.stdout.isatty() else 2,
    )

    # Evaluate on PrivateTest, the final report only
    model = export_float32(args.out / "best.keras", args)
    test = data["PrivateTest"]
    scores = model.predict(normalize(test.images)[..., np.newaxis], batch_size=256, verbose=0)
    metrics = report.classification_metrics(test.labels, scores.argmax(axis=1), list(LABELS))
    report.plot_curves(args.out / "history.csv", args.out / "curves.png")
    facts = {
        "split": "PrivateTest",
        "dataset": "FER2013",
        "epochs": len(history.epoch) and history.epoch[-1] + 1,
        "best_val_accuracy": round(max(history.history.get("val_accuracy", [0.0])), 4),
        "seed": args.seed,
        "width": args.width,
        "parameters": model.count_params(),
        "data_sha256": data.sha256,
        "git_commit": commit,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report.write_report(args.out, metrics, facts)
    (args.out / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(report.format_report(metrics))
    print(f"model: {args.out / 'model.keras'}  report: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
