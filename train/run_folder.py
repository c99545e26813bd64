"""A training run's folder: whether it can be started or resumed there, its settings, and its history.

``--out`` holds ``run.json`` (the flags that define the run, written when it starts: once its model is
built, with any ``--init`` weights in it, so that a start refused before writes nothing there), ``backup/``
(Keras's BackupAndRestore state, removed by Keras when training ends) and ``history.csv`` (Keras's CSVLogger,
one row per finished epoch, appended to by a resumed run). A resume must use the run's own flags: another
width cannot load the checkpoint, another ``--epochs`` changes the learning-rate schedule mid-run. A flag
naming a file counts as the same when it names the same file, however it is written (``PATH_FLAGS``).
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from device.config import folder_problem

SETTINGS_FILE = "run.json"
BACKUP_FOLDER = "backup"
BACKUP_METADATA = "training_metadata.json"  # Keras's BackupAndRestore: {"epoch": finished epochs, ...}
HISTORY_FILE = "history.csv"
BEST_MODEL = "best.keras"
LOCK_FILE = "train.lock"


class RunFolderError(Exception):
    """A run folder's file that cannot be used: one line naming it and what to do."""


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
    "mixup_alpha",
    "teacher",
    "teacher_weight",
    "init",
    "seed",
    "precision",
)
# Flags that name a file or folder: run.json keeps them as given (readable, and what the user typed), and a
# resume compares the files they name, so "data" and "/home/pi/moodcast/data/" are one flag. A relative path
# on the command line names a file under the working folder; in run.json, under the folder the run started in
# (STARTED_IN), so a resume may run in another folder. --out is not among them: the resume found run.json in
# it, so it names the run's folder however it is written.
PATH_FLAGS = frozenset({"data", "votes", "extra_data", "teacher", "init"})
# run.json's key for the working folder the run started in (absolute): what its relative paths are under.
STARTED_IN = "started_in"
# Flags added after run.json was: a run.json without one was made with the flag's default, which a resume
# must then give too (a run from before --mixup-alpha had no mixup, and must not get it halfway).
ADDED_FLAG_DEFAULTS: dict[str, object] = {
    "mixup_alpha": 0.0,
    "teacher": None,
    "teacher_weight": 0.5,
    "init": None,
}

# Flags that weigh what another flag brings in, and mean nothing without it: a resume compares one only where
# the run or the resume gives the flag it weighs. A run.json from before --vote-blend needed --votes may hold
# any blend beside no votes, which a resume now cannot give (nor needs to: the targets are FER2013's).
WEIGHED_BY = {"vote_blend": "votes", "extra_weight": "extra_data", "teacher_weight": "teacher"}


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
    run there that a fresh start would throw away; ``--resume`` with no interrupted run (one whose training
    finished but was stopped in its evaluation or export is resumable: ``training_finished``); a resume whose
    flags differ from the run's ``run.json`` (each named as a command line gives it, with the run's value;
    a path flag differs when it names another file, ``PATH_FLAGS``; a weight of nothing given is no
    difference, ``WEIGHED_BY``), or a run.json that is no object.
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
    if not interrupted and not training_finished(out):  # finished: stopped in its evaluation or export
        backup = out / BACKUP_FOLDER
        return f"--out {out}: no interrupted run to resume (no {backup}); start it without --resume"
    saved = out / SETTINGS_FILE
    if not saved.is_file():  # a run started before run.json existed: nothing to compare against
        return ""
    try:
        recorded = json.loads(saved.read_text())
    except (OSError, ValueError) as err:
        return f"--out {saved}: unreadable ({err}); remove {out / BACKUP_FOLDER} to start again"
    if not isinstance(recorded, dict):
        backup = out / BACKUP_FOLDER
        return f"--out {saved}: expected the run's flags as a JSON object; remove {backup} to start again"
    now = settings(args)
    started_in = _started_in(recorded)
    recorded = ADDED_FLAG_DEFAULTS | recorded
    differ = [
        f"{_given(flag, now[flag])} (the run has {_recorded(flag, recorded[flag], started_in)})"
        for flag in RUN_FLAGS
        if flag in recorded
        and not _weighs_nothing(flag, recorded, now)
        and not _same(flag, recorded[flag], now[flag], started_in)
    ]
    if differ:
        return f"--resume: give the run's own flags: {'; '.join(differ)}"
    return ""


