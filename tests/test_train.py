"""train/: the CLI on the fer-mini fixture (folders and CSV), resuming, and one-line data errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import (
    FER_MINI,
    TRAIN_ARGS,
    run_train,
    run_train_stopped_after_first_epoch,
    write_run_json,
)
from train.const import LABELS, SPLITS

NO_DATA = "no such file or folder; pass --data with fer2013.csv or its image folders"


pytestmark = pytest.mark.usefixtures("float32_policy")


def write_csv(
    path: Path, rows: list[dict[str, str]], fields: tuple[str, ...] = ("emotion", "pixels", "Usage")
) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def fixture_as_csv(path: Path) -> Path:
    """The fer-mini faces as a Kaggle-style ``fer2013.csv``."""
    from train.data import load

    data = load(FER_MINI)
    rows = [
        {"emotion": str(label), "pixels": " ".join(map(str, image.ravel())), "Usage": split}
        for split in SPLITS
        for image, label in zip(data[split].images, data[split].labels, strict=True)
    ]
    return write_csv(path, rows)


def fixture_as_ferplus_csv(path: Path, data_csv: Path) -> Path:
    """FER+'s ``fer2013new.csv`` for ``fixture_as_csv``'s rows: fer-mini's votes.csv rewritten in that row
    order as microsoft/FERPlus publishes it (Usage,Image name,votes); a face without a votes row (FER+
    dropped it as not a face) gets an empty Image name and no votes."""
    from train.data import load
    from train.votes import VOTE_COLUMNS

    with (FER_MINI / "votes.csv").open(newline="") as handle:
        by_file = {row["file"]: row for row in csv.DictReader(handle)}
    folders = load(FER_MINI)
    assert len(load(data_csv)["Training"].names) == len(folders["Training"].names)  # the same faces, in order
    rows = []
    for split in SPLITS:
        for name in folders[split].names:
            found = by_file.get(name)
            row = {"Usage": split, "Image name": f"fer{len(rows):07d}.png" if found else ""}
            rows.append(row | {c: found[c] if found else "0" for c in VOTE_COLUMNS})
    return write_csv(path, rows, ("Usage", "Image name", *VOTE_COLUMNS))


@pytest.mark.slow  # the placeholder model (a fresh clone builds it, ~30 s) and Keras: make test-slow
def test_folder_run_writes_model_report_and_plots(tiny_model_dir: Path) -> None:
    out = tiny_model_dir / "train"  # the placeholder model's own run: python -m train on fer-mini folders
    for name in ("model.keras", "best.keras", "training.json", "report.json", "confusion.png", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["accuracy"] <= 1.0 and report["split"] == "PrivateTest"
    assert set(report["per_class"]) == set(LABELS)
    assert all({"precision", "recall", "f1"} <= set(m) for m in report["per_class"].values())
    confusion = np.asarray(report["confusion"])
    assert confusion.shape == (len(LABELS), len(LABELS)) and confusion.sum() == 140
    training = json.loads((out / "training.json").read_text())
    assert training["epochs"] == 1 and training["seed"] == 7 and len(training["data_sha256"]) == 64
    assert training["precision"] == "float32"
    # the recipe: the shipped model's early stopping (--patience 30) was recorded nowhere
    recipe = ("max_epochs", "patience", "batch_size", "learning_rate", "width", "ema_momentum", "mixup_alpha")
    assert {key: training[key] for key in recipe} == {
        "max_epochs": 1, "patience": 12, "batch_size": 64, "learning_rate": 2e-3, "width": 8,
        "ema_momentum": 0.0, "mixup_alpha": 0.0,
    }  # fmt: skip

    import keras

    model = keras.models.load_model(out / "model.keras", compile=False)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, len(LABELS))


def test_csv_loads_the_same_faces_as_the_folders(tmp_path: Path) -> None:
    from train.data import load

    folders = load(FER_MINI)
    table = load(fixture_as_csv(tmp_path / "fer2013.csv"))
    for split in SPLITS:
        np.testing.assert_array_equal(table[split].images, folders[split].images)
        np.testing.assert_array_equal(table[split].labels, folders[split].labels)
    assert table.sha256 == folders.sha256


@pytest.mark.slow
def test_csv_run_trains(tmp_path: Path) -> None:
    data = fixture_as_csv(tmp_path / "fer2013.csv")
    assert run_train("--data", data, "--out", tmp_path / "run", *TRAIN_ARGS) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert sum(m["support"] for m in report["per_class"].values()) == 140
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("ema_momentum", ["0", "0.9"])
def test_resume_continues_from_the_last_finished_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ema_momentum: str
) -> None:
    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, "--epochs", "2", "--width", "8", "--precision", "float32"]
    argv += ["--ema-momentum", ema_momentum]
    run_train_stopped_after_first_epoch(monkeypatch, *argv)
    assert (out / "backup").is_dir()

    assert run_train(*argv, "--resume") == 0
    with (out / "history.csv").open() as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1]  # epoch 0 from the first run, only epoch 1 trained again
    assert json.loads((out / "training.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_a_resumed_run_keeps_the_best_model_from_before_the_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed epoch worse than the best before the interruption used to replace best.keras (the checkpoint
    forgot the earlier epochs), and the report gave the best of the resumed epochs only."""
    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, "--epochs", "2", "--width", "8", "--precision", "float32"]
    run_train_stopped_after_first_epoch(monkeypatch, *argv)
    # Epoch 0 as a far better epoch than any the resumed run can reach on this fixture.
    history = out / "history.csv"
    rows = list(csv.DictReader(history.open()))
    rows[0]["val_accuracy"] = "0.99"
    write_csv(history, rows, tuple(rows[0]))
    best_before = (out / "best.keras").read_bytes()

    assert run_train(*argv, "--resume") == 0
    assert (out / "best.keras").read_bytes() == best_before
    facts = json.loads((out / "training.json").read_text())
    assert facts["best_val_accuracy"] == 0.99 and facts["epochs"] == 2


