"""How often the FER+ raters' majority agrees with FER2013's own label, class by class, on one split.

FER2013 has one label per face; FER+ (Barsoum et al., 2016) had ten people label every face again. For each
FER2013 class this prints how many of its faces have an emotion as their FER+ majority, the share of those
whose majority is the same class, and which classes the raters chose for the others. The share is that
class's FER2013 recall for a model that answers as the raters' majority does on every face: why a model
trained on the votes calls few FER2013 "fear" faces fear (docs/MODEL.md). It is a property of the data; no
model is involved.

    python -m tools.label_agreement --data ../shared/data/fer2013 --votes ../shared/data/ferplus/votes.csv

Exit status 0, or 2 with one line for data or votes that cannot be read or do not pair.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from device.console import print_err, print_out
from tools.labelled_split import LabelsError, add_label_arguments, labelled_split
from train.const import LABELS, SPLITS
from train.metrics import classification_metrics

# a class the raters chose for at least this share of a FER2013 class's faces is named on its line
OTHERS_SHOWN_FROM = 0.05


def agreement(labels: np.ndarray, majority: np.ndarray) -> dict[str, Any]:
    """FER2013 labels ``(N,)`` against the FER+ majority ``(N,)`` (indices into LABELS; faces whose majority
    is an emotion only): ``classification_metrics`` with the majority as the prediction, so a class's
    ``recall`` is the share of its FER2013 faces whose majority is the same class, and ``accuracy`` the
    share of all N faces."""
    return classification_metrics(labels, majority, list(LABELS))


def format_agreement(metrics: dict[str, Any], split: str, faces: int) -> str:
    """The table ``main`` prints: a total line, a header, and one line per FER2013 class."""
    confusion = metrics["confusion"]
    lines = [
        f"{split}: {sum(map(sum, confusion))} of {faces} faces have an emotion as their FER+ majority; "
        f"it is their FER2013 label on {metrics['accuracy']:.1%}",
        f"{'FER2013 label':<14}{'faces':>6}  {'majority the same':>17}  raters' other majorities (>= "
        f"{OTHERS_SHOWN_FROM:.0%})",
    ]
    for i, name in enumerate(LABELS):
        row = confusion[i]
        total = sum(row)
        others = ", ".join(
            f"{LABELS[j]} {count / total:.0%}"
            for j, count in sorted(enumerate(row), key=lambda item: -item[1])
            if j != i and total and count / total >= OTHERS_SHOWN_FROM
        )
        lines.append(
            f"{name:<14}{total:>6}  {metrics['per_class'][name]['recall']:>17.1%}  {others}".rstrip()
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_label_arguments(parser)
    parser.add_argument(
        "--split", choices=SPLITS, default="PrivateTest", help="the split to count (PrivateTest)"
    )
    args = parser.parse_args(argv)
    try:
        split, majority = labelled_split(args.data, args.votes, args.split)
    except LabelsError as err:
        print_err(f"label_agreement: {err}")
        return 2
    known = majority >= 0
    metrics = agreement(split.labels[known], majority[known])
    return print_out(format_agreement(metrics, args.split, len(split.labels)), "label_agreement")


if __name__ == "__main__":
    sys.exit(main())
