"""device.vision.classify on the shipped int8 model and the placeholder int8 and float32 models (slow):
batching, quantization, refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.errors import ModelError
from device.vision.classify import EmotionClassifier, card_path_for, read_from
from device.vision.preprocess import normalize


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Five fixture faces as the device feeds them: float32 (N, 48, 48, 1) scaled 0..1."""
    import cv2

    from tests.fixtures_model import FER_MINI

    files = sorted((FER_MINI / "test").glob("*/PrivateTest_*.jpg"))[::28][:5]
    gray = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    return normalize(gray)[..., np.newaxis]


def copy_model(model: Path, folder: Path) -> tuple[Path, Path]:
    """Copy a model and its card to ``folder``, so a test can spoil one of them."""
    model_copy = Path(shutil.copy(model, folder / model.name))
    card_copy = Path(shutil.copy(card_path_for(model), card_path_for(model_copy)))
    return model_copy, card_copy


def assert_one_line_naming(err: pytest.ExceptionInfo[ModelError], path: Path) -> None:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
@pytest.mark.parametrize("model_fixture", ["int8_model", "float_model"])
def test_a_batch_scores_like_single_faces(
    model_fixture: str, faces: np.ndarray, request: pytest.FixtureRequest
) -> None:
    classifier = EmotionClassifier(request.getfixturevalue(model_fixture))
    batch = classifier.classify(faces)
    singles = np.concatenate([classifier.classify(faces[i : i + 1]) for i in range(len(faces))])
    assert batch.shape == (len(faces), len(classifier.labels)) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=0.02)
    assert classifier.classify(faces[:0]).shape == (0, len(classifier.labels))


FIXED_BATCH_MODEL = Path(__file__).parent / "fixtures" / "fixed-batch" / "fixed-batch.tflite"


def test_a_model_with_a_fixed_batch_of_one_scores_faces_one_by_one(faces: np.ndarray) -> None:
    """A model converted with its batch fixed to 1 (tests/fixtures/fixed-batch/make.py) loaded and scored one
    face, then stopped the daemon with the runtime's traceback on the first frame with two faces."""
    classifier = EmotionClassifier(FIXED_BATCH_MODEL)
    batch = classifier.classify(faces)
    singles = np.concatenate([classifier.classify(faces[i : i + 1]) for i in range(len(faces))])
    assert batch.shape == (len(faces), len(classifier.labels))
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert not np.allclose(batch[0], batch[1])  # each face its own scores, not the first one's repeated


def test_a_batch_the_runtime_refuses_is_one_line(shipped_model: Path) -> None:
    """A runtime failure is a ModelError (the daemon's one line), not a traceback; faces of another size than
    the card's are refused (the input was resized to them)."""
    classifier = EmotionClassifier(shipped_model)
    with pytest.raises(ModelError, match="failed on a batch of 2") as err:
        classifier.classify(np.zeros((2, 40, 40, 1), np.float32))  # not the card's 48 x 48
    assert "\n" not in str(err.value)


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
def test_int8_and_float_models_agree(int8_model: Path, float_model: Path, faces: np.ndarray) -> None:
    """The networks agree; each card's temperature is fitted apart (on a placeholder model they differ), so
    both are compared at temperature 1."""
    int8, float32 = EmotionClassifier(int8_model), EmotionClassifier(float_model)
    for classifier in (int8, float32):
        classifier.card = dataclasses.replace(classifier.card, temperature=1.0)
    np.testing.assert_allclose(int8.classify(faces), float32.classify(faces), atol=2 / 256)


def test_int8_quantize_round_trip(shipped_model: Path, faces: np.ndarray) -> None:
    classifier = EmotionClassifier(shipped_model)
    assert classifier.input_dtype == np.int8
    scale, zero_point = classifier._input["quantization"]
    quantized = classifier._quantize(faces)
    assert quantized.dtype == np.int8
    restored = (quantized.astype(np.float32) - zero_point) * scale
    np.testing.assert_allclose(restored, faces, atol=scale / 2 + 1e-7)
    # The ends of the input range map to the ends of int8, and scores dequantize into 0..1.
    assert classifier._quantize(np.array([0.0, 1.0], np.float32)).tolist() == [-128, 127]
    out_scale, out_zero = classifier._output["quantization"]
    scores = classifier._dequantize(np.array([[-128, 127]], np.int8))
    np.testing.assert_allclose(scores, [[0.0, 255 * out_scale]], atol=1e-6)
    assert out_zero == -128 and out_scale == pytest.approx(1 / 256)


def test_refuses_a_file_that_is_not_tflite(shipped_model: Path, tmp_path: Path) -> None:
    model, _ = copy_model(shipped_model, tmp_path)
    model.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, model)
    assert "not a TFLite flatbuffer" in str(err.value)