def test_resume_without_an_interrupted_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume on a folder with no backup used to start a fresh run, over a finished one's files."""
    out = tmp_path / "run"
    assert run_train("--data", FER_MINI, "--out", out, "--resume") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --out {out}: no interrupted run to resume (no {out / 'backup'}); start it without --resume"
    ]
    assert not out.exists()


def test_a_fresh_start_over_an_interrupted_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain start used to delete an interrupted run's backup and begin again at epoch 1."""
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    assert run_train("--data", FER_MINI, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an interrupted run: continue it with --resume" in err[0], err
    assert (out / "backup").is_dir()


def test_a_resume_with_other_flags_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another --width used to end in a 110-line Keras traceback; another --epochs silently changed the
    learning-rate schedule mid-run."""
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    write_run_json("--data", FER_MINI, "--out", out, "--width", "8", "--epochs", "4")
    assert run_train("--data", FER_MINI, "--out", out, "--width", "16", "--epochs", "4", "--resume") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "train: --resume: give the run's own flags: --width 16 (the run has 8)"
    ]


def test_a_resume_compares_path_flags_by_the_file_they_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started with relative paths and resumed with absolute ones (or './x', or 'x/' for --data) was
    refused for giving other flags, though they named the same files. run.json keeps the paths as typed, as
    older run.json files do, and relative ones name files under the working folder. Paths naming other files
    are still refused, with the run's path as run.json has it."""
    from train.__main__ import parse_args

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "data")
    files = ("--votes", "votes.csv", "--teacher", "t.keras", "--init", "i.keras")
    (tmp_path / "i.keras").write_bytes(b"")  # its SHA-256 goes into run.json
    write_run_json("--data", "data", "--out", "run", *files, "--extra-data", "a", "--extra-data", "b")
    assert json.loads((out / "run.json").read_text())["data"] == "data"  # as typed: readable

    def problem(*flags: str) -> str:
        from train.run_folder import start_problem

        return start_problem(parse_args(["--out", str(out), "--resume", *flags]))

    absolute = [str(tmp_path / "votes.csv"), "--teacher", str(tmp_path / "t.keras"), "--init", "./i.keras"]
    extra = ["--extra-data", f"{tmp_path}/a/", "--extra-data", "./b"]
    assert problem("--data", f"{tmp_path}/data/", "--votes", *absolute, *extra) == ""
    assert problem("--data", "./data/", "--votes", *absolute, *extra) == ""
    assert problem("--data", "linked", "--votes", *absolute, *extra) == ""  # a link to the same folder
    swapped = ["--extra-data", "b", "--extra-data", "a"]  # the faces in another order: not the same run
    assert problem("--data", "other", "--votes", *absolute, *swapped) == (
        "--resume: give the run's own flags: --data other (the run has data); "
        "--extra-data b --extra-data a (the run has --extra-data a --extra-data b)"
    )
    assert problem("--data", "data", "--votes", *absolute) == (
        "--resume: give the run's own flags: no --extra-data (the run has --extra-data a --extra-data b)"
    )


def test_a_resume_from_another_working_folder_takes_the_runs_paths_from_where_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.json keeps relative paths as typed, and a resume took them as relative to its own working folder:
    from another folder, the run's own files given by their full paths were refused ('--data /x/data (the
    run has data)'), and the refusal did not say which folder 'data' is in; --extra-data read as a Python
    list. run.json now records the folder the run started in; a run.json without it (or whose folder has
    moved) takes its paths as relative to the working folder, as before."""
    from train.__main__ import parse_args
    from train.run_folder import SETTINGS_FILE, STARTED_IN, start_problem

    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    for folder in (checkout / "data", checkout / "my faces", elsewhere / "data"):
        folder.mkdir(parents=True)
    monkeypatch.chdir(checkout)
    run_json = write_run_json("--data", "data", "--out", "run", "--extra-data", "my faces").resolve()
    (checkout / "run" / "backup").mkdir()
    assert json.loads(run_json.read_text())[STARTED_IN] == str(checkout)

    def problem(*flags: str | Path) -> str:
        return start_problem(parse_args(["--out", str(checkout / "run"), "--resume", *map(str, flags)]))

    own = ("--data", checkout / "data", "--extra-data", checkout / "my faces")
    monkeypatch.chdir(elsewhere)
    assert problem(*own) == ""
    assert problem("--data", "../checkout/data/", "--extra-data", "../checkout/my faces") == ""
    assert problem("--data", "data", "--extra-data", checkout / "my faces") == (
        f"--resume: give the run's own flags: --data data (the run has data, relative to {checkout}, where "
        "the run started)"
    )
    assert problem("--data", checkout / "data") == (
        "--resume: give the run's own flags: no --extra-data (the run has --extra-data 'my faces', relative "
        f"to {checkout}, where the run started)"
    )
    saved = json.loads(run_json.read_text())
    del saved[STARTED_IN]  # a run.json from before it was recorded: relative to the working folder
    run_json.write_text(json.dumps(saved))
    assert problem(*own) == (
        "--resume: give the run's own flags: --data "
        f"{checkout / 'data'} (the run has data, relative to the folder the run started in); --extra-data "
        f"'{checkout / 'my faces'}' (the run has --extra-data 'my faces', relative to the folder the run "
        "started in)"
    )
    monkeypatch.chdir(checkout)
    assert problem("--data", "data", "--extra-data", "my faces") == ""
    moved = tmp_path / "moved"
    write_run_json("--data", "data", "--out", "run", "--extra-data", "my faces")
    checkout.rename(moved)  # the checkout renamed, its run folder in it: the folder it started in is gone
    monkeypatch.chdir(moved)
    assert json.loads((moved / "run" / SETTINGS_FILE).read_text())[STARTED_IN] == str(checkout)
    resumed = parse_args(["--out", "run", "--resume", "--data", "data", "--extra-data", "my faces"])
    assert start_problem(resumed) == ""


def test_a_resume_of_a_run_from_before_mixup_refuses_mixup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run.json written before --mixup-alpha existed has no mixup_alpha: that run had no mixup, so a
    resume that turns it on changes the recipe halfway and is refused like any other changed flag."""
    from train.run_folder import SETTINGS_FILE

    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    write_run_json("--data", FER_MINI, "--out", out, "--width", "8", "--epochs", "4")
    saved = json.loads((out / SETTINGS_FILE).read_text())
    del saved["mixup_alpha"]
    (out / SETTINGS_FILE).write_text(json.dumps(saved))
    flags = ("--data", FER_MINI, "--out", out, "--width", "8", "--epochs", "4", "--resume")
    assert run_train(*flags, "--mixup-alpha", "0.3") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "train: --resume: give the run's own flags: --mixup-alpha 0.3 (the run has 0.0)"
    ]


