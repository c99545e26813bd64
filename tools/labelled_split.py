"""One FER2013 split with both labellings, for the tools that score against them: the --data and --votes
options, and the split's FER2013 labels and FER+ majority, read and checked to pair."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from device.paths import file_argument
from train.data import DatasetError, Split, load
from train.votes import VotesError, load_votes, split_majority, split_problem


class LabelsError(Exception):
    """The data or the votes cannot be read, do not pair, or give the split no FER+ majority (one line)."""


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data`` and ``--votes``, with the shared data set's paths as defaults."""
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/fer2013"), help="FER2013 (folders or CSV)"
    )
    parser.add_argument(
        "--votes",
        type=file_argument,
        default=Path("../shared/data/ferplus/votes.csv"),
        help="FER+ votes: votes.csv (image folders) or fer2013new.csv (with fer2013.csv)",
    )


def labelled_split(data_path: Path, votes_path: Path, split: str) -> tuple[Split, np.ndarray]:
    """The faces of ``split`` and their FER+ majority ``(N,)`` (indices into LABELS, -1 where the majority
    is no emotion: ``Votes.majority``). Raises LabelsError naming the file and the fix, also for votes
    without a row for more than a few of the split's faces (``train.votes.split_problem``)."""
    try:
        data = load(data_path)
        votes = load_votes(votes_path)
        if problem := split_problem(data_path, data, votes_path, votes, split):
            raise LabelsError(problem)
        faces = data[split]
        return faces, split_majority(votes, votes_path, split, faces.names)
    except (DatasetError, VotesError) as err:
        raise LabelsError(str(err)) from None
