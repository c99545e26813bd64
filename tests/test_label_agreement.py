"""tools.label_agreement: the FER+ majority against FER2013's labels on the fer-mini fixture; bad inputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tools import label_agreement
from train.const import LABELS

FER_MINI = Path(__file__).parent / "fixtures" / "fer-mini"
VOTES = FER_MINI / "votes.csv"
# votes.csv's vote columns, and the FER2013 class each emotion column is (FER+'s README)
EMOTION_OF_COLUMN = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
}


def majority_by_hand(split: str) -> dict[str, tuple[int, int]]:
    """Per FER2013 class of ``split``: (faces whose majority is an emotion, those of them whose majority is
    the class), counted from votes.csv with the csv module alone (the first column wins a tie)."""
    counts = {name: [0, 0] for name in LABELS}
    with VOTES.open(newline="") as file:
        for row in csv.DictReader(file):
            if f"/{split}_" not in row["file"]:
                continue
            columns = list(row)[2:]
            top = max(columns, key=lambda column: (int(row[column]), -columns.index(column)))
            if top not in EMOTION_OF_COLUMN:
                continue
            counts[row["fer2013_label"]][0] += 1
            counts[row["fer2013_label"]][1] += EMOTION_OF_COLUMN[top] == row["fer2013_label"]
    return {name: (faces, same) for name, (faces, same) in counts.items()}


def test_table_counts_what_the_votes_say(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        label_agreement.main(["--data", str(FER_MINI), "--votes", str(VOTES), "--split", "PrivateTest"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    expected = majority_by_hand("PrivateTest")
    known = sum(faces for faces, _ in expected.values())
    same = sum(agree for _, agree in expected.values())
    assert lines[0] == (
        f"PrivateTest: {known} of 140 faces have an emotion as their FER+ majority; "
        f"it is their FER2013 label on {same / known:.1%}"
    )
    for name, line in zip(LABELS, lines[2:], strict=True):
        faces, agree = expected[name]
        words = line.split()
        assert (words[0], int(words[1]), words[2]) == (name, faces, f"{agree / faces:.1%}")
    assert (
        0 < same < known
    )  # the fixture's faces hold both agreement and disagreement: the check means something


def test_malformed_votes_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "votes.csv"
    bad.write_text(VOTES.read_text().replace(",0,0,10,0,0,0,0,0,0,0", ",0,0,ten,0,0,0,0,0,0,0", 1))
    assert label_agreement.main(["--data", str(FER_MINI), "--votes", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"label_agreement: {bad}:2:")


def test_votes_of_other_faces_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "votes.csv"
    rows = VOTES.read_text().splitlines()
    other.write_text("\n".join([rows[0]] + [row.replace("Test_", "Test_9") for row in rows[1:]]) + "\n")
    assert label_agreement.main(["--data", str(FER_MINI), "--votes", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"label_agreement: {other}: 140 of 140 PrivateTest faces have no row; ")
    assert err.count("\n") == 1


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert label_agreement.main(["--data", str(tmp_path / "none"), "--votes", str(VOTES)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"label_agreement: {tmp_path / 'none'}") and err.count("\n") == 1