def test_a_resume_of_a_run_with_a_vote_blend_and_no_votes_needs_no_vote_blend(tmp_path: Path) -> None:
    """A run.json from before --vote-blend needed --votes may record a blend with no votes (it trained on
    FER2013 one-hot): its resume cannot give --vote-blend now, and need not; nor an --extra-weight with no
    --extra-data. A blend of votes given, by the run or the resume, is still compared."""
    from train.__main__ import parse_args
    from train.run_folder import SETTINGS_FILE, start_problem

    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    write_run_json("--data", FER_MINI, "--out", out)
    saved = json.loads((out / SETTINGS_FILE).read_text())
    (out / SETTINGS_FILE).write_text(json.dumps(saved | {"vote_blend": 0.3, "extra_weight": 3.0}))
    own = ["--data", str(FER_MINI), "--out", str(out), "--resume"]
    assert parse_args(own).vote_blend == 0.5
    assert start_problem(parse_args(own)) == ""
    assert start_problem(parse_args([*own, "--votes", "v.csv"])) == (
        "--resume: give the run's own flags: --votes v.csv (the run has none); --vote-blend 0.5 (the run "
        "has 0.3)"
    )
    write_run_json("--data", FER_MINI, "--out", out, "--votes", "v.csv", "--vote-blend", "0.3")
    assert start_problem(parse_args([*own, "--votes", "v.csv"])) == (
        "--resume: give the run's own flags: --vote-blend 0.5 (the run has 0.3)"
    )
    assert start_problem(parse_args([*own, "--votes", "v.csv", "--vote-blend", "0.3"])) == ""


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--epochs", "0"], "--epochs: expected a whole number >= 1, got 0"),
        (["--batch-size", "-1"], "--batch-size: expected a whole number >= 1, got -1"),
        (["--width", "0"], "--width: expected a whole number >= 1, got 0"),
        (["--patience", "-5"], "--patience: expected a whole number >= 0, got -5"),
        (["--learning-rate", "nan"], "--learning-rate: expected a number > 0, got nan"),
        (["--learning-rate", "-1"], "--learning-rate: expected a number > 0, got -1.0"),
        (["--extra-weight", "inf", "--extra-data", "x"], "--extra-weight: expected a number > 0, got inf"),
        (["--extra-weight", "1"], "--extra-weight: weighs --extra-data faces, and no --extra-data was given"),
        (["--mixup-alpha", "-1"], "--mixup-alpha: expected a number >= 0, got -1.0"),
        (["--mixup-alpha", "nan"], "--mixup-alpha: expected a number >= 0, got nan"),
        (["--teacher-weight", "0.5"], "--teacher-weight: weighs a --teacher's scores, and no --teacher was"),
        # trained on FER2013 one-hot targets, with the blend recorded in run.json as if it had been used
        (["--vote-blend", "0.3"], "--vote-blend: blends in FER+ --votes, and no --votes was given"),
        (["--votes", "v.csv", "--vote-blend", "1.5"], "--vote-blend: expected a number from 0 to 1, got 1.5"),
        (["--teacher", "t.keras", "--teacher-weight", "0"], "above 0 and at most 1, got 0.0"),
        (["--teacher", "t.keras", "--teacher-weight", "1.5"], "above 0 and at most 1, got 1.5"),
        (["--teacher", "t.keras", "--teacher-weight", "nan"], "above 0 and at most 1, got nan"),
    ],
)
def test_bad_numbers_are_one_line_exit_2(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each used to fail late with a traceback (epochs 0, batch size 0, width 0) or train on NaN losses."""
    with pytest.raises(SystemExit) as stop:
        run_train("--data", FER_MINI, *flags)
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err


def test_quick_keeps_an_explicit_width_and_patience() -> None:
    from train.__main__ import parse_args

    args = parse_args(["--quick", "--width", "12", "--patience", "5"])
    assert (args.width, args.patience, args.epochs) == (12, 5, 2)
    args = parse_args(["--quick"])
    assert (args.width, args.patience) == (8, 2)


def test_mixup_mixes_each_face_its_target_and_its_weight_with_one_partner_by_one_weight() -> None:
    import tensorflow as tf

    from device.vision.preprocess import normalize
    from train.augment import mixup
    from train.data import load

    training = load(FER_MINI)["Training"]
    faces = normalize(training.images[:32], "equalize_hist")[..., np.newaxis]
    own = np.eye(32, dtype=np.float32)  # a class per face, so each mixed target names its two faces
    weights = np.arange(1, 33, dtype=np.float32)
    tf.random.set_seed(7)
    mixed_faces, mixed_targets, mixed_weights = (t.numpy() for t in mixup(faces, own, weights, 0.4))

    assert mixed_faces.shape == faces.shape and mixed_targets.shape == own.shape
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, rtol=1e-6)
    mixed_with_another = 0
    for i, target in enumerate(mixed_targets):
        lam = target[i]
        assert lam >= 0.5  # each face stays the larger part of its own mix
        partner = i if lam > 1 - 1e-6 else int(np.argsort(target)[-2])
        mixed_with_another += partner != i
        np.testing.assert_allclose(mixed_faces[i], lam * faces[i] + (1 - lam) * faces[partner], atol=1e-5)
        expected_weight = lam * weights[i] + (1 - lam) * weights[partner]
        np.testing.assert_allclose(mixed_weights[i], expected_weight, rtol=1e-5)
    assert mixed_with_another >= 24  # a shuffle leaves few faces in place, and Beta(0.4) rarely gives 1


def test_mixup_alpha_mixes_the_training_batches_and_is_a_run_flag() -> None:
    from train.__main__ import parse_args
    from train.data import load
    from train.fit import training_dataset
    from train.run_folder import settings

    training = load(FER_MINI)["Training"]
    one_hot = np.eye(len(LABELS), dtype=np.float32)[training.labels]
    weights = np.ones(len(one_hot), dtype=np.float32)
    for flags, mixed in (([], False), (["--mixup-alpha", "0.2"], True)):
        args = parse_args(["--data", str(FER_MINI), *flags])
        _, targets, _ = next(iter(training_dataset(training.images, one_hot, weights, args)))
        assert bool((targets.numpy().max(axis=1) < 1).any()) is mixed
        assert settings(args)["mixup_alpha"] == (0.2 if mixed else 0.0)  # a resume must give the same


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_one_line_exit_2(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a file (or a path under one) used to end in FileExistsError / NotADirectoryError."""
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "run"
    assert run_train("--data", FER_MINI, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: --out {out}") and "file" in err[0], err


def test_votes_keyed_by_other_names_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Votes keyed by bare file names used to leave every Training face out "as not a face", then crash in
    TensorFlow on an empty data set; a truncated file silently left out most faces."""
    with (FER_MINI / "votes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["file"] = Path(row["file"]).name
    votes = write_csv(tmp_path / "votes.csv", rows, tuple(rows[0]))
    assert run_train("--data", FER_MINI, "--votes", votes, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Training faces have no row; its file column must name each face" in err[0], err


def test_fer2013new_gives_the_csv_the_targets_folders_get_from_votes_csv(tmp_path: Path) -> None:
    """The public pair (fer2013.csv + fer2013new.csv, matched by row) trains on what the folders and our
    votes.csv (matched by file path) give: the same faces left out, targets, weights and FER+ test labels."""
    from train.__main__ import parse_args, training_targets, votes_problem
    from train.data import load
    from train.votes import load_votes

    data_csv = fixture_as_csv(tmp_path / "fer2013.csv")
    new_csv = fixture_as_ferplus_csv(tmp_path / "fer2013new.csv", data_csv)
    by_row = (load(data_csv), load_votes(new_csv))
    by_file = (load(FER_MINI), load_votes(FER_MINI / "votes.csv"))
    assert votes_problem(parse_args(["--data", str(data_csv), "--votes", str(new_csv)]), *by_row) == ""
    row_run, file_run = training_targets(*by_row, 0.5), training_targets(*by_file, 0.5)
    assert row_run[3]["vote_blend"] == 0.5  # training.json and the card say which blend made the model
    for ours, theirs in zip(row_run[:3], file_run[:3], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert row_run[3] == file_run[3]
    dropped = [by_row[1].not_a_face(by_row[0][split].names) for split in SPLITS]
    for split, ours in zip(SPLITS, dropped, strict=True):
        np.testing.assert_array_equal(ours, by_file[1].not_a_face(by_file[0][split].names))
    assert sum(map(np.sum, dropped)) >= 1  # the fixture's face with no FER+ row: an empty Image name
    majority = by_row[1].majority(by_row[0]["PrivateTest"].names)
    np.testing.assert_array_equal(majority, by_file[1].majority(by_file[0]["PrivateTest"].names))
    assert (majority >= 0).sum() >= 0.9 * len(majority)


@pytest.mark.slow  # imports TensorFlow, trains and converts (~40 s): make test-slow
def test_the_public_pair_trains_and_converts_with_ferplus_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fer2013.csv + fer2013new.csv through train and convert: report-ferplus.json, and FER+ metrics in
    convert's report; convert refuses votes.csv with a CSV in one line, as train does."""
    import convert.__main__ as convert_cli
    from train.data import load
    from train.votes import load_votes

    data_csv = fixture_as_csv(tmp_path / "fer2013.csv")
    new_csv = fixture_as_ferplus_csv(tmp_path / "fer2013new.csv", data_csv)
    out = tmp_path / "run"
    assert run_train("--data", data_csv, "--votes", new_csv, "--out", out, *TRAIN_ARGS) == 0
    ferplus = json.loads((out / "report-ferplus.json").read_text())
    majority = load_votes(new_csv).majority(load(data_csv)["PrivateTest"].names)
    known = int((majority >= 0).sum())
    assert sum(m["support"] for m in ferplus["per_class"].values()) == known > 0
    training = json.loads((out / "training.json").read_text())
    assert "FER+ vote shares" in training["targets"] and "left_out_not_a_face" in training

    tflite = tmp_path / "model" / "emotion-float32.tflite"
    argv = ["--model", str(out / "model.keras"), "--data", str(data_csv), "--out", str(tflite)]
    argv += ["--quantization", "float32", "--max-drop", "1"]
    capsys.readouterr()
    assert convert_cli.main([*argv, "--votes", str(FER_MINI / "votes.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "votes.csv is keyed by image file paths and pairs with --data as" in err[0], err
    assert not tflite.exists()
    assert convert_cli.main([*argv, "--votes", str(new_csv)]) == 0
    converted = json.loads((tflite.parent / "emotion-float32-report" / "report.json").read_text())
    assert sum(m["support"] for m in converted["ferplus_majority"]["per_class"].values()) == known


def ferplus_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("folders+fer2013new", "fer2013new.csv is matched by row and pairs with --data fer2013.csv; with "
         "--data {data} (image folders) pass --votes votes.csv"),
        ("csv+votes", "votes.csv is keyed by image file paths and pairs with --data as image folders; "
         "with --data {data} (fer2013.csv) pass --votes FER+'s fer2013new.csv"),
        ("row cut", "fer2013new.csv: 419 rows, {data} has 420; fer2013new.csv has one row per fer2013.csv "
         "row, in the same order: pass the two files as published"),
        ("usage swapped", "fer2013new.csv: row 3 has Usage PublicTest, row 3 of {data} has Training; "),
        ("no names", "fer2013new.csv: 140 of 140 Training rows have no Image name (not a face)"),
    ],
)  # fmt: skip
def test_votes_of_the_other_layout_or_rows_that_disagree_are_one_line_exit_2(
    pair: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_csv = fixture_as_csv(tmp_path / "fer2013.csv")
    new_csv = fixture_as_ferplus_csv(tmp_path / "fer2013new.csv", data_csv)
    rows = ferplus_rows(new_csv)
    data, votes = data_csv, new_csv
    if pair == "folders+fer2013new":
        data = FER_MINI
    elif pair == "csv+votes":
        votes = FER_MINI / "votes.csv"
    elif pair == "row cut":
        write_csv(new_csv, rows[:-1], tuple(rows[0]))
    elif pair == "usage swapped":
        rows[2]["Usage"] = "PublicTest"
        write_csv(new_csv, rows, tuple(rows[0]))
    else:
        write_csv(new_csv, [row | {"Image name": ""} for row in rows], tuple(rows[0]))
    assert run_train("--data", data, "--votes", votes, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: {votes}"), err
    assert expected.format(data=data) in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # starts TensorFlow in a child: make test-slow
def test_sigterm_stops_a_run_with_one_line_and_it_resumes(tmp_path: Path) -> None:
    """SIGTERM used to end a run silently (exit 143), Ctrl-C with a 58-line KeyboardInterrupt traceback."""
    import signal
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "train", "--data", str(FER_MINI), "--out", str(out), *TRAIN_ARGS]
    command[command.index("--epochs") + 1] = "200"
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while not (out / "history.csv").is_file() or not (out / "backup").is_dir():  # one epoch finished
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "train: interrupted after" in last and "--resume" in last, err[-2000:]
    assert "Traceback" not in err
    assert (out / "backup").is_dir()


@pytest.mark.slow  # imports TensorFlow (no other fast test does): make test-slow
def test_weight_averaging_exports_the_average_not_the_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras
    import numpy as np

    import train.fit as train_fit

    class RecordWeights(keras.callbacks.Callback):
        """The raw weights after the first and the last step (the average is swapped in after them)."""

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.last_step = [w.numpy().copy() for w in self.model.trainable_weights]
            if batch == 0:
                self.first_step = self.last_step

    recorder = RecordWeights()
    real_callbacks = train_fit.callbacks
    monkeypatch.setattr(train_fit, "callbacks", lambda args: [*real_callbacks(args), recorder])
    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, "--epochs", "1", "--width", "8", "--precision", "float32"]
    assert run_train(*argv, "--ema-momentum", "0.9999") == 0

    # Keras starts the average at the first step's weights; at momentum 0.9999 it has barely left them.
    exported = keras.models.load_model(out / "model.keras", compile=False).trainable_weights

    def distance(weights: list[np.ndarray]) -> float:
        pairs = zip(weights, recorder.first_step, strict=True)
        return sum(float(np.abs(w - first).sum()) for w, first in pairs)

    moved = distance(recorder.last_step)
    averaged = distance([w.numpy() for w in exported])
    assert moved > 0
    assert averaged < 0.01 * moved
    assert json.loads((out / "training.json").read_text())["ema_momentum"] == 0.9999


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 fma {extra}
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu sse2 avx2 fma {extra}
"""


@pytest.mark.parametrize(
    ("extra", "has_gpu", "expected"),
    [
        ("", False, "float32"),  # AVX2 only: emulated bfloat16, ~6x slower than float32 (train/precision.py)
        ("avx512f avx512_bf16", False, "mixed_bfloat16"),
        ("amx_bf16 amx_tile", False, "mixed_bfloat16"),
        ("", True, "mixed_bfloat16"),
    ],
)
def test_auto_precision_is_bfloat16_only_where_it_is_native(
    tmp_path: Path, extra: str, has_gpu: bool, expected: str
) -> None:
    from train.precision import cpu_flags, resolve_precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86_CPUINFO.format(extra=extra))
    flags = cpu_flags(cpuinfo)
    assert "avx2" in flags and "sysret_ss_attrs" not in flags
    assert resolve_precision("auto", flags, has_gpu) == expected
    assert resolve_precision("float32", flags, has_gpu=True) == "float32"  # a choice given is kept
    assert cpu_flags(tmp_path / "missing") == frozenset()
    with pytest.raises(ValueError, match="expected one of auto"):
        resolve_precision("float16", flags, has_gpu)


def test_arm64_cpuinfo_features_are_read(tmp_path: Path) -> None:
    from train.precision import cpu_flags, resolve_precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd bf16 i8mm\n")
    assert {"asimd", "bf16"} <= cpu_flags(cpuinfo)
    # arm64's bf16 is left to an explicit --precision mixed_bfloat16: not measured
    assert resolve_precision("auto", cpu_flags(cpuinfo), has_gpu=False) == "float32"


def test_bad_ema_momentum_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        run_train("--data", FER_MINI, "--ema-momentum", "1")
    assert stop.value.code == 2
    assert "--ema-momentum: expected a number from 0 to below 1, got 1.0" in capsys.readouterr().err


def test_missing_data_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert run_train("--data", missing, "--out", tmp_path / "run", "--precision", "float32") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"train: {missing}: no such file or folder; pass --data with fer2013.csv or its image folders"
    ]


@pytest.mark.parametrize(
    ("rows", "fields", "expected"),
    [
        ([{"emotion": "3", "pixel": "0 " * 2304, "Usage": "Training"}], ("emotion", "pixel", "Usage"),
         "expected columns emotion,pixels,Usage; missing pixels"),
        ([{"emotion": "3", "pixels": "0 " * 2000, "Usage": "Training"}], ("emotion", "pixels", "Usage"),
         ":2: expected 2304 pixels, got 2000"),
        ([{"emotion": "9", "pixels": "0 " * 2304, "Usage": "Training"}], ("emotion", "pixels", "Usage"),
         ":2: expected emotion 0-6, got 9"),
        ([{"emotion": "3", "pixels": "0 x 1", "Usage": "Training"}], ("emotion", "pixels", "Usage"),
         ":2: unreadable emotion or pixels"),
    ],
)  # fmt: skip
def test_malformed_csv_is_one_line_exit_2(
    rows: list[dict[str, str]],
    fields: tuple[str, ...],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_csv(tmp_path / "fer2013.csv", rows, fields)
    assert run_train("--data", data, "--out", tmp_path / "run", "--precision", "float32") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: {data}") and expected in err[0], err


BOM = "\ufeff"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (bytes(range(256)) * 8, ": not a UTF-8 text file (byte 0x80 at offset 128); pass --data with"),
        ("emotion,pixels,Usage\n0,\"1 2,Training\n" + "0,1 2,Training\n" * 30000,
         ':2: a quote (") opened on this line is never closed'),
    ],
)  # fmt: skip
def test_a_csv_that_is_not_text_or_never_closes_a_quote_is_one_line_exit_2(
    content: str | bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A binary or Latin-1 file used to end in a UnicodeDecodeError traceback (in train and convert), an
    unterminated quote in "_csv.Error: field larger than field limit"."""
    data = tmp_path / "fer2013.csv"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert run_train("--data", data, "--out", tmp_path / "run", "--precision", "float32") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: {data}") and expected in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_csv_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Excel and Notepad save UTF-8 with a BOM: it used to be read into the first column's name, and the
    file was refused as "missing emotion" although the column is there."""
    from train.data import load

    plain = fixture_as_csv(tmp_path / "fer2013.csv")
    marked = tmp_path / "fer2013-bom.csv"
    marked.write_text(BOM + plain.read_text())
    assert load(marked).sha256 == load(plain).sha256


def copy_fixture(root: Path) -> Path:
    import shutil

    shutil.copytree(FER_MINI, root, ignore=shutil.ignore_patterns("*.csv", "*.md"))
    return root


def test_a_class_without_training_faces_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With disgust/ gone from train/ and test/, training used to run (exit 0) with a 7-way output it
    never learns for disgust, and no word."""
    import shutil

    data = copy_fixture(tmp_path / "fer")
    shutil.rmtree(data / "train" / "disgust")
    shutil.rmtree(data / "test" / "disgust")
    assert run_train("--data", data, "--out", tmp_path / "run", *TRAIN_ARGS) == 2  # a short run, if not
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"train: {data}: no Training faces of disgust; every class of {', '.join(LABELS)} needs Training "
        "faces: restore them (train/<class>/ or the CSV's rows) or pass the full FER2013"
    ]
    assert not (tmp_path / "run").exists()


def test_a_test_split_without_a_class_loads_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from train.data import load

    data = copy_fixture(tmp_path / "fer")
    for face in (data / "test" / "fear").glob("PublicTest_*"):
        face.unlink()
    loaded = load(data)
    assert LABELS.index("fear") not in loaded["PublicTest"].labels
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{data}: PublicTest has no faces of fear; their recall is not measured"]


def test_png_faces_in_the_fer_folders_are_loaded_as_extra_data_is(tmp_path: Path) -> None:
    """--extra-data read .png faces, the FER2013 folders skipped them without a word."""
    import cv2

    from train.data import load

    data = copy_fixture(tmp_path / "fer")
    jpg = sorted((data / "train" / "happy").glob("*.jpg"))[0]
    face = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(jpg.with_suffix(".PNG")), face)
    jpg.unlink()
    training = load(data)["Training"]
    assert len(training.labels) == 140 and f"train/happy/{jpg.stem}.PNG" in training.names
    np.testing.assert_array_equal(training.images[training.names.index(f"train/happy/{jpg.stem}.PNG")], face)


def test_cli_missing_data_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("train:")]
    assert ours == [f"train: {tmp_path / 'nowhere'}: {NO_DATA}"]
    assert "Traceback" not in result.stderr