def _weighs_nothing(flag: str, recorded: dict, now: dict[str, object]) -> bool:
    """Whether ``flag`` weighs another (``WEIGHED_BY``) that neither the run (``recorded``, run.json) nor
    this command (``now``) gives: its value, recorded or given, changes nothing."""
    weighed = WEIGHED_BY.get(flag)
    return weighed is not None and not recorded.get(weighed) and not now[weighed]


def _started_in(recorded: dict) -> str | None:
    """The folder that run.json's relative paths are under (``STARTED_IN``), or None where they are taken
    as under the working folder: a run.json from before it was recorded, a hand-edited value that is no
    string, or a folder no longer there (a checkout moved or renamed, its run folder with it)."""
    folder = recorded.get(STARTED_IN)
    return folder if isinstance(folder, str) and os.path.isdir(folder) else None


def _same(flag: str, recorded: object, now: object, started_in: str | None) -> bool:
    """Whether a run.json value and this command's agree: for a ``PATH_FLAGS`` flag, whether they name the
    same files (``_named``; the run's relative paths under ``started_in``), in the same order for
    ``--extra-data``; for any other, whether they are equal."""
    if flag not in PATH_FLAGS:
        return recorded == now
    return _named(recorded, started_in or "") == _named(now, "")


def _named(value: object, folder: str) -> object:
    """The file a path value names, as an absolute path with '.', '..' and links resolved, a relative one
    under ``folder`` ("": the working folder); a list of them for ``--extra-data``; None, and a value that
    is no path (a hand-edited run.json), as they are, so they compare as written."""
    if isinstance(value, str):
        return os.path.realpath(os.path.join(folder, value))
    if isinstance(value, list):
        return [_named(item, folder) for item in value]
    return value


def _given(flag: str, value: object) -> str:
    """A flag as a command line gives it: ``--width 16``, ``--extra-data a --extra-data b`` for a repeated
    one, a path quoted as a shell needs it, or ``no --teacher`` for an optional one left out."""
    option = f"--{flag.replace('_', '-')}"
    if value is None or value == []:
        return f"no {option}"
    if isinstance(value, list):
        return " ".join(f"{option} {_typed(flag, item)}" for item in value)
    return f"{option} {_typed(flag, value)}"


def _typed(flag: str, value: object) -> str:
    """One value of ``flag`` as a shell takes it: a path quoted where it has to be (a space in it)."""
    return shlex.quote(value) if flag in PATH_FLAGS and isinstance(value, str) else str(value)


def _recorded(flag: str, value: object, started_in: str | None) -> str:
    """The run's value of ``flag`` as a refusal gives it: ``8``, ``none``, the run's ``--extra-data``
    flags; a relative path says which folder it is relative to (``started_in``, None: not known), where
    that is not the working folder."""
    if value is None or value == []:
        return "none"
    shown = _given(flag, value) if isinstance(value, list) else _typed(flag, value)
    if flag not in PATH_FLAGS or not _relative(value):
        return shown
    if started_in is None:
        return f"{shown}, relative to the folder the run started in"
    if os.path.realpath(started_in) == os.getcwd():
        return shown
    return f"{shown}, relative to {shlex.quote(started_in)}, where the run started"


def _relative(value: object) -> bool:
    """Whether a path value (a list of them for ``--extra-data``) holds a relative path."""
    if isinstance(value, list):
        return any(_relative(item) for item in value)
    return isinstance(value, str) and not os.path.isabs(value)


