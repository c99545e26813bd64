"""FER+ crowd votes (Barsoum et al., 2016): ten votes per FER2013 face, as training targets and test labels.

Two votes files, told apart by their header:

- ``votes.csv`` (``../shared/data/ferplus/votes.csv``, ours): one row per face, keyed by its path under the
  FER2013 image folders:
  ``file,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``.
  It pairs with ``--data`` as image folders.
- ``fer2013new.csv`` (microsoft/FERPlus, MIT, as published): one row per row of Kaggle's ``fer2013.csv``, in
  the same order: ``Usage,Image name,neutral,...,NF``. ``Image name`` (``fer0000000.png``) is empty for the
  images FER+ dropped as not a face, whose counts may be all zero. It pairs with ``--data fer2013.csv``; the
  votes are keyed by row (``train.data.row_name``), and ``pairing_problem`` checks the two files agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.const import LABELS, SPLITS
from train.data import Dataset, read_csv_rows, row_name

# FER+'s column for each FER2013 class, in LABELS order; the other columns are contempt, unknown and NF.
EMOTION_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
VOTES_PER_FACE = 10
# More faces of a split than this without a votes row: the votes are keyed by other names, or cut short (FER+
# has no row for about 0.5 %, the faces it dropped as not a face).
MAX_MISSING_VOTES_FRAC = 0.05
FERPLUS_COLUMNS = ("Usage", "Image name")  # fer2013new.csv's columns before the votes
VOTES_CSV_COLUMNS = ("file", "fer2013_label")  # votes.csv's
VOTES_FIX = (
    "pass --votes with FER+'s votes.csv (image folders; see ../shared/data/ferplus/README.md) or "
    "microsoft/FERPlus's fer2013new.csv (with --data fer2013.csv)"
)


class VotesError(Exception):
    """The votes file is missing or malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Votes:
    """Vote counts by face: ``counts[name]`` is an int array ``(10,)`` in ``VOTE_COLUMNS`` order.

    ``usages`` is None for votes.csv (keyed by file path); for fer2013new.csv (keyed by ``row_name``) it holds
    every row's Usage in file order, the not-a-face rows (no ``counts`` entry) included. ``labels`` holds
    votes.csv's FER2013 label per face with its line, ``labels[name] = (line, label)``, in file order (one of
    LABELS); fer2013new.csv has no label column: empty.
    """

    counts: dict[str, np.ndarray]
    usages: tuple[str, ...] | None = None
    labels: dict[str, tuple[int, str]] = field(default_factory=dict)

    def emotion_counts(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Votes for the 7 classes in LABELS order ``(N, 7)``, and whether each face has a row ``(N,)``."""
        out = np.zeros((len(names), len(LABELS)), np.float32)
        found = np.zeros(len(names), bool)
        index = [VOTE_COLUMNS.index(column) for column in EMOTION_COLUMNS]
        for i, name in enumerate(names):
            row = self.counts.get(name)
            if row is not None:
                out[i] = row[index]
                found[i] = True
        return out, found

    def not_a_face(self, names: tuple[str, ...]) -> np.ndarray:
        """True ``(N,)`` for faces FER+ rejects: no row (dropped as not a face) or most votes on NF."""
        nf = VOTE_COLUMNS.index("NF")
        return np.array(
            [(row := self.counts.get(name)) is None or row[nf] > VOTES_PER_FACE // 2 for name in names], bool
        )

    def majority(self, names: tuple[str, ...]) -> np.ndarray:
        """The FER+ majority per face as an index into LABELS, or -1 where it is not one of the 7 emotions.

        The majority is the column with the most votes (the first in ``VOTE_COLUMNS`` on a tie); faces whose
        majority is contempt, unknown or NF, or that have no row, get -1: the usual FER+ test set.
        """
        out = np.full(len(names), -1, np.int64)
        for i, name in enumerate(names):
            row = self.counts.get(name)
            if row is None:
                continue
            column = VOTE_COLUMNS[int(np.argmax(row))]
            if column in EMOTION_COLUMNS:
                out[i] = EMOTION_COLUMNS.index(column)
        return out


def load_votes(path: Path) -> Votes:
    """Read votes.csv or fer2013new.csv (told apart by the header: ``file,fer2013_label`` or
    ``Usage,Image name`` beside the vote columns); raise VotesError with one line naming the file, the line
    and the fix: among others a votes.csv face on two rows (both lines named) or a ``fer2013_label`` that is
    not one of LABELS.

    A fer2013new.csv row with an empty ``Image name`` is not a face: its counts (all zero, or any) are checked
    to be whole numbers and then left out, as votes.csv leaves such faces out.
    """
    path = Path(path)
    counts: dict[str, np.ndarray] = {}
    usages: list[str] = []
    labels: dict[str, tuple[int, str]] = {}
    by_row: bool | None = None  # decided by the header, seen with the first row
    for line, row in read_csv_rows(path, VOTE_COLUMNS, "votes file", VOTES_FIX, VotesError):
        if by_row is None:
            by_row = _keyed_by_row(path, row)
        try:
            votes = np.array([int(row[c]) for c in VOTE_COLUMNS], np.int64)
        except ValueError:
            raise VotesError(f"{path}:{line}: vote counts must be whole numbers; {VOTES_FIX}") from None
        if by_row:
            if row["Usage"] not in SPLITS:
                usage = row["Usage"]
                raise VotesError(f"{path}:{line}: expected Usage in {SPLITS}, got {usage!r}; fix the row")
            usages.append(row["Usage"])
            if not row["Image name"].strip():
                if votes.min() < 0:
                    raise VotesError(f"{path}:{line}: expected non-negative vote counts")
                continue  # FER+ dropped it as not a face
        _check_counts(path, line, votes)
        if not by_row:
            labels[row["file"]] = _face_label(path, line, row, labels)
        counts[row_name(len(usages)) if by_row else row["file"]] = votes
    if by_row is None:
        raise VotesError(f"{path}: no vote rows; {VOTES_FIX}")
    return Votes(counts, tuple(usages) if by_row else None, labels)


def _keyed_by_row(path: Path, row: dict[str, str]) -> bool:
    """Whether the votes file is fer2013new.csv (keyed by row) rather than votes.csv (keyed by file), from its
    first row's columns; raise VotesError when it has the columns of neither."""
    if all(column in row for column in VOTES_CSV_COLUMNS):
        return False
    if all(column in row for column in FERPLUS_COLUMNS):
        return True
    raise VotesError(
        f"{path}: expected {','.join(VOTES_CSV_COLUMNS)} columns (votes.csv) or {','.join(FERPLUS_COLUMNS)} "
        f"columns (fer2013new.csv) before the votes; {VOTES_FIX}"
    )


def _face_label(
    path: Path, line: int, row: dict[str, str], labels: dict[str, tuple[int, str]]
) -> tuple[int, str]:
    """A votes.csv row's ``(line, fer2013_label)``; raise VotesError when the label is not one of LABELS or
    the face already had a row (``labels``, the rows before): two rows would leave the last one's votes."""
    label, name = row["fer2013_label"], row["file"]
    if label not in LABELS:
        raise VotesError(f"{path}:{line}: expected fer2013_label in {LABELS}, got {label!r}; fix the row")
    if name in labels:
        first = labels[name][0]
        raise VotesError(f"{path}:{line}: {name} has a row already, on line {first}; keep one of the two")
    return line, label


def _check_counts(path: Path, line: int, votes: np.ndarray) -> None:
    if votes.min() < 0 or votes.sum() == 0:
        raise VotesError(f"{path}:{line}: expected non-negative vote counts with at least one vote")
    if votes.sum() > VOTES_PER_FACE:
        raise VotesError(
            f"{path}:{line}: {votes.sum()} votes, expected at most {VOTES_PER_FACE} (FER+ has "
            f"{VOTES_PER_FACE} raters per face); fix the row"
        )


def pairing_problem(data_path: Path, data: Dataset, votes_path: Path, votes: Votes) -> str:
    """Why ``votes`` cannot be matched to ``data`` (one line), or "".

    votes.csv is keyed by file path and pairs with the image folders, and each of its ``fer2013_label`` must
    be the label of the face it names (``label_problem``); fer2013new.csv is keyed by row and pairs with
    fer2013.csv, which must then have as many rows, each with the same Usage (the first row that differs is
    named: the files are not the published pair, or one was sorted or cut).
    """
    if votes.usages is None:
        if data.row_usages:
            return (
                f"{votes_path}: votes.csv is keyed by image file paths and pairs with --data as image "
                f"folders; with --data {data_path} (fer2013.csv) pass --votes FER+'s fer2013new.csv"
            )
        return label_problem(data_path, data, votes_path, votes)
    if not data.row_usages:
        return (
            f"{votes_path}: fer2013new.csv is matched by row and pairs with --data fer2013.csv; with --data "
            f"{data_path} (image folders) pass --votes votes.csv (keyed by file path)"
        )
    fix = "fer2013new.csv has one row per fer2013.csv row, in the same order: pass the two files as published"
    if len(votes.usages) != len(data.row_usages):
        return f"{votes_path}: {len(votes.usages)} rows, {data_path} has {len(data.row_usages)}; {fix}"
    for number, (ours, theirs) in enumerate(zip(votes.usages, data.row_usages, strict=True), start=1):
        if ours != theirs:
            where = f"row {number} has Usage {ours}, row {number} of {data_path} has {theirs}"
            return f"{votes_path}: {where}; {fix}"
    return ""


def coverage_problem(votes_path: Path, votes: Votes, split: str, names: tuple[str, ...]) -> str:
    """Why ``votes`` cannot serve the faces ``names`` of ``split`` (one line), or "": more than
    ``MAX_MISSING_VOTES_FRAC`` of them have no row (votes.csv keyed by other names, a file cut short or
    made for other faces; a fer2013new.csv whose rows there have no Image name). Check ``pairing_problem``
    first: a votes file of the other layout names none of the faces."""
    _, found = votes.emotion_counts(names)
    missing = int((~found).sum())
    if missing <= MAX_MISSING_VOTES_FRAC * len(names):
        return ""
    if votes.usages is not None:
        return (
            f"{votes_path}: {missing} of {len(names)} {split} rows have no Image name (not a face); "
            "FER+ drops about 0.5 %: pass fer2013new.csv as published"
        )
    return (
        f"{votes_path}: {missing} of {len(names)} {split} faces have no row; its file column must name "
        f"each face by its path under --data ({names[0]})"
    )


def split_problem(data_path: Path, data: Dataset, votes_path: Path, votes: Votes, split: str) -> str:
    """Why ``votes`` cannot serve the faces of ``split`` in ``data`` (one line), or "": they do not pair with
    the data (``pairing_problem``), or name too few of the split's faces (``coverage_problem``). The one
    check of training (its Training faces), convert (the report's) and the tools (the split they score)."""
    return pairing_problem(data_path, data, votes_path, votes) or coverage_problem(
        votes_path, votes, split, data[split].names
    )


def split_majority(votes: Votes, votes_path: Path, split: str, names: tuple[str, ...]) -> np.ndarray:
    """The FER+ majority ``(N,)`` of the ``N`` faces ``names`` of ``split`` (``Votes.majority``: an index
    into LABELS, -1 where it is no emotion). Raises VotesError when none of them has one."""
    majority = votes.majority(names)
    if not (majority >= 0).any():
        raise VotesError(f"{votes_path}: no {split} face has a FER+ majority; are the names right?")
    return majority


def label_problem(data_path: Path, data: Dataset, votes_path: Path, votes: Votes) -> str:
    """Why votes.csv's ``fer2013_label`` column disagrees with the faces in ``data`` (one line), or "": the
    first row naming a face of ``data`` with another label than the face's, and how many rows do. FER+'s
    votes.csv agrees on every face; a disagreement means votes for other data (renamed or moved faces).
    Rows naming no face of ``data`` are left to the caller's count of faces without votes."""
    label_of = {
        name: LABELS[label]
        for split in data.splits.values()
        for name, label in zip(split.names, split.labels, strict=True)
    }
    wrong = [
        (name, line, label)
        for name, (line, label) in votes.labels.items()
        if label_of.get(name, label) != label
    ]
    if not wrong:
        return ""
    name, line, label = wrong[0]
    disagree = f"{len(wrong)} of {len(votes.labels)} rows disagree with the data"
    return (
        f"{votes_path}:{line}: fer2013_label {label}, but {name} under {data_path} is {label_of[name]} "
        f"({disagree}); pass the votes.csv of these faces"
    )


def blended_targets(labels: np.ndarray, emotion_votes: np.ndarray, blend: float) -> np.ndarray:
    """Training targets ``(N, 7)``: ``(1 - blend)`` × the FER2013 one-hot label + ``blend`` × the vote shares.

    ``emotion_votes`` is ``(N, 7)`` (``Votes.emotion_counts``); a face with no vote on any of the 7 emotions
    (all contempt/unknown) keeps its one-hot label. ``blend`` in 0..1: 0 is FER2013 alone, 1 the FER+
    distribution alone (Barsoum et al.'s "probabilistic label drawing" target). Rows sum to 1.
    """
    one_hot = np.eye(len(LABELS), dtype=np.float32)[labels]
    totals = emotion_votes.sum(axis=1, keepdims=True)
    shares = np.where(totals > 0, emotion_votes / np.maximum(totals, 1), one_hot)
    return ((1.0 - blend) * one_hot + blend * shares).astype(np.float32)