def make_extra_folder(root: Path, per_class: dict[str, int]) -> Path:
    """An image folder of fixture faces, 96x96 PNGs as a daemon's feedback might hold them."""
    import cv2

    for label, count in per_class.items():
        (root / label).mkdir(parents=True)
        for file in sorted((FER_MINI / "train" / label).glob("*.jpg"))[:count]:
            face = cv2.resize(cv2.imread(str(file), cv2.IMREAD_GRAYSCALE), (96, 96))
            cv2.imwrite(str(root / label / f"{file.stem}.png"), face)
    return root


def test_extra_data_loads_any_size_into_48px_faces(tmp_path: Path) -> None:
    from train.data import load_extra

    extra = load_extra(make_extra_folder(tmp_path / "extra", {"happy": 3, "sad": 2}))
    assert extra.images.shape == (5, 48, 48) and extra.images.dtype == np.uint8
    assert sorted(extra.labels.tolist()) == [LABELS.index("happy")] * 3 + [LABELS.index("sad")] * 2
    assert all(name.endswith(".png") for name in extra.names)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({}, "no such folder; pass --extra-data"),
        ({"joyful": ["a.png"]}, "unknown class folder 'joyful'"),
        ({"happy": ["broken.png"]}, "broken.png: not a readable image"),
        ({"happy": []}, "no faces; expected .jpg, .jpeg, .png images"),
    ],
)  # fmt: skip
def test_bad_extra_data_is_one_line_exit_2(
    layout: dict[str, list[str]], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "extra"
    for label, files in layout.items():
        (folder / label).mkdir(parents=True)
        for name in files:
            (folder / label / name).write_bytes(b"not an image")
    code = run_train("--data", FER_MINI, "--extra-data", folder, "--out", tmp_path / "run")
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: ") and expected in err[0], err


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("test", "280 of 280 faces are identical in pixels to FER2013 PublicTest/PrivateTest faces"),
        (".", "140 of 140 faces are identical in pixels to FER2013 Training faces"),
        ("renamed", "1 of 3 faces are identical in pixels to FER2013 PublicTest/PrivateTest faces"),
    ],
)
def test_extra_faces_copied_from_fer2013_are_one_line_exit_2(
    folder: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--extra-data fer2013/test used to train on the test faces (exit 0, a report of memory); the FER2013
    root added every Training face a second time."""
    import shutil

    extra = FER_MINI / folder
    if folder == "renamed":  # two faces of the daemon's feedback and one test face copied under a new name
        extra = make_extra_folder(tmp_path / "feedback", {"sad": 2})
        shutil.copy(sorted((FER_MINI / "test" / "fear").glob("PrivateTest_*"))[0], extra / "sad" / "me.jpg")
    assert run_train("--data", FER_MINI, "--extra-data", extra, "--out", tmp_path / "run", *TRAIN_ARGS) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: {extra}: {expected} (e.g. {extra}/"), err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_tiny_run_trains_on_extra_data_and_reports_it_apart(tmp_path: Path) -> None:
    extra = make_extra_folder(tmp_path / "feedback", {"happy": 4, "fear": 3})
    out = tmp_path / "run"
    assert (
        run_train("--data", FER_MINI, "--extra-data", extra, "--extra-weight", "3", "--out", out, *TRAIN_ARGS)
        == 0
    )
    training = json.loads((out / "training.json").read_text())
    assert (training["extra_faces"], training["extra_weight"]) == (7, 3.0)
    report = json.loads((out / "report-extra.json").read_text())
    assert sum(m["support"] for m in report["per_class"].values()) == 7


def test_an_interrupted_first_epoch_says_there_is_nothing_to_resume(tmp_path: Path) -> None:
    """A stop before any epoch finished told the user to --resume, which then said there was nothing to."""
    from train.__main__ import interrupted, parse_args

    args = parse_args(["--data", str(FER_MINI), "--out", str(tmp_path / "run")])
    assert (
        interrupted(args) == "interrupted before its first epoch finished: nothing to resume; start it again"
    )
    (tmp_path / "run" / "backup").mkdir(parents=True)
    assert "--resume" in interrupted(args)


def test_a_run_stopped_after_training_is_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keras removes the backup when training ends: a stop in the evaluation or export left a run that
    --resume refused ("no interrupted run"), so the only way on was to train it all again."""
    from train.__main__ import interrupted, parse_args
    from train.run_folder import start_problem

    out = tmp_path / "run"
    out.mkdir()
    (out / "best.keras").write_bytes(b"a model")
    write_csv(out / "history.csv", [{"epoch": "0", "val_accuracy": "0.3"}], ("epoch", "val_accuracy"))
    args = parse_args(["--data", str(FER_MINI), "--out", str(out), "--resume"])
    assert start_problem(args) == ""
    assert "continue with the same command and --resume" in interrupted(args)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("run.json", '"text"', "run.json: expected the run's flags as a JSON object"),
        ("history.csv", "epoch,accuracy\n0,0.5\n", "history.csv: not Keras's CSVLogger history"),
        ("history.csv", "epoch,val_accuracy\n0,high\n", "history.csv: not Keras's CSVLogger history"),
        ("backup/training_metadata.json", "{", "training_metadata.json: unreadable"),
    ],
)
def test_a_damaged_run_folder_is_one_line_on_resume(
    name: str, text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each gave a Python traceback (TypeError, KeyError, ValueError, JSONDecodeError)."""
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (out / name).write_text(text)
    assert run_train("--data", FER_MINI, "--out", out, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: ") and expected in err[0], err


def test_a_second_training_in_the_same_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs in one --out wrote over each other's history and checkpoints until one died on HDF5's lock."""
    from train.run_folder import lock

    out = tmp_path / "run"
    out.mkdir()
    held = lock(out)
    try:
        assert run_train("--data", FER_MINI, "--out", out) == 2
    finally:
        held.close()
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --out {out}: another training is running in it; wait for it or stop it"
    ]