def test_a_model_path_that_names_no_tflite_file_says_so_not_that_its_card_is_missing(tmp_path: Path) -> None:
    """model.path pointed at the Keras model (or any other file) was answered "model.json: model card not
    found; it must lie beside the .tflite file": the card was read before the model's own identifier."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04" + bytes(64))  # a zip, as a .keras file is
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, model)
    assert "not a TFLite flatbuffer" in str(err.value) and "card" not in str(err.value)


def test_refuses_a_card_whose_input_disagrees(shipped_model: Path, tmp_path: Path) -> None:
    model, card = copy_model(shipped_model, tmp_path)
    raw = json.loads(card.read_text())
    raw["input"]["height"] = raw["input"]["width"] = 64
    card.write_text(json.dumps(raw))
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, model)
    assert "(48, 48, 1)" in str(err.value) and "(64, 64, 1)" in str(err.value)


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
def test_refuses_a_card_with_the_wrong_number_of_labels(float_model: Path, tmp_path: Path) -> None:
    model, card = copy_model(float_model, tmp_path)
    raw = json.loads(card.read_text())
    raw["labels"] = raw["labels"][:-1]
    card.write_text(json.dumps(raw))
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, model)


@pytest.mark.parametrize("labels", [None, []])
def test_refuses_a_card_without_labels(labels: list | None, shipped_model: Path, tmp_path: Path) -> None:
    model, card = copy_model(shipped_model, tmp_path)
    raw = json.loads(card.read_text())
    if labels is None:
        del raw["labels"]
    else:
        raw["labels"] = labels
    card.write_text(json.dumps(raw))
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, card)
    assert "no labels" in str(err.value)


def test_refuses_a_missing_card(shipped_model: Path, tmp_path: Path) -> None:
    model, card = copy_model(shipped_model, tmp_path)
    card.unlink()
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert_one_line_naming(err, card)


def test_a_folder_in_the_cards_place_is_one_line(shipped_model: Path, tmp_path: Path) -> None:
    """A folder in the card's place was a traceback (IsADirectoryError)."""
    model, card = copy_model(shipped_model, tmp_path)
    card.unlink()
    card.mkdir()
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    assert str(err.value) == f"{card}: is a folder, expected the model card (a .json file)"


def test_a_missing_model_is_named_before_its_card(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tflite"  # neither the model nor its card exists
    with pytest.raises(ModelError) as err:
        EmotionClassifier(missing)
    assert str(err.value) == f"{missing}: model file not found; run 'make convert' or fix model.path"


def test_where_a_relative_model_was_looked_for_is_a_bare_phrase_each_line_punctuates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_from ended in '; ' to suit the classifier's sentence, and --check-config cut that off again to put
    the phrase in brackets; it is now the bare phrase, and each line adds its own punctuation."""
    monkeypatch.chdir(tmp_path)  # a real change of folder: the phrase names the folder the path is read from
    assert read_from(Path("nope.tflite")) == f"a relative path, looked for in {tmp_path}"
    assert read_from(tmp_path / "nope.tflite") == ""
    with pytest.raises(ModelError) as err:
        EmotionClassifier(Path("nope.tflite"))
    assert str(err.value) == (
        f"nope.tflite: model file not found; a relative path, looked for in {tmp_path}; "
        "run 'make convert' or fix model.path"
    )


def test_a_folder_given_as_the_model_is_called_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        EmotionClassifier(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a folder, expected the .tflite model file; fix model.path"


BROKEN_RUNTIME = {  # where tflite-runtime 2.14 under NumPy 2 fails: a review saw both on a Pi
    "on import": "raise SystemError('initialization of _pywrap_tensorflow_interpreter_wrapper '\n"
    "                  'raised unreported exception')\n",
    "a NumPy mismatch on import": "raise ImportError('numpy.core.multiarray failed to import')\n",
    "no Interpreter in it": "VERSION = '0'\n",
    "making the Interpreter": "class Interpreter:\n"
    "    def __init__(self, **kwargs):\n"
    "        raise SystemError('<built-in method CreateWrapperFromBuffer> returned a result '\n"
    "                          'with an exception set')\n",
}


@pytest.mark.parametrize(
    ("runtime", "where", "fix"),
    [
        ("tflite_runtime", "on import", "pip install 'numpy<2', or install ai-edge-litert"),
        ("tflite_runtime", "making the Interpreter", "pip install 'numpy<2', or install ai-edge-litert"),
        ("ai_edge_litert", "making the Interpreter", "pip install --force-reinstall ai-edge-litert"),
        # an ImportError inside an installed runtime was taken for "not installed": the lookup went on to
        # tensorflow.lite and ended in an AttributeError traceback
        ("ai_edge_litert", "a NumPy mismatch on import", "pip install --force-reinstall ai-edge-litert"),
        ("ai_edge_litert", "no Interpreter in it", "pip install --force-reinstall ai-edge-litert"),
    ],
)
def test_a_runtime_that_fails_is_one_line_saying_what_to_install(
    runtime: str, where: str, fix: str, shipped_model: Path, tmp_path: Path
) -> None:
    """tflite-runtime 2.14 under NumPy 2 raises SystemError, not ImportError: on import or in Interpreter.
    Both the daemon and --check-config (which the deploy runs on the Pi) say so in one line."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    absent = "raise ModuleNotFoundError(\"No module named 'ai_edge_litert'\", name='ai_edge_litert')\n"
    for package, init, code in [
        ("ai_edge_litert", absent, ""),  # as on Pi OS bookworm: no ai-edge-litert wheel
        (runtime, "", BROKEN_RUNTIME[where]),
    ]:
        (site / package).mkdir(parents=True, exist_ok=True)
        (site / package / "__init__.py").write_text(init)
        (site / package / "interpreter.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parents[1])])}
    sample = Path(__file__).parents[1] / "samples" / "one-face.mp4"
    for mode in ("--check-config", "--no-realtime"):
        result = subprocess.run(
            [sys.executable, "-m", "device", mode, "--model-path", str(shipped_model),
             "--camera-max-frames", "1", "--input", str(sample)],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        lines = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
        assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result
        assert f"the TFLite runtime {runtime} is installed but fails (" in lines[0], lines
        assert fix in lines[0], lines
