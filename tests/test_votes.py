"""train.votes: FER+ votes as targets, as a test labelling, and one clear line for a bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import FER_MINI
from train.const import LABELS
from train.votes import (
    VOTE_COLUMNS,
    VotesError,
    blended_targets,
    coverage_problem,
    load_votes,
    pairing_problem,
)

VOTES = FER_MINI / "votes.csv"
HEADER = "file,fer2013_label," + ",".join(VOTE_COLUMNS)
FERPLUS_HEADER = "Usage,Image name," + ",".join(VOTE_COLUMNS)  # microsoft/FERPlus's fer2013new.csv
ROW = "train/b.jpg,sad,1,1,1,1,1,1,1,1,1,0\n"  # ten votes


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_votes_are_keyed_by_the_image_folder_names() -> None:
    from train.data import load

    votes = load_votes(VOTES)
    split = load(FER_MINI)["Training"]
    counts, found = votes.emotion_counts(split.names)
    assert counts.shape == (len(split.names), len(LABELS))
    assert found.sum() >= len(split.names) - 1  # one fixture face has no FER+ row (not a face)
    assert (counts[found].sum(axis=1) <= 10).all()
    # The raters mostly agree with FER2013 on happy faces: the happy column carries most happy-face votes.
    happy = split.labels == LABELS.index("happy")
    assert counts[happy & found].argmax(axis=1).tolist().count(LABELS.index("happy")) >= 0.8 * happy.sum()


def test_majority_and_not_a_face(tmp_path: Path) -> None:
    path = write(
        tmp_path / "votes.csv",
        "train/happy/Training_1.jpg,happy,1,8,1,0,0,0,0,0,0,0",  # happy
        "train/sad/Training_2.jpg,sad,0,0,0,0,0,0,0,0,4,6",  # NF: not a face
        "train/fear/Training_3.jpg,fear,2,0,0,0,0,0,0,7,1,0",  # contempt: no FER2013 class
    )
    votes = load_votes(path)
    names = ("train/happy/Training_1.jpg", "train/sad/Training_2.jpg", "train/fear/Training_3.jpg", "x.jpg")
    assert votes.majority(names).tolist() == [LABELS.index("happy"), -1, -1, -1]
    assert votes.not_a_face(names).tolist() == [False, True, False, True]


def test_fer2013new_is_recognised_by_its_header_and_keyed_by_row(tmp_path: Path) -> None:
    """FER+'s published file: one row per fer2013.csv row; an empty Image name is a face FER+ dropped."""
    path = write(
        tmp_path / "fer2013new.csv",
        "Training,fer0000000.png,1,8,1,0,0,0,0,0,0,0",  # happy
        "Training,,0,0,0,0,0,0,0,0,0,0",  # dropped as not a face: no name, no votes
        "PublicTest,fer0000002.png,0,0,0,0,0,0,0,0,4,6",  # NF majority: not a face
        "PrivateTest,fer0000003.png,2,0,0,0,0,0,0,7,1,0",  # contempt: no FER2013 class
        header=FERPLUS_HEADER,
    )
    votes = load_votes(path)
    assert votes.usages == ("Training", "Training", "PublicTest", "PrivateTest")
    names = ("row 1", "row 2", "row 3", "row 4")
    assert votes.majority(names).tolist() == [LABELS.index("happy"), -1, -1, -1]
    assert votes.not_a_face(names).tolist() == [False, True, True, False]
    assert votes.emotion_counts(names)[1].tolist() == [True, False, True, True]
    assert load_votes(VOTES).usages is None  # votes.csv: keyed by file path