def test_the_history_is_cut_to_the_epochs_the_backup_holds(tmp_path: Path) -> None:
    """A stop between an epoch's history row and its backup left a row the resumed run wrote again (or, the
    other way round, a row it never wrote); an empty backup restarted at epoch 0 after the old rows."""
    from train.run_folder import read_history, reconcile_history

    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    rows = [{"epoch": str(i), "val_accuracy": str(0.1 * (i + 1))} for i in range(3)]
    write_csv(out / "history.csv", rows, ("epoch", "val_accuracy"))
    (out / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    reconcile_history(out)
    assert read_history(out / "history.csv").val_accuracy == pytest.approx([0.1, 0.2])
    (out / "backup" / "training_metadata.json").unlink()  # an empty backup: Keras starts at epoch 0
    reconcile_history(out)
    assert read_history(out / "history.csv").epochs == 0


def test_a_nan_epoch_is_never_the_best() -> None:
    """A NaN first epoch made "best_val_accuracy" NaN (not JSON) and kept best.keras from ever changing."""
    from train.run_folder import History

    history = History([float("nan"), 0.4, 0.3])
    assert history.best == 0.4 and history.since_best == 1
    assert History([float("nan")]).best is None


@pytest.mark.slow
def test_a_run_stopped_in_its_evaluation_is_finished_by_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import train.__main__ as train_cli

    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, "--epochs", "2", "--width", "8", "--precision", "float32"]
    real_evaluate = train_cli.evaluate

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "evaluate", stopped)
    assert run_train(*argv) == 130
    assert "--resume" in capsys.readouterr().err
    assert not (out / "backup").exists() and not (out / "training.json").exists()
    monkeypatch.setattr(train_cli, "evaluate", real_evaluate)
    best = (out / "best.keras").read_bytes()
    assert run_train(*argv, "--resume") == 0
    assert (out / "best.keras").read_bytes() == best  # not trained again
    assert json.loads((out / "training.json").read_text())["epochs"] == 2