def write_settings(out: Path, flags: dict[str, object], init_sha256: str | None) -> None:
    """Record the run's defining flags (``settings``, taken before TensorFlow resolved ``--precision auto``)
    in ``out/run.json`` once the run starts (not on a resume), the working folder its relative paths are
    relative to (``STARTED_IN``), and with ``--init`` the SHA-256 of the model it starts from
    (``init_sha256``, 64 hex digits): a resume takes its weights from the backup, and the card must name the
    model the run started from even once that file is replaced or gone."""
    saved = flags | {STARTED_IN: os.getcwd()}
    if init_sha256 is not None:
        saved["init_sha256"] = init_sha256
    (out / SETTINGS_FILE).write_text(json.dumps(saved, indent=2) + "\n")


def started_from(out: Path) -> dict[str, str]:
    """The model the run in ``out`` started from, as its run.json recorded it at the start: ``init`` (the path
    as given) and ``init_sha256``; {} for a run without ``--init``, or whose run.json is missing or unreadable
    (``start_problem`` has refused an unreadable one before a resume gets here); a value that is no string
    (a hand-edited run.json) is left out."""
    try:
        saved = json.loads((out / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or not isinstance(saved.get("init"), str):
        return {}
    # a hand-edited value that is no string (null) is no hash: str() made it "None" on the card
    return {key: saved[key] for key in ("init", "init_sha256") if isinstance(saved.get(key), str)}


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
        """The best PublicTest accuracy so far (0..1; NaN epochs left out), or None before the first epoch."""
        finite = [value for value in self.val_accuracy if math.isfinite(value)]
        return max(finite) if finite else None

    @property
    def since_best(self) -> int:
        """Epochs finished since the best one: the early-stopping wait to continue from."""
        best = self.best
        if best is None:
            return self.epochs
        return self.epochs - 1 - self.val_accuracy.index(best)


def read_history(path: Path) -> History:
    """``history.csv`` as a History (empty when the file does not exist yet). Raises RunFolderError naming the
    file when it has no ``val_accuracy`` column or a value there is not a number."""
    if not path.is_file():
        return History([])
    try:
        with path.open(newline="") as handle:
            return History([float(row["val_accuracy"]) for row in csv.DictReader(handle)])
    except (KeyError, ValueError, TypeError, OSError, UnicodeDecodeError) as err:
        raise RunFolderError(
            f"{path}: not Keras's CSVLogger history ({type(err).__name__}: {err}); restore it or start again"
        ) from None


def training_finished(out: Path) -> bool:
    """Whether ``out``'s training ran to its end (Keras removed the backup) and its best model is there: a
    run stopped in its evaluation or export, which --resume finishes without training again."""
    if (out / BACKUP_FOLDER).is_dir() or not (out / BEST_MODEL).is_file():
        return False
    try:
        return read_history(out / HISTORY_FILE).epochs > 0
    except RunFolderError:
        return False


def reconcile_history(out: Path) -> None:
    """Cut ``history.csv`` to the epochs the backup holds (Keras's ``training_metadata.json``), so a resumed
    run appends each epoch once: a run stopped after an epoch's row but before its backup trains that epoch
    again, and an empty backup starts again from the first epoch. Raises RunFolderError for an unreadable
    backup."""
    metadata = out / BACKUP_FOLDER / BACKUP_METADATA
    finished = 0
    if metadata.is_file():
        try:
            finished = int(json.loads(metadata.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunFolderError(
                f"{metadata}: unreadable ({type(err).__name__}); remove {out / BACKUP_FOLDER} to start again"
            ) from None
    history = out / HISTORY_FILE
    if not history.is_file():
        return
    read_history(history)  # one line if it is not a history
    with history.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) - 1 > finished:
        with history.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows[: finished + 1])


def lock(out: Path) -> TextIO:
    """Hold ``out``'s lock for as long as the returned file stays open (keep a reference): two runs in one
    folder would write over each other's checkpoints and history. Raises RunFolderError when another run
    holds it."""
    handle = (out / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunFolderError(
            f"--out {out}: another training is running in it; wait for it or stop it"
        ) from None
    return handle
