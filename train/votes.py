"""FER+ crowd votes (Barsoum et al., 2016): ten votes per FER2013 face, as training targets and test labels.

The votes file (``../shared/data/ferplus/votes.csv``) has one row per face, keyed by its path under the
FER2013 image folders:
``file,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.const import LABELS
from train.data import read_csv_rows

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


class VotesError(Exception):
    """The votes file is missing or malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Votes:
    """Vote counts by face: ``counts[name]`` is an int array ``(10,)`` in ``VOTE_COLUMNS`` order."""

    counts: dict[str, np.ndarray]

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
    """Read ``votes.csv``; raise VotesError with one line naming the file, the line and the fix."""
    path = Path(path)
    fix = "pass --votes with FER+'s votes.csv (see ../shared/data/ferplus/README.md)"
    counts: dict[str, np.ndarray] = {}
    for line, row in read_csv_rows(path, ("file", *VOTE_COLUMNS), "votes file", fix, VotesError):
        try:
            votes = np.array([int(row[c]) for c in VOTE_COLUMNS], np.int64)
        except ValueError:
            raise VotesError(f"{path}:{line}: vote counts must be whole numbers; {fix}") from None
        if votes.min() < 0 or votes.sum() == 0:
            raise VotesError(f"{path}:{line}: expected non-negative vote counts with at least one vote")
        if votes.sum() > VOTES_PER_FACE:
            raise VotesError(
                f"{path}:{line}: {votes.sum()} votes, expected at most {VOTES_PER_FACE} (FER+ has "
                f"{VOTES_PER_FACE} raters per face); fix the row"
            )
        counts[row["file"]] = votes
    if not counts:
        raise VotesError(f"{path}: no vote rows; {fix}")
    return Votes(counts)


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