@pytest.mark.slow  # imports TensorFlow: make test-slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_while_the_backup_is_written_leaves_it_whole(stop: str, tmp_path: Path) -> None:
    """A Ctrl-C or SIGTERM arriving while BackupAndRestore wrote latest.weights.h5 (just after an epoch's
    history row, the moment a watcher of history.csv stops a run) left a valid file holding only the layers
    written so far: the resume said 'backup: cannot be restored (A total of 5 objects could not be loaded
    ...); remove it to start again', the intact .bkp ignored. The stop now waits for the backup."""
    import os
    import signal

    import keras

    from train.fit import WholeBackupAndRestore

    @keras.saving.register_keras_serializable(package="test")
    class StoppedWhileSaved(keras.layers.Dense):
        """A layer that asks for the stop when its weights are written, after the layers before it."""

        stop = True

        def save_own_variables(self, store: dict) -> None:
            if self.stop:
                os.kill(os.getpid(), getattr(signal, stop))
            super().save_own_variables(store)

    def network() -> keras.Model:
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(5)(inputs)
        return keras.Model(inputs, keras.layers.Dense(2)(StoppedWhileSaved(3)(hidden)))

    model = network()
    backup = WholeBackupAndRestore(str(tmp_path / "backup"), double_checkpoint=True)
    backup.set_model(model)
    # As python -m train has them; SIGINT too: a shell's background job (CI under nohup ... &) starts with
    # SIGINT ignored, and an ignored stop stays ignored after the backup
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in stops}
    try:
        with pytest.raises(KeyboardInterrupt):
            backup.on_epoch_end(0)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    restored = network()
    restored.load_weights(tmp_path / "backup" / "latest.weights.h5")
    for mine, saved in zip(restored.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, saved)
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1
