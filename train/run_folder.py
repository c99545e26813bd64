"""A training run's folder: whether it can be started or resumed there, its settings, and its history.

``--out`` holds ``run.json`` (the flags that define the run, written when it starts), ``backup/`` (Keras's
BackupAndRestore state, removed by Keras when training ends) and ``history.csv`` (Keras's CSVLogger, one row
per finished epoch, appended to by a resumed run). A resume must use the run's own flags: another width
cannot load the checkpoint, another ``--epochs`` changes the learning-rate schedule mid-run.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

from device.config import folder_problem

SETTINGS_FILE = "run.json"
BACKUP_FOLDER = "backup"
HISTORY_FILE = "history.csv"
# The flags that define a run: a resume must give the same ones.
RUN_FLAGS = (
    "data",
    "votes",
    "vote_blend",
    "normalization",
    "extra_data",
    "extra_weight",
    "epochs",
    "batch_size",
    "learning_rate",
    "width",
    "patience",
    "ema_momentum",
    "seed",
    "precision",
)


def settings(args: argparse.Namespace) -> dict[str, object]:
    """The run's defining flags as JSON values (paths as given, a list for ``--extra-data``)."""
    out: dict[str, object] = {}
    for flag in RUN_FLAGS:
        value = getattr(args, flag)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = [str(item) for item in value]
        out[flag] = value
    return out


def start_problem(args: argparse.Namespace) -> str:
    """Why the run cannot start (or, with ``args.resume``, continue) in ``args.out``, or "" when it can.

    One line each: ``--out`` empty, a file, or not writable (``device.config.folder_problem``); an interrupted
    run there that a fresh start would throw away; ``--resume`` with no interrupted run; a resume whose flags
    differ from the run's ``run.json`` (each named with the run's value).
    """
    out: Path = args.out
    if not str(out).strip():
        return "--out: expected a folder, got an empty path"
    if out.exists() and not out.is_dir():
        return f"--out {out}: is a file, expected the run's folder"
    problem = folder_problem(out)
    if problem:
        return f"--out {problem}"
    interrupted = (out / BACKUP_FOLDER).is_dir()
    if not args.resume:
        if interrupted:
            return (
                f"--out {out} holds an interrupted run: continue it with --resume (make train-resume), "
                f"or remove {out / BACKUP_FOLDER} to start again"
            )
        return ""
    if not interrupted:
        backup = out / BACKUP_FOLDER
        return f"--out {out}: no interrupted run to resume (no {backup}); start it without --resume"
    saved = out / SETTINGS_FILE
    if not saved.is_file():  # a run started before run.json existed: nothing to compare against
        return ""
    try:
        recorded = json.loads(saved.read_text())
    except (OSError, ValueError) as err:
        return f"--out {saved}: unreadable ({err}); remove {out / BACKUP_FOLDER} to start again"
    now = settings(args)
    differ = [
        f"--{flag.replace('_', '-')} {now[flag]} (the run has {recorded[flag]})"
        for flag in RUN_FLAGS
        if flag in recorded and recorded[flag] != now[flag]
    ]
    if differ:
        return f"--resume: give the run's own flags: {'; '.join(differ)}"
    return ""


def write_settings(args: argparse.Namespace) -> None:
    """Record the run's defining flags in ``args.out/run.json`` as it starts (not on a resume)."""
    (args.out / SETTINGS_FILE).write_text(json.dumps(settings(args), indent=2) + "\n")


@dataclass(frozen=True)
class History:
    """The finished epochs of a run, from Keras's CSVLogger file: PublicTest accuracy per epoch."""

    val_accuracy: list[float]

    @property
    def epochs(self) -> int:
        """Finished epochs."""
        return len(self.val_accuracy)

    @property
    def best(self) -> float | None:
        """The best PublicTest accuracy so far (0..1), or None before the first epoch."""
        return max(self.val_accuracy) if self.val_accuracy else None

    @property
    def since_best(self) -> int:
        """Epochs finished since the best one: the early-stopping wait to continue from."""
        if not self.val_accuracy:
            return 0
        return self.epochs - 1 - self.val_accuracy.index(max(self.val_accuracy))


def read_history(path: Path) -> History:
    """``history.csv`` as a History (empty when the file does not exist yet)."""
    if not path.is_file():
        return History([])
    with path.open(newline="") as handle:
        return History([float(row["val_accuracy"]) for row in csv.DictReader(handle)])