def test_votes_must_name_nearly_every_face_of_the_split_they_serve(tmp_path: Path) -> None:
    """train and convert share the one check: FER+ lacks about 0.5 % of the faces, over 5 % is another
    file's names or a file cut short. The line names the split it was made for."""
    names = tuple(f"test/sad/PrivateTest_{i}.jpg" for i in range(40))
    votes = load_votes(write(tmp_path / "votes.csv", *(f"{name},sad,0,0,0,9,0,0,0,0,1,0" for name in names)))
    assert coverage_problem(tmp_path / "votes.csv", votes, "PrivateTest", names) == ""
    assert coverage_problem(tmp_path / "votes.csv", votes, "PrivateTest", (*names, "test/sad/x.jpg")) == ""
    three_more = (*names, "test/sad/x.jpg", "test/sad/y.jpg", "test/sad/z.jpg")
    assert coverage_problem(tmp_path / "votes.csv", votes, "PrivateTest", three_more) == (
        f"{tmp_path / 'votes.csv'}: 3 of 43 PrivateTest faces have no row; its file column must name each "
        "face by its path under --data (test/sad/PrivateTest_0.jpg)"
    )
    by_row = load_votes(write(tmp_path / "new.csv", "PublicTest,,0,0,0,0,0,0,0,0,0,0", header=FERPLUS_HEADER))
    assert coverage_problem(tmp_path / "new.csv", by_row, "PublicTest", ("row 1",)) == (
        f"{tmp_path / 'new.csv'}: 1 of 1 PublicTest rows have no Image name (not a face); FER+ drops about "
        "0.5 %: pass fer2013new.csv as published"
    )


