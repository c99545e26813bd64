"""Fixtures: a placeholder emotion model, trained and converted by the project's own code, for tests only.

The model is trained for one epoch on the committed fer-mini faces, so its scores mean nothing; it exists so
that the device's classifier, the converter and the model card can be tested against a real flatbuffer.

Training and converting take about 40 s, so the result is kept in ``.cache/tiny-model/<key>/`` (git-ignored),
where the key is a hash of everything that makes it: the fer-mini faces, the sources of train/ and convert/,
the device's preprocess and classify modules, the arguments and the TensorFlow version. A change to any of
them builds a new one; ``MOODCAST_TEST_CACHE=0`` builds it afresh in a temporary folder every run. A fresh
clone (CI) has no cache, so only the slow suite asks for the placeholder: tests that need nothing but a model
the device loads use the committed one (``shipped_model``), and ``make test`` never trains.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FER_MINI = Path(__file__).parent / "fixtures" / "fer-mini"
TRAIN_ARGS = ["--epochs", "1", "--width", "8", "--precision", "float32", "--seed", "7"]
QUANTIZATIONS = ("int8", "float32")
SHIPPED_MODEL = ROOT / "models" / "emotion-int8.tflite"
CACHE_DIR = ROOT / ".cache" / "tiny-model"
# What the model is made from: a change to any of these files makes a new one.
INPUTS = [
    FER_MINI,
    ROOT / "train",
    ROOT / "convert",
    ROOT / "device" / "vision" / "preprocess.py",
    ROOT / "device" / "vision" / "classify.py",
    Path(__file__),
]


def convert_args(root: Path, quantization: str) -> list[str]:
    return [
        "--model", str(root / "train" / "model.keras"),
        "--data", str(FER_MINI),
        "--out", str(root / f"emotion-{quantization}.tflite"),
        "--quantization", quantization,
        "--max-drop", "1",  # a one-epoch model: this fixture is about the files, not the accuracy
    ]  # fmt: skip


def inputs_key() -> str:
    """A hash of the files, arguments and TensorFlow version the model is made from."""
    digest = hashlib.sha256()
    for top in INPUTS:
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(repr(TRAIN_ARGS).encode())
    for package in ("tensorflow-cpu", "tensorflow", "keras"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{package}={metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def build(root: Path) -> None:
    """Train and convert into ``root`` through the CLIs' own ``main`` (saves a TensorFlow start-up each)."""
    import convert.__main__ as convert_cli
    import train.__main__ as train_cli

    assert train_cli.main(["--data", str(FER_MINI), "--out", str(root / "train"), *TRAIN_ARGS]) == 0
    # In root, the default crop calibration (models/crop.json) is absent: the card records zeros and says so.
    with contextlib.chdir(root):
        for quantization in QUANTIZATIONS:
            assert convert_cli.main(convert_args(root, quantization)) == 0


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``train/`` (``python -m train`` output) and ``emotion-{int8,float32}.tflite`` + cards.

    The CLIs as subprocesses are tested in test_train.py and test_convert.py. Treat the folder as read-only:
    it is shared by every later run with the same inputs.
    """
    if os.environ.get("MOODCAST_TEST_CACHE", "1") == "0":
        root = tmp_path_factory.mktemp("tiny-model")
        build(root)
        return root
    cached = CACHE_DIR / inputs_key()
    if all((cached / f"emotion-{q}.tflite").is_file() for q in QUANTIZATIONS):
        return cached
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE_DIR))
    try:
        build(staging)
        # atomic: a run beside this one sees all of it or none; if one got there first, theirs is as good
        with contextlib.suppress(OSError):
            staging.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


@pytest.fixture(scope="session")
def int8_model(tiny_model_dir: Path) -> Path:
    """The full-integer placeholder model; its card lies beside it."""
    return tiny_model_dir / "emotion-int8.tflite"


@pytest.fixture(scope="session")
def float_model(tiny_model_dir: Path) -> Path:
    """The float32 placeholder model; its card lies beside it."""
    return tiny_model_dir / "emotion-float32.tflite"


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The committed int8 model (``models/emotion-int8.tflite``, the daemon's default) with its card: for
    tests that need a real model the device loads, not one this checkout's train/ and convert/ made."""
    return SHIPPED_MODEL


def run_train(*argv: str | Path) -> int:
    """``python -m train`` in this process, with ``argv`` as its arguments; its exit status."""
    import train.__main__ as train_cli

    return train_cli.main([str(a) for a in argv])


def write_run_json(*argv: str | Path) -> Path:
    """The run.json that ``python -m train`` with ``argv`` writes as its run starts, in its ``--out`` (made
    here if need be), with the SHA-256 of its ``--init`` file, which must exist; the file's path."""
    from train.__main__ import parse_args
    from train.run_folder import SETTINGS_FILE, settings, write_settings
    from train.trained import model_sha256

    args = parse_args([str(a) for a in argv])
    args.out.mkdir(parents=True, exist_ok=True)
    init_sha256 = None if args.init is None else model_sha256("--init", args.init)
    write_settings(args.out, settings(args), init_sha256)
    return args.out / SETTINGS_FILE


def run_train_stopped_after_first_epoch(monkeypatch: pytest.MonkeyPatch, *argv: str | Path) -> None:
    """``python -m train`` in this process, stopped as an interruption would stop it once its first epoch
    is finished and backed up (after BackupAndRestore's save): the run folder holds one epoch to resume."""
    import keras

    import train.fit as train_fit

    class Interrupt(Exception):
        pass

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            raise Interrupt  # the last callback: after BackupAndRestore has saved epoch 1

    real_callbacks = train_fit.callbacks
    with monkeypatch.context() as patched:
        patched.setattr(train_fit, "callbacks", lambda args: [*real_callbacks(args), StopAfterFirstEpoch()])
        with pytest.raises(Interrupt):
            run_train(*argv)


@pytest.fixture
def float32_policy() -> Iterator[None]:
    """``train.main`` sets Keras's global precision policy; leave it as float32 for the tests after."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")
