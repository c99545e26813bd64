"""tools.publictest_eval: the shipping rule's balanced figure, and one line for each bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tools import publictest_eval

FER_MINI = Path(__file__).parent / "fixtures" / "fer-mini"
VOTES = FER_MINI / "votes.csv"


def test_balanced_figures_by_hand() -> None:
    # FER2013: angry, angry, fear, fear, happy; the model says angry, fear, fear, happy, happy.
    labels = np.array([0, 0, 2, 2, 3])
    predicted = np.array([0, 2, 2, 3, 3])
    # FER+: the second face's majority is fear, the fourth's no emotion (left out).
    majority = np.array([0, 2, 2, -1, 3])
    figures = publictest_eval.balanced_figures(labels, majority, predicted)
    assert figures["fer2013_accuracy"] == pytest.approx(3 / 5)
    assert figures["fer2013_macro_recall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3, abs=1e-4)
    assert figures["ferplus_accuracy"] == 1.0
    assert figures["ferplus_macro_recall"] == 1.0
    assert figures["mean_macro_recall"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)


def test_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "model.keras"
    assert (
        publictest_eval.main(["--model", str(missing), "--data", str(FER_MINI), "--votes", str(VOTES)]) == 2
    )
    assert capsys.readouterr().err == (
        f"publictest_eval: {missing}: model file not found; run 'make train' or pass --model\n"
    )


@pytest.mark.parametrize("normalization", ["clahe", None])
def test_a_normalization_the_device_lacks_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], normalization: str | None
) -> None:
    """training.json's normalization went to normalize() unchecked: a ValueError traceback for "clahe", and
    null became the string "None". The files are checked before TensorFlow loads, as convert checks them."""
    model = tmp_path / "model.keras"
    zipfile.ZipFile(model, "w").close()  # a zip: past the archive check, never loaded
    (tmp_path / "training.json").write_text(json.dumps({"normalization": normalization}))
    assert publictest_eval.main(["--model", str(model), "--data", str(FER_MINI), "--votes", str(VOTES)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"publictest_eval: {tmp_path / 'training.json'}: normalization: expected one of none, equalize_hist, "
        f"got {json.dumps(normalization)}; "
    )
    assert err.count("\n") == 1


def linear_model(path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Save a Keras model whose logits are one random linear map of the 48x48 pixels (a final Softmax named
    'scores', as training's models have) at ``path``, with a training.json beside it; return its weights and
    bias, for scoring the faces here with numpy alone."""
    import keras

    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(7)
    outputs = keras.layers.Softmax(name="scores")(dense(keras.layers.Flatten()(inputs)))
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.05, (48 * 48, 7)).astype(np.float32)
    bias = rng.normal(0, 0.1, 7).astype(np.float32)
    dense.set_weights([weights, bias])
    keras.Model(inputs, outputs).save(path)
    (path.parent / "training.json").write_text(json.dumps({"normalization": "equalize_hist"}))
    return weights, bias


@pytest.mark.slow  # imports TensorFlow (5-15 s on a busy 2-core machine): make test-slow
def test_figures_are_the_mirror_averaged_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from device.vision.preprocess import normalize
    from train.data import load
    from train.votes import load_votes

    model_path = tmp_path / "model.keras"
    weights, bias = linear_model(model_path, seed=3)
    assert (
        publictest_eval.main(["--model", str(model_path), "--data", str(FER_MINI), "--votes", str(VOTES)])
        == 0
    )
    line = capsys.readouterr().out

    # The same faces scored with numpy: the logits of each face and of its mirror image, averaged.
    test = load(FER_MINI)["PublicTest"]
    faces = normalize(test.images, "equalize_hist")
    logits = faces.reshape(len(faces), -1) @ weights + bias
    mirrored = faces[:, :, ::-1].reshape(len(faces), -1) @ weights + bias
    majority = load_votes(VOTES).majority(test.names)
    figures = publictest_eval.balanced_figures(test.labels, majority, (logits + mirrored).argmax(axis=1))
    one_view = publictest_eval.balanced_figures(test.labels, majority, logits.argmax(axis=1))
    assert figures != one_view  # the check tells two views from one
    assert line == (
        f"PublicTest: FER2013 {figures['fer2013_accuracy']:.1%} / {figures['fer2013_macro_recall']:.1%}, "
        f"FER+ majority {figures['ferplus_accuracy']:.1%} / {figures['ferplus_macro_recall']:.1%} "
        f"(accuracy / macro recall); mean of the macro recalls {figures['mean_macro_recall']:.2%}\n"
    )