def test_blended_targets_mix_the_label_and_the_vote_shares() -> None:
    labels = np.array([LABELS.index("sad"), LABELS.index("angry")])
    votes = np.zeros((2, len(LABELS)), np.float32)
    votes[0, LABELS.index("neutral")] = 6
    votes[0, LABELS.index("sad")] = 2  # second face: no emotion votes at all (all contempt/unknown)
    targets = blended_targets(labels, votes, 0.5)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    assert targets[0, LABELS.index("sad")] == pytest.approx(0.5 + 0.5 * 2 / 8)
    assert targets[0, LABELS.index("neutral")] == pytest.approx(0.5 * 6 / 8)
    assert targets[1, LABELS.index("angry")] == 1.0
    np.testing.assert_array_equal(blended_targets(labels, votes, 0.0), np.eye(len(LABELS))[labels])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"{HEADER}\ntrain/a.jpg,angry,1,1,1,1,1,1,x,1,1,1\n", ":2: vote counts must be whole numbers"),
        ("file,fer2013_label,neutral\ntrain/a.jpg,angry,10\n", "expected columns neutral,happiness"),
        ("name," + ",".join(VOTE_COLUMNS) + "\na.jpg,1,1,1,1,1,1,1,1,1,1\n",
         "expected file,fer2013_label columns (votes.csv) or Usage,Image name columns (fer2013new.csv)"),
        ("file," + ",".join(VOTE_COLUMNS) + "\ntrain/a.jpg,1,1,1,1,1,1,1,1,1,1\n",
         "expected file,fer2013_label columns (votes.csv) or Usage,Image name columns (fer2013new.csv)"),
        # a second row for a face silently replaced the first one's votes
        (f"{HEADER}\n{ROW}train/a.jpg,angry,10,0,0,0,0,0,0,0,0,0\n{ROW}",
         ":4: train/b.jpg has a row already, on line 2; keep one of the two"),
        (f"{HEADER}\ntrain/a.jpg,joy,1,1,1,1,1,1,1,1,1,1\n",
         ":2: expected fer2013_label in ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'), "
         "got 'joy'; fix the row"),
        (f"{FERPLUS_HEADER}\nTraining,fer0000000.png,1,1,1,1,1,1,1,1,1,1\nTest,,0,0,0,0,0,0,0,0,0,0\n",
         ":3: expected Usage in ('Training', 'PublicTest', 'PrivateTest'), got 'Test'; fix the row"),
        (f"{FERPLUS_HEADER}\nTraining,,0,0,0,0,0,0,0,0,0,-1\n", ":2: expected non-negative vote counts"),
        (f"{FERPLUS_HEADER}\nTraining,fer0000000.png,0,0,0,0,0,0,0,0,0,0\n",
         ":2: expected non-negative vote counts with at least one vote"),
        (f"{FERPLUS_HEADER}\nTraining,,x,0,0,0,0,0,0,0,0,0\n", ":2: vote counts must be whole numbers"),
        (f"{HEADER}\ntrain/a.jpg,angry,0,0,0,0,0,0,0,0,0,0\n", ":2: expected non-negative vote counts"),
        (f"{HEADER}\n", "no vote rows"),
        (f"{HEADER}\ntrain/a.jpg,angry,1,1,1,1,1,1,1,1,1\n",
         ":2: the row has 11 fields, expected 12 (file,fer2013_label,neutral,"),
        (f"{HEADER}\n{ROW}train/a.jpg,angry,1,1,1,1,1,1,1,1,1,0,extra\n",
         ":3: the row has 13 fields, expected 12"),
        (f"{HEADER}\n{ROW}{ROW.replace('b.jpg', 'c.jpg')}train/a.jpg,angry,1,1,1,1,1,1,1,1,1,2\n",
         ":4: 11 votes, expected at most 10 (FER+ has 10 raters per face); fix the row"),
        (b"\xff\xfe\x00garbage", "not a UTF-8 text file"),
        (f'{HEADER}\ntrain/a.jpg,"angry,1,1,1,1,1,1,1,1,1,1\n' + ROW * 4000,
         ':2: a quote (") opened on this line is never closed'),
    ],
)  # fmt: skip
def test_malformed_votes_file_is_one_line(content: str | bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(VotesError) as err:
        load_votes(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message, message


def test_a_votes_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """A BOM (Excel, Notepad) used to be read into the first column's name: "missing file"."""
    marked = tmp_path / "votes.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + VOTES.read_bytes())
    plain, bom = load_votes(VOTES).counts, load_votes(marked).counts
    assert plain.keys() == bom.keys() and all((plain[k] == bom[k]).all() for k in plain)


def test_train_cli_answers_a_bad_votes_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import train.__main__ as train_cli

    missing = tmp_path / "nope.csv"
    argv = ["--data", str(FER_MINI), "--votes", str(missing), "--out", str(tmp_path / "run")]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"train: {missing}: votes file not found; pass --votes with FER+'s votes.csv (image "
                   "folders; see ../shared/data/ferplus/README.md) or microsoft/FERPlus's fer2013new.csv "
                   "(with --data fer2013.csv)"]  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_votes_for_other_faces_are_refused_by_their_labels(tmp_path: Path) -> None:
    """votes.csv's fer2013_label was never read: a votes file for other data (faces renamed or moved between
    the class folders) paired with these faces, each taking another face's votes. FER+'s own votes.csv
    agrees with FER2013 on all 35,712 faces; the fixture's on all of its own."""
    from train.data import load

    data = load(FER_MINI)
    assert pairing_problem(FER_MINI, data, VOTES, load_votes(VOTES)) == ""
    lines = VOTES.read_text().splitlines()
    swapped = [lines[0], *(line.replace(",angry,", ",disgust,", 1) for line in lines[1:])]
    other = tmp_path / "votes.csv"
    other.write_text("\n".join(swapped) + "\n")
    angry = sum(",angry," in line for line in lines)
    first = next(line for line in lines if ",angry," in line).split(",")[0]
    assert pairing_problem(FER_MINI, data, other, load_votes(other)) == (
        f"{other}:2: fer2013_label disgust, but {first} under {FER_MINI} is angry ({angry} of "
        f"{len(lines) - 1} rows disagree with the data); pass the votes.csv of these faces"
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ((ROW, ROW), "votes.csv:3: train/b.jpg has a row already, on line 2; keep one of the two"),
        (("train/angry/Training_15311033.jpg,disgust,0,0,10,0,0,0,0,0,0,0",),
         "votes.csv:2: fer2013_label disgust, but train/angry/Training_15311033.jpg under"),
    ],
)  # fmt: skip
def test_train_refuses_duplicate_or_mislabelled_votes_in_one_line(
    rows: tuple[str, ...], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both trained before: the last row of a face won, and votes for other faces were blended in."""
    import train.__main__ as train_cli

    votes = write(tmp_path / "votes.csv", *(row.strip() for row in rows))
    argv = ["--data", str(FER_MINI), "--votes", str(votes), "--out", str(tmp_path / "run")]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: {votes}:") and expected in err[0], err
    assert not (tmp_path / "run").exists()
