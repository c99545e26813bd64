"""The TensorFlow half of training: input pipelines, the optimiser and its schedule, callbacks, export.

Imported only after the command line and the data have been checked, so a usage or data error never waits
for TensorFlow to start.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import keras
import numpy as np
import tensorflow as tf

from device.vision.preprocess import normalize
from train.augment import build_augmenter, mixup, photometric, random_erase
from train.const import IMAGE_SIZE_PX, LABELS
from train.model import build_model
from train.run_folder import BACKUP_FOLDER, BEST_MODEL, HISTORY_FILE, History, read_history


def training_dataset(
    images: np.ndarray, targets: np.ndarray, weights: np.ndarray, args: argparse.Namespace
) -> tf.data.Dataset:
    """Batches of (augmented normalised faces ``(B, 48, 48, 1)`` 0..1, targets ``(B, 7)``, weights ``(B,)``).

    The light is changed on the raw uint8 faces (``photometric``), the faces are normalised by the one
    device function (``device.vision.preprocess.normalize`` with ``args.normalization``), and only then is the
    geometry changed; last, with ``args.mixup_alpha`` > 0, faces are mixed in pairs (``train.augment.mixup``).
    """
    augment = build_augmenter(args.seed)
    rng = np.random.default_rng(args.seed)

    def light_and_normalize(batch: np.ndarray) -> np.ndarray:
        return normalize(photometric(batch, rng), args.normalization)[..., np.newaxis]

    def prepare(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        faces = tf.numpy_function(light_and_normalize, [x], tf.float32, stateful=True)
        faces = tf.ensure_shape(faces, [None, IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1])
        faces = random_erase(augment(faces, training=True))
        if args.mixup_alpha > 0:
            return mixup(faces, y, w, args.mixup_alpha)
        return faces, y, w

    return (
        tf.data.Dataset.from_tensor_slices((images, targets, weights))
        .shuffle(len(images), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def validation_dataset(images: np.ndarray, labels: np.ndarray, normalization: str) -> tf.data.Dataset:
    """PublicTest as (normalised faces, FER2013 one-hot labels): ``val_accuracy`` is FER2013 accuracy."""
    faces = normalize(images, normalization)[..., np.newaxis]
    one_hot = np.eye(len(LABELS), dtype=np.float32)[labels]
    return tf.data.Dataset.from_tensor_slices((faces, one_hot)).batch(256).prefetch(tf.data.AUTOTUNE)


def compile_model(model: keras.Model, args: argparse.Namespace, steps_per_epoch: int) -> None:
    """AdamW, linear warm-up then cosine decay (Loshchilov & Hutter, SGDR, 2017), label smoothing 0.1.

    With ``args.ema_momentum`` > 0 the optimiser also keeps an exponential moving average of the weights
    (Polyak & Juditsky, 1992), which ``callbacks`` swaps in for validation and checkpoints.
    """
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
        optimizer=keras.optimizers.AdamW(
            schedule,
            weight_decay=1e-2,
            use_ema=args.ema_momentum > 0,
            ema_momentum=args.ema_momentum,
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )


def callbacks(args: argparse.Namespace) -> list[keras.callbacks.Callback]:
    """Resumable checkpoints (BackupAndRestore), the best and last model, early stopping, the history CSV.

    With weight averaging, ``SwapEMAWeights`` comes first: it puts the averaged weights in the model before
    validation and at each epoch's end, so every later callback judges and saves the average (a resumed run
    continues training from the averaged weights of its last finished epoch). A resumed run's best model and
    early-stopping wait continue from the epochs in ``history.csv``: a resumed epoch replaces ``best.keras``
    only when it beats every epoch before the interruption.
    """
    history = read_history(args.out / HISTORY_FILE) if args.resume else History([])
    averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if args.ema_momentum > 0 else []
    # The backup last: an epoch's row is in history.csv before its backup is, so a run stopped between the two
    # trains that epoch again (run_folder.reconcile_history cuts its row) rather than losing the row. Two
    # backups are kept: a half-written one (a full disk, a kill mid-save) falls back to the one before.
    return averaging + [
        keras.callbacks.ModelCheckpoint(
            str(args.out / BEST_MODEL),
            monitor="val_accuracy",
            save_best_only=True,
            initial_value_threshold=history.best,
        ),
        keras.callbacks.ModelCheckpoint(str(args.out / "last.keras")),
        ResumedEarlyStopping(history, monitor="val_accuracy", patience=args.patience),
        keras.callbacks.CSVLogger(str(args.out / HISTORY_FILE), append=args.resume),
        WholeBackupAndRestore(str(args.out / BACKUP_FOLDER), double_checkpoint=True),
    ]


class WholeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, its backup written (and removed at the end) whole: a stop asked for while it
    writes (Ctrl-C, SIGTERM) waits until it is done (``stops_deferred``). A stop mid-write left
    ``latest.weights.h5`` a valid file holding only some layers, which Keras's restore refuses with a
    ValueError (it falls back to the ``.bkp`` only for an OSError): the run could not be resumed."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with stops_deferred():
            super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        with stops_deferred():
            super().on_train_end(logs)


@contextmanager
def stops_deferred() -> Iterator[None]:
    """Within it, SIGINT and SIGTERM are noted rather than handled; on leaving, the first one noted goes to
    its own handler (``KeyboardInterrupt`` for Ctrl-C, and for SIGTERM in ``python -m train``). Python runs
    signal handlers in the main thread only, so elsewhere it defers nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[tuple[int, FrameType | None]] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {
        stop: signal.signal(stop, lambda signum, frame: noted.append((signum, frame))) for stop in stops
    }
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
        if noted:
            signum, frame = noted[0]
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, starting from a resumed run's best accuracy and wait (``History``) rather than
    from nothing, so a resume neither forgets the best epoch nor grants ``patience`` epochs afresh."""

    def __init__(self, history: History, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._history = history

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self.best = self._history.best
        self.wait = self._history.since_best


def new_model(args: argparse.Namespace) -> keras.Model:
    """The network under the run's precision policy."""
    keras.mixed_precision.set_global_policy(args.precision)
    return build_model((IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1), len(LABELS), args.width)


def export_float32(best_path: Path, args: argparse.Namespace) -> keras.Model:
    """Rebuild the best model under the float32 policy, so conversion sees plain float32 ops."""
    trained = keras.models.load_model(best_path, compile=False)
    keras.mixed_precision.set_global_policy("float32")
    model = build_model((IMAGE_SIZE_PX, IMAGE_SIZE_PX, 1), len(LABELS), args.width)
    model.set_weights(trained.get_weights())
    model.save(args.out / "model.keras")
    return model


def fit(
    model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, args: argparse.Namespace
) -> keras.callbacks.History:
    """Train for ``args.epochs`` (continuing from the backup with ``args.resume``); return Keras's history."""
    return model.fit(
        train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks(args), verbose=2
    )


def predict(model: keras.Model, images: np.ndarray, normalization: str) -> np.ndarray:
    """Probabilities ``(N, 7)`` of the Keras model for uint8 faces ``(N, 48, 48)``."""
    return model.predict(normalize(images, normalization)[..., np.newaxis], batch_size=256, verbose=0)
