"""A trained model given to a run: --teacher (distillation) and --init (a warm restart from its weights)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import (
    FER_MINI,
    SHIPPED_MODEL,
    TRAIN_ARGS,
    run_train,
    run_train_stopped_after_first_epoch,
    write_run_json,
)

pytestmark = pytest.mark.usefixtures("float32_policy")


@pytest.mark.parametrize("flag", ["--teacher", "--init"])
@pytest.mark.parametrize("where", ["missing", "folder", "empty", "text", "tflite"])
def test_a_trained_model_that_is_no_model_file_is_one_line_before_tensorflow(
    flag: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty, text or .tflite teacher used to reach Keras, ~40 s later, and say "File not found" of a file
    that is there."""
    given = tmp_path / "given.keras"
    if where == "folder":
        given.mkdir()
    elif where == "empty":
        given.write_bytes(b"")
    elif where == "text":
        given.write_text("not a model\n")
    elif where == "tflite":
        given.write_bytes(SHIPPED_MODEL.read_bytes())
    out = tmp_path / "run"
    assert run_train("--data", FER_MINI, "--out", out, flag, given) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = {"missing": "not found", "folder": "is a folder, expected the Keras model file"}.get(
        where, "not a Keras model file (a .keras file is a zip archive); give a run's model.keras"
    )
    assert len(err) == 1 and err[0].startswith(f"train: {flag} {given}: ") and expected in err[0], err
    assert not out.exists()  # refused before the run folder is made (and before TensorFlow starts)


def kernels(path: Path) -> list[np.ndarray]:
    """The convolution and dense kernels of the Keras model in ``path`` (no batch-norm statistics)."""
    import keras

    model = keras.models.load_model(path, compile=False)
    return [w.numpy() for w in model.trainable_weights if w.path.endswith("kernel")]


@pytest.mark.slow  # the placeholder model and two short trainings: make test-slow
def test_a_run_with_init_starts_from_the_models_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    """At a learning rate too small to move them, the run's model keeps the given model's kernels; the
    same run without --init (same seed) has its own. The run and its card record where it started."""
    given = tiny_model_dir / "train" / "model.keras"
    still = ("--data", FER_MINI, *TRAIN_ARGS, "--learning-rate", "1e-12")
    assert run_train(*still, "--out", tmp_path / "init", "--init", given) == 0
    assert run_train(*still, "--out", tmp_path / "fresh") == 0
    start = kernels(given)
    for mine, theirs in zip(kernels(tmp_path / "init" / "model.keras"), start, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    fresh = kernels(tmp_path / "fresh" / "model.keras")
    assert not np.allclose(fresh[0], start[0], atol=1e-3)
    facts = json.loads((tmp_path / "init" / "training.json").read_text())
    assert facts["init"] == str(given)  # and which model it held, for a file replaced since
    assert facts["init_sha256"] == hashlib.sha256(given.read_bytes()).hexdigest()
    # a resume must give the same --init
    assert json.loads((tmp_path / "init" / "run.json").read_text())["init"] == str(given)


@pytest.mark.slow
def test_init_from_another_width_is_one_line_exit_2_and_leaves_the_out_folder_as_it_was(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal came after run.json was written: it left a run folder (run.json, train.lock) behind,
    and over a run in that folder it put its own flags in the run's run.json, so that a --resume of that run
    with its own flags was refused ('--width 8 (the run has 16)'). The retry with the right --width starts;
    its run.json has --precision as given (auto), though it is now written after TensorFlow resolved it."""
    given = tiny_model_dir / "train" / "model.keras"  # width 8
    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, "--epochs", "1", "--init", given]
    assert run_train(*argv, "--width", "16") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --init {given}: another network or width (weight 0 is (3, 3, 1, 8), this run's is "
        "(3, 3, 1, 16)); give the --width it was trained with"
    ]
    assert not out.exists()
    assert run_train(*argv, "--width", "8") == 0  # the user's retry: no --resume, nothing in the way
    run_json = (out / "run.json").read_bytes()
    assert (json.loads(run_json)["width"], json.loads(run_json)["precision"]) == (8, "auto")
    assert run_train(*argv, "--width", "16") == 2  # over the finished run
    assert (out / "run.json").read_bytes() == run_json


@pytest.mark.parametrize("where", ["missing", "folder"])
def test_an_init_file_gone_when_it_is_hashed_is_one_line(where: str, tmp_path: Path) -> None:
    """The --init file is checked before TensorFlow starts and hashed for run.json once the model is built:
    removed in between, it ended the run in a FileNotFoundError traceback (IsADirectoryError for a folder
    put in its place). main prints the TrainedModelError's line and exits 2, as for the model's other
    problems (test_init_from_another_width_is_one_line_exit_2_and_leaves_the_out_folder_as_it_was)."""
    from train.trained import TrainedModelError, model_sha256

    given = tmp_path / "v4.keras"
    if where == "folder":
        given.mkdir()
    reason = {"missing": "No such file or directory", "folder": "Is a directory"}[where]
    with pytest.raises(TrainedModelError) as raised:
        model_sha256("--init", given)
    assert str(raised.value) == (
        f"--init {given}: cannot be read ({reason}) since the run checked it; put it back and start again"
    )


def test_a_resume_without_the_runs_init_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    given = tmp_path / "v4.keras"
    given.write_bytes(b"")  # hashed into run.json
    write_run_json("--data", FER_MINI, "--out", out, "--init", given)
    assert run_train("--data", FER_MINI, "--out", out, "--resume") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --resume: give the run's own flags: no --init (the run has {given})"
    ]


@pytest.mark.slow
def test_a_resumed_init_run_needs_no_init_file_and_names_the_model_it_started_from(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume loaded and hashed the --init file again, though the backup replaces those weights: with the
    file gone it was refused ("not found"), and with the file replaced the card named the replacement's hash.
    The path and hash now come from run.json, written when the run started."""
    import shutil

    given = tmp_path / "v4.keras"
    shutil.copyfile(tiny_model_dir / "train" / "model.keras", given)
    started = hashlib.sha256(given.read_bytes()).hexdigest()
    out = tmp_path / "run"
    argv = ["--data", FER_MINI, "--out", out, *TRAIN_ARGS, "--epochs", "2", "--init", given]
    run_train_stopped_after_first_epoch(monkeypatch, *argv)
    given.unlink()  # the model it started from, cleaned up before the resume
    assert run_train(*argv, "--resume") == 0
    facts = json.loads((out / "training.json").read_text())
    assert (facts["init"], facts["init_sha256"]) == (str(given), started)


@pytest.mark.parametrize("edited", [None, 42, ["aa"], {"sha256": "aa"}])
def test_a_hand_edited_init_sha256_that_is_no_string_is_not_put_on_the_card(
    edited: object, tmp_path: Path
) -> None:
    """started_from turned whatever run.json held into a string: an init_sha256 edited to null put
    "init_sha256": "None" on the card (and 'sha256 None' in the log) as if it were the model's hash. A value
    that is no string is left out, as for a run.json written before the hash was recorded."""
    from train.run_folder import SETTINGS_FILE, started_from

    out = tmp_path / "run"
    out.mkdir()
    given = tmp_path / "v4.keras"
    given.write_bytes(b"weights")
    write_run_json("--data", FER_MINI, "--out", out, "--init", given)
    saved = json.loads((out / SETTINGS_FILE).read_text())
    assert started_from(out) == {"init": str(given), "init_sha256": hashlib.sha256(b"weights").hexdigest()}
    (out / SETTINGS_FILE).write_text(json.dumps(saved | {"init_sha256": edited}))
    assert started_from(out) == {"init": str(given)}
