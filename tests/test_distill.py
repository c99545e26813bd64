"""train --teacher: a trained model's scores on the training faces as part of the targets (distillation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_model import FER_MINI, TRAIN_ARGS, run_train, write_run_json
from train.const import LABELS

pytestmark = pytest.mark.usefixtures("float32_policy")


def test_distilled_targets_weigh_the_teachers_scores_against_the_own_targets() -> None:
    from train.distill import distilled_targets

    own = np.eye(len(LABELS), dtype=np.float32)[[0, 3]]
    scores = np.full((2, len(LABELS)), 1 / len(LABELS), dtype=np.float32)
    mixed = distilled_targets(own, scores, 0.25)
    np.testing.assert_allclose(mixed, 0.75 * own + 0.25 * scores, rtol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(distilled_targets(own, scores, 1.0), scores)
    with pytest.raises(ValueError, match=r"targets \(2, 7\) and teacher scores \(3, 7\) differ in shape"):
        distilled_targets(own, np.ones((3, len(LABELS)), np.float32) / 7, 0.5)


def test_a_resume_of_a_run_from_before_teacher_refuses_a_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run.json written before --teacher existed had no teacher: a resume that adds one changes the
    targets halfway and is refused like any other changed flag."""
    from train.run_folder import SETTINGS_FILE

    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    write_run_json("--data", FER_MINI, "--out", out, "--width", "8", "--epochs", "4")
    saved = json.loads((out / SETTINGS_FILE).read_text())
    del saved["teacher"], saved["teacher_weight"]
    (out / SETTINGS_FILE).write_text(json.dumps(saved))
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"")
    flags = ("--data", FER_MINI, "--out", out, "--width", "8", "--epochs", "4", "--resume")
    assert run_train(*flags, "--teacher", teacher) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --resume: give the run's own flags: --teacher {teacher} (the run has none)"
    ]


def test_a_resume_without_the_runs_teacher_says_so_in_words_a_user_can_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume that left out the run's --teacher was told to give "--teacher None"."""
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    teacher = tmp_path / "teacher.keras"
    write_run_json("--data", FER_MINI, "--out", out, "--teacher", teacher)
    assert run_train("--data", FER_MINI, "--out", out, "--resume") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train: --resume: give the run's own flags: no --teacher (the run has {teacher})"
    ]


@pytest.mark.slow  # the placeholder model and Keras: make test-slow
def test_teacher_scores_are_the_mirror_averaged_probabilities(tiny_model_dir: Path) -> None:
    import keras

    from device.vision.preprocess import normalize
    from train.data import load
    from train.distill import teacher_scores

    faces = load(FER_MINI)["Training"].images[:40]
    teacher = tiny_model_dir / "train" / "model.keras"
    scores = teacher_scores(teacher, faces, "equalize_hist")
    model = keras.models.load_model(teacher, compile=False)
    views = [normalize(f, "equalize_hist")[..., None] for f in (faces, faces[:, :, ::-1])]
    expected = sum(model.predict(v, verbose=0) for v in views) / 2
    assert scores.shape == (40, len(LABELS)) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_a_run_with_a_teacher_records_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    teacher = tiny_model_dir / "train" / "model.keras"
    out = tmp_path / "run"
    votes = FER_MINI / "votes.csv"
    flags = ("--teacher", teacher, "--teacher-weight", "0.3")
    assert run_train("--data", FER_MINI, "--votes", votes, "--out", out, *TRAIN_ARGS, *flags) == 0
    facts = json.loads((out / "training.json").read_text())
    assert facts["teacher"] == str(teacher) and facts["teacher_weight"] == 0.3
    assert facts["targets"] == (
        "0.7 x (0.5 x FER2013 one-hot + 0.5 x FER+ vote shares) + 0.3 x the teacher's scores"
    )
    settings = json.loads((out / "run.json").read_text())
    assert (settings["teacher"], settings["teacher_weight"]) == (str(teacher), 0.3)  # a resume must match


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unknown layer", "other shape", "logits"])
def test_a_teacher_that_cannot_score_faces_is_one_line_exit_2(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A teacher with a layer this project does not register used to end in two tracebacks (TypeError), and
    one ending in logits was blended into the targets, negative scores and all."""
    import keras

    class Doubled(keras.layers.Layer):
        def call(self, x):  # type: ignore[no-untyped-def]
            return 2 * x

    teacher = tmp_path / "teacher.keras"
    inputs = keras.Input((48, 48, 1))
    flat = keras.layers.Flatten()(inputs)
    outputs = {
        "unknown layer": keras.layers.Dense(7, activation="softmax")(Doubled()(flat)),
        "other shape": keras.layers.Dense(3)(flat),
        "logits": keras.layers.Dense(7)(flat),
    }[kind]
    keras.Model(inputs, outputs).save(teacher)
    out = tmp_path / "run"
    assert run_train("--data", FER_MINI, "--out", out, *TRAIN_ARGS, "--teacher", teacher) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = {
        "unknown layer": "cannot be loaded as a Keras model (",
        "other shape": "expected a 48x48 grey face and 7 class",
        "logits": "gives scores that are not probabilities (lowest -",
    }[kind]
    assert len(err) == 1 and err[0].startswith(f"train: --teacher {teacher}: ") and expected in err[0], err
