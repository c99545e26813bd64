"""Fixtures: a placeholder emotion model, trained and converted by the project's own code, for tests only.

The model is trained for one epoch on the committed fer-mini faces, so its scores mean nothing; it exists so
that the device's classifier, the converter and the model card can be tested against a real flatbuffer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FER_MINI = Path(__file__).parent / "fixtures" / "fer-mini"
TRAIN_ARGS = ["--epochs", "1", "--width", "8", "--precision", "float32", "--seed", "7"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``train/`` (``python -m train`` output) and ``emotion-{int8,float32}.tflite`` + cards.

    Training and conversion run in this process through the CLIs' own ``main`` (saves a TensorFlow start-up
    each); the CLIs as subprocesses are tested in test_train.py and test_convert.py.
    """
    import convert.__main__ as convert_cli
    import train.__main__ as train_cli

    root = tmp_path_factory.mktemp("tiny-model")
    assert train_cli.main(["--data", str(FER_MINI), "--out", str(root / "train"), *TRAIN_ARGS]) == 0
    for quantization in ("int8", "float32"):
        argv = [
            "--model", str(root / "train" / "model.keras"),
            "--data", str(FER_MINI),
            "--out", str(root / f"emotion-{quantization}.tflite"),
            "--quantization", quantization,
            "--crop", str(root / "no-crop.json"),  # absent: the card records zeros and says so
            "--max-drop", "1",  # a one-epoch model: this fixture is about the files, not the accuracy
        ]  # fmt: skip
        assert convert_cli.main(argv) == 0
    return root


@pytest.fixture(scope="session")
def int8_model(tiny_model_dir: Path) -> Path:
    """The full-integer placeholder model; its card lies beside it."""
    return tiny_model_dir / "emotion-int8.tflite"


@pytest.fixture(scope="session")
def float_model(tiny_model_dir: Path) -> Path:
    """The float32 placeholder model; its card lies beside it."""
    return tiny_model_dir / "emotion-float32.tflite"
