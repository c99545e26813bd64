"""convert/: Keras → TFLite on the fer-mini fixture, the model card, and the accuracy guard."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from convert.card import TRAINING_KEYS
from device.vision.classify import EmotionClassifier, card_path_for
from tests.fixtures_model import FER_MINI
from train.const import LABELS


def run_convert(*argv: str | Path) -> int:
    import convert.__main__ as convert_cli

    return convert_cli.main([str(a) for a in argv])


def fixture_faces() -> tuple[np.ndarray, np.ndarray]:
    from train.data import load

    data = load(FER_MINI)
    images = np.concatenate([data["Training"].images, data["PrivateTest"].images])
    labels = np.concatenate([data["Training"].labels, data["PrivateTest"].labels])
    return images, labels


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
def test_int8_model_is_full_integer_with_a_dynamic_batch(int8_model: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(int8_model))
    (face,) = interpreter.get_input_details()
    (scores,) = interpreter.get_output_details()
    assert face["dtype"] == np.int8 and scores["dtype"] == np.int8
    assert list(face["shape_signature"]) == [-1, 48, 48, 1]
    assert list(scores["shape_signature"]) == [-1, len(LABELS)]
    float_tensors = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert not float_tensors, f"float tensors left in the int8 model: {float_tensors[:5]}"


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
def test_card_follows_the_schema_and_matches_the_tensors(int8_model: Path, tiny_model_dir: Path) -> None:
    card = json.loads(card_path_for(int8_model).read_text())
    training = json.loads((tiny_model_dir / "train" / "training.json").read_text())
    assert card["schema"] == 1 and card["name"] == "moodcast-emotion"
    assert card["labels"] == list(LABELS)
    assert card["quantization"] == "int8"
    assert card["flip_average"] is True
    assert {k: card["input"][k] for k in ("height", "width", "channels", "scale")} == {
        "height": 48, "width": 48, "channels": 1, "scale": "0..1",
    }  # fmt: skip
    crop = card["input"]["crop"]
    assert (crop["margin_frac"], crop["offset_x_frac"], crop["offset_y_frac"]) == (0.0, 0.0, 0.0)
    assert "not found" in crop["source"]
    metrics = card["metrics"]
    assert (metrics["dataset"], metrics["split"]) == ("FER2013", "PrivateTest")
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["keras_accuracy"] <= 1.0
    assert set(metrics["per_class"]) == set(LABELS)
    assert all(set(m) == {"precision", "recall"} for m in metrics["per_class"].values())
    assert card["training"] == {k: training[k] for k in TRAINING_KEYS if k in training}
    assert datetime.fromisoformat(card["created"]).tzinfo is not None

    classifier = EmotionClassifier(int8_model)  # the device's loader checks card against tensors
    assert classifier.labels == LABELS
    assert classifier.input_dtype == np.int8


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_int8_agrees_with_keras_on_fixture_faces(int8_model: Path, tiny_model_dir: Path) -> None:
    import keras

    from convert.verify import keras_scores, tflite_scores

    images, _ = fixture_faces()
    model = keras.models.load_model(tiny_model_dir / "train" / "model.keras", compile=False)
    reference = keras_scores(model, images, EmotionClassifier(int8_model).card.crop.normalization)
    classifier = EmotionClassifier(int8_model)
    # Keras gives the network's own probabilities: compare the .tflite's before its card's temperature.
    classifier.card = dataclasses.replace(classifier.card, temperature=1.0)
    quantized = tflite_scores(classifier, images)
    # Every score within two steps of the int8 output (1/256 each) ...
    np.testing.assert_allclose(quantized, reference, atol=2 / 256)
    # ... and the same top class wherever Keras's top two are further apart than int8 can resolve. (The
    # one-epoch placeholder scores nearly alike for every face, so this part bites on real models only.)
    top_two = np.sort(reference, axis=1)[:, -2:]
    decisive = top_two[:, 1] - top_two[:, 0] > 2 / 256
    same = reference.argmax(axis=1) == quantized.argmax(axis=1)
    assert same[decisive].mean() >= 0.9 if decisive.any() else True


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_float16_conversion_and_crop_calibration(tiny_model_dir: Path, tmp_path: Path) -> None:
    crop = {"margin_frac": 0.12, "offset_x_frac": -0.01, "offset_y_frac": 0.05, "detected": 10}
    (tmp_path / "crop.json").write_text(json.dumps(crop))
    out = tmp_path / "emotion-float16.tflite"
    code = run_convert(
        "--model", tiny_model_dir / "train" / "model.keras", "--data", FER_MINI, "--out", out,
        "--quantization", "float16", "--crop", tmp_path / "crop.json", "--max-drop", "1",
    )  # fmt: skip
    assert code == 0
    card = json.loads(card_path_for(out).read_text())
    assert card["quantization"] == "float16"
    expected = {key: crop[key] for key in ("margin_frac", "offset_x_frac", "offset_y_frac")}
    assert card["input"]["crop"] == {**expected, "source": str(tmp_path / "crop.json")}
    float16 = EmotionClassifier(out)
    assert float16.card.crop.margin_frac == 0.12
    images, _ = fixture_faces()
    faces = images[:32, ..., np.newaxis].astype(np.float32) / 255
    float32 = EmotionClassifier(tiny_model_dir / "emotion-float32.tflite")
    np.testing.assert_allclose(float16.classify(faces), float32.classify(faces), atol=1e-3)


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_max_drop_guard_fails_with_one_line_and_writes_nothing(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emotion-int8.tflite"
    code = run_convert(
        "--model", tiny_model_dir / "train" / "model.keras", "--data", FER_MINI, "--out", out,
        "--representative", "50", "--max-drop", "-1",
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convert: int8 model loses "), err
    assert "against Keras" in err[0] and str(out) in err[0]
    assert not out.exists() and not card_path_for(out).exists()


@pytest.mark.parametrize("content", ["not a zip archive", "truncated"])
def test_unreadable_model_is_one_line(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated .keras used to be answered with Keras's "(File not found: ...)" of a file that is there."""
    import io
    import zipfile

    bad = tmp_path / "model.keras"
    if content == "truncated":  # an archive cut short, as a full disk or an interrupted copy leaves it
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("config.json", "{}" * 1000)
            zipped.writestr("model.weights.h5", bytes(range(256)) * 100)
        bad.write_bytes(archive.getvalue()[: len(archive.getvalue()) // 2])
    else:
        bad.write_bytes(content.encode())
    assert run_convert("--model", bad, "--data", FER_MINI, "--out", tmp_path / "m.tflite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"convert: {bad}: not a readable Keras archive (not a zip file: truncated, corrupt or another "
        "kind of file); pass --model with the model.keras of a finished training run"
    ]


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_a_mixed_precision_checkpoint_is_one_line_naming_model_keras(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model runs/x/best.keras (mixed_bfloat16) used to dump ~69 lines of converter MLIR blaming "an op
    without a int8 TFLite kernel"."""
    import keras

    inputs = keras.Input((48, 48, 1))
    hidden = keras.layers.Conv2D(4, 3, dtype="mixed_bfloat16")(inputs)
    hidden = keras.layers.GlobalAveragePooling2D(dtype="mixed_bfloat16")(hidden)
    outputs = keras.layers.Dense(len(LABELS), "softmax", name="scores", dtype="float32")(hidden)
    best = tmp_path / "run" / "best.keras"
    best.parent.mkdir()
    keras.Model(inputs, outputs).save(best)
    (best.parent / "training.json").write_text('{"normalization": "none"}')  # all the converter needs
    out = tmp_path / "m.tflite"
    assert run_convert("--model", best, "--data", FER_MINI, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"convert: {best}: a mixed-precision training checkpoint (mixed_bfloat16 layers); convert the "
        f"float32 export training wrote beside it: --model {tmp_path / 'run' / 'model.keras'}"
    ]
    assert not out.exists()


def test_cli_missing_model_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.keras"
    result = subprocess.run(
        [sys.executable, "-m", "convert", "--model", str(missing), "--data", str(FER_MINI),
         "--out", str(tmp_path / "m.tflite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("convert:")]
    assert ours == [f"convert: {missing}: model file not found; run 'make train' or pass --model"]
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_flip_averaged_model_scores_a_face_and_its_mirror_alike():
    """The wrapper averages each face with its mirror image, so both score the same; the base does not."""
    import keras

    from convert.quantize import flip_averaged
    from train.model import build_model

    keras.utils.set_random_seed(3)
    base = build_model((48, 48, 1), 7, width=4)
    faces = np.random.default_rng(3).random((4, 48, 48, 1)).astype(np.float32)
    mirrored = faces[:, :, ::-1].copy()
    wrapped = flip_averaged(base)
    np.testing.assert_allclose(wrapped(faces), wrapped(mirrored), atol=1e-5)
    assert not np.allclose(base(faces), base(mirrored), atol=1e-5)
    np.testing.assert_allclose(np.asarray(wrapped(faces)).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("where", ["folder", "card folder", "under a file"])
def test_an_out_that_cannot_be_written_is_refused_before_converting(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """These used to fail with IsADirectoryError / FileExistsError tracebacks after the whole conversion."""
    out = tmp_path / "m.tflite"
    if where == "folder":
        out.mkdir()
    elif where == "card folder":
        (tmp_path / "m.json").mkdir()
    else:
        (tmp_path / "taken").write_text("x")
        out = tmp_path / "taken" / "m.tflite"
    started = time.monotonic()
    assert run_convert("--model", tmp_path / "absent.keras", "--data", FER_MINI, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"convert: --out {out.parent if where == 'under a file' else out}"
    )
    assert "absent.keras" not in err[0] and time.monotonic() - started < 5  # before reading the model


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--representative", "-5"], "--representative: expected a whole number >= 1, got -5"),
        (["--max-drop", "nan"], "--max-drop: expected a number, got nan"),
    ],
)
def test_bad_numbers_are_one_line_exit_2(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--representative -5 used to end in a numpy traceback; --max-drop nan switched the guard off."""
    with pytest.raises(SystemExit) as stop:
        run_convert("--data", FER_MINI, *flags)
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_write_that_fails_leaves_the_shipped_model_and_card_whole(tmp_path: Path) -> None:
    """convert wrote the model in place: a full disk left a truncated model (which the device refuses) beside
    the old card. Here the card's write fails; the old model and card must be untouched, no part left."""
    from convert.__main__ import replace_files
    from convert.errors import ConvertError
    from device.paths import temp_name

    model, card = tmp_path / "m.tflite", tmp_path / "m.json"
    model.write_bytes(b"old model")
    card.write_text("old card")
    temp_name(card).mkdir()  # the card cannot be written beside its path
    with pytest.raises(ConvertError, match="m.json: cannot write it"):
        replace_files({model: b"new model", card: b"new card"})
    assert model.read_bytes() == b"old model" and card.read_text() == "old card"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.json.tmp", "m.json", "m.tflite"]
    replace_files({model: b"new model"})
    assert model.read_bytes() == b"new model"


def test_the_card_says_the_model_learned_household_faces() -> None:
    """A model trained with --extra-data had a card that said only FER2013 (its data_sha256): the
    household's faces it learned from were not recorded."""
    from convert.card import build_card

    training = {"epochs": 60, "seed": 1, "data_sha256": "ab", "git_commit": "cd", "targets": "x"}
    plain = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, training, True)
    assert "extra_faces" not in plain["training"]
    training |= {"extra_faces": 88, "extra_weight": 2.0}
    card = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, training, True)
    assert card["training"]["extra_faces"] == 88 and card["training"]["extra_weight"] == 2.0


def test_the_card_says_the_recipe_that_made_the_model() -> None:
    """The card kept only epochs, seed, data, commit and targets: not the EMA, width, parameters, bfloat16,
    early stopping (the shipped model's --patience 30), learning rate or vote blend it was trained with. A
    training.json from before they were recorded (the shipped card's) still makes a card, without them."""
    from convert.card import build_card

    old = {"epochs": 120, "seed": 1234, "data_sha256": "ab", "git_commit": "cd", "targets": "x"}
    recipe = {
        "max_epochs": 120, "patience": 30, "batch_size": 64, "learning_rate": 2e-3, "width": 32,
        "parameters": 1_230_000, "precision": "mixed_bfloat16", "ema_momentum": 0.999, "mixup_alpha": 0.0,
        "vote_blend": 0.5,
    }  # fmt: skip
    training = old | recipe | {"best_val_accuracy": 0.7, "created": "2026-12-07T00:00:00+00:00"}
    card = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, training, True)
    assert card["training"] == old | recipe
    plain = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, old, True)
    assert plain["training"] == old


def test_the_card_names_the_teacher_a_model_was_distilled_from() -> None:
    from convert.card import build_card

    training = {"epochs": 60, "seed": 1, "data_sha256": "ab", "git_commit": "cd", "targets": "x"}
    plain = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, training, True)
    assert "teacher" not in plain["training"]
    training |= {"teacher": "runs/train-e120/model.keras", "teacher_weight": 0.5}
    card = build_card(list(LABELS), (48, 48, 1), {}, "equalize_hist", "int8", None, training, True)
    assert card["training"]["teacher"] == "runs/train-e120/model.keras"
    assert card["training"]["teacher_weight"] == 0.5


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("new/", "'{tmp}/new/' names a folder (it ends in '/'), expected a file; add the file's name"),
        ("new/.", "'{tmp}/new/.' names a folder (it ends in '/.'), expected a file; add the file's name"),
        # converted for minutes, then a traceback writing the model to <scratch>/.. (IsADirectoryError)
        ("new/..", "'{tmp}/new/..' names a folder (it ends in '/..'), expected a file; add the file's name"),
        (
            "old.tflite/",
            "'{tmp}/old.tflite/' names a folder (it ends in '/'), expected a file; "
            "write it as {tmp}/old.tflite",
        ),
    ],
)
def test_an_out_written_as_a_folder_is_refused_in_the_shared_words(
    written: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """convert had its own trailing-'/' check, in its own words, and missed '/.': --out new/. (Path makes it
    new) converted and wrote a file named new. A path that must name a file now says so in the words of every
    such setting (``device.paths.named_as_folder``), before anything is read."""
    (tmp_path / "old.tflite").write_bytes(b"a model converted before")
    with pytest.raises(SystemExit) as stop:
        run_convert("--model", tmp_path / "missing.keras", "--out", f"{tmp_path}/{written}")
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"python -m convert: error: --out: {expected.format(tmp=tmp_path)}"
    )
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", ["report file", "the model", "card over training facts"])
def test_an_out_that_would_clobber_or_misplace_files_is_refused_before_converting(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ran the whole conversion first: a file at the report folder's path ended in FileExistsError;
    --out run/model.keras wrote the TFLite bytes over the trained model; --out run/training.tflite would put
    its card over training.json. (--out new/ is refused as a folder's path, in the shared words: the test
    above.)"""
    run = tmp_path / "run"
    run.mkdir()
    model, training = run / "model.keras", run / "training.json"
    model.write_bytes(b"the trained model")
    training.write_text("{}")
    out: str = str(tmp_path / "m.tflite")
    if case == "report file":
        (tmp_path / "m-report").write_text("x")
    elif case == "the model":
        out = str(model)
    else:
        out = str(run / "training.tflite")
    argv = ["--model", str(model), "--data", str(FER_MINI), "--out", out]
    assert run_convert(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"convert: --out {out}"), err
    assert model.read_bytes() == b"the trained model" and training.read_text() == "{}"


def a_trained_run(folder: Path, training: dict) -> Path:
    """A run folder as far as convert reads it before TensorFlow: ``training.json`` holding ``training``,
    beside a ``model.keras`` that is a zip archive (no model: a test of a check made before it is loaded)."""
    import zipfile

    folder.mkdir()
    (folder / "training.json").write_text(json.dumps(training))
    with zipfile.ZipFile(folder / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    return folder / "model.keras"


def test_votes_covering_few_report_faces_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Votes for only some of the report split's faces (the fer-mini votes with FER2013's 3,589 PrivateTest
    faces) gave 'FER+ majority' metrics on 137 of them, with no word; train refuses such votes for its
    Training faces, and convert now refuses them for the PrivateTest faces it reports on, in train's words."""
    lines = (FER_MINI / "votes.csv").read_text().splitlines(keepends=True)
    private = [line for line in lines if "/PrivateTest_" in line]
    rows = [line for line in lines if line not in private[10:]]  # 10 of its 140 PrivateTest faces
    votes = tmp_path / "votes.csv"
    votes.write_text("".join(rows))
    model = a_trained_run(tmp_path / "run", {"normalization": "none"})
    argv: list[str | Path] = ["--model", model, "--data", FER_MINI, "--votes", votes]
    argv += ["--out", tmp_path / "m.tflite"]
    assert run_convert(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"convert: {votes}: "), err
    assert ": 130 of 140 PrivateTest faces have no row; its file column must name each face by its" in err[0]
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("normalization", ["clahe", None])
def test_a_normalization_the_device_lacks_is_one_line_naming_the_file_and_field(
    normalization: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """training.json saying "clahe" or null ended in normalize()'s ValueError traceback, exit 1."""
    model = a_trained_run(tmp_path / "run", {"normalization": normalization, "epochs": 2})
    assert run_convert("--model", model, "--data", FER_MINI, "--out", tmp_path / "m.tflite") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"convert: {model.with_name('training.json')}: normalization: expected one of none, equalize_hist, "
        f"got {json.dumps(normalization)}; the device normalises faces in no other way: convert a run "
        "trained with one of them (train --normalization)"
    ]


def test_training_facts_without_a_normalization_are_a_run_from_before_it() -> None:
    from convert.__main__ import training_normalization

    assert training_normalization(Path("training.json"), {"epochs": 60}) == "none"
    assert (
        training_normalization(Path("training.json"), {"normalization": "equalize_hist"}) == "equalize_hist"
    )


def test_a_crop_file_named_but_absent_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--crop /nonexistent.json was taken as 'no calibration' with a WARNING, and the card recorded a zero
    crop: only the default file may be absent."""
    model = a_trained_run(tmp_path / "run", {"normalization": "none"})
    missing = tmp_path / "nonexistent.json"
    argv: list[str | Path] = [
        "--model",
        model,
        "--data",
        FER_MINI,
        "--crop",
        missing,
        "--out",
        tmp_path / "m.tflite",
    ]
    assert run_convert(*argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"convert: --crop {missing}: crop calibration not found; run 'python -m tools.calibrate_crop' or "
        "pass --crop its file"
    ]


def test_a_report_without_votes_removes_the_ferplus_confusion_of_one_before(tmp_path: Path) -> None:
    """A report written with --votes, then again without, kept the first model's confusion-ferplus.png beside
    a report.json whose ferplus_majority is null."""
    from convert.__main__ import write_report
    from convert.calibrate import reliability
    from train.metrics import classification_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(LABELS), 50)
    scores = rng.dirichlet(np.ones(len(LABELS)), 50)
    metrics = classification_metrics(labels, scores.argmax(axis=1), list(LABELS))
    calibration = {"temperature": 1.0, "uncalibrated": reliability(scores, labels)}
    calibration |= {"calibrated": calibration["uncalibrated"], "ferplus_majority_ece": None}
    folder = tmp_path / "m-report"
    write_report(folder, metrics, metrics, metrics, calibration, {}, 1.0)
    assert (folder / "confusion-ferplus.png").is_file()
    write_report(folder, metrics, metrics, None, calibration, {}, 1.0)
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion-fer2013.png",
        "reliability.png",
        "report.json",
    ]


@pytest.mark.slow  # converts twice (TensorFlow): make test-slow
def test_votes_add_the_calibration_error_against_the_ferplus_majority(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's calibration was measured against FER2013 labels only; with --votes it now gives the ECE
    against the FER+ majority too, before and after the temperature (fitted on FER2013 labels as before).
    Converted again without --votes, the report has none, and no FER+ figure is left from the first."""
    from train.data import load
    from train.votes import load_votes

    out = tmp_path / "emotion-float32.tflite"
    argv: list[str | Path] = ["--model", tiny_model_dir / "train" / "model.keras", "--data", FER_MINI]
    argv += ["--out", out]
    argv += ["--quantization", "float32", "--max-drop", "1"]
    assert run_convert(*argv, "--votes", FER_MINI / "votes.csv") == 0
    report = json.loads((tmp_path / "emotion-float32-report" / "report.json").read_text())
    majority = load_votes(FER_MINI / "votes.csv").majority(load(FER_MINI)["PrivateTest"].names)
    by_votes = report["calibration"]["ferplus_majority_ece"]
    assert set(by_votes) == {"faces", "uncalibrated", "calibrated"}
    assert by_votes["faces"] == int((majority >= 0).sum()) > 0
    assert all(0.0 <= by_votes[key] <= 1.0 for key in ("uncalibrated", "calibrated"))
    printed = capsys.readouterr().out
    assert (
        f"; FER+ majority ECE {by_votes['uncalibrated']:.4f} → {by_votes['calibrated']:.4f}\n" in printed
    ), printed
    card = json.loads(card_path_for(out).read_text())
    assert set(card["calibration"]) == {"temperature", "method", "fitted_on", "ece", "ece_uncalibrated"}
    assert (tmp_path / "emotion-float32-report" / "confusion-ferplus.png").is_file()

    assert run_convert(*argv) == 0
    report = json.loads((tmp_path / "emotion-float32-report" / "report.json").read_text())
    assert report["ferplus_majority"] is None and report["calibration"]["ferplus_majority_ece"] is None
    assert "FER+" not in capsys.readouterr().out
    assert not (tmp_path / "emotion-float32-report" / "confusion-ferplus.png").exists()
