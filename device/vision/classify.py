"""EmotionClassifier: a TFLite model plus its model card, all faces of a frame in one invoke."""

from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device.const import CARD_SCHEMA_VERSION, RUNTIMES
from device.errors import ModelError
from device.vision.preprocess import CropSpec, check_normalization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    """The parts of ``models/*.json`` that the device relies on."""

    name: str
    labels: tuple[str, ...]
    height_px: int
    width_px: int
    channels: int
    scale: str
    crop: CropSpec
    quantization: str
    metrics: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0

    @property
    def accuracy(self) -> float | None:
        """Accuracy of the model on its report split, or None when the card has none."""
        value = self.metrics.get("accuracy")
        return float(value) if value else None


def card_path_for(model_path: Path) -> Path:
    """The card lives beside the model: ``emotion-int8.tflite`` → ``emotion-int8.json``."""
    return Path(model_path).with_suffix(".json")


def load_card(path: Path) -> ModelCard:
    """Read and check a model card; raise ModelError (one line) naming the file and the field at fault, or
    why the file cannot be read (missing, a folder, no permission)."""
    content = _read_file(
        Path(path), "model card", "it must lie beside the .tflite file", "the model card (a .json file)"
    )
    try:
        raw = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: model card is not valid JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("schema") != CARD_SCHEMA_VERSION:
        raise ModelError(f"{path}: expected model card schema {CARD_SCHEMA_VERSION}")
    labels = raw.get("labels")
    if not labels or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: the card has no labels; expected a list of class names")
    spec = raw.get("input") or {}
    try:
        height, width, channels = int(spec["height"]), int(spec["width"]), int(spec["channels"])
        crop = spec.get("crop") or {}
        crop_spec = CropSpec(
            width_px=width,
            height_px=height,
            margin_frac=float(crop.get("margin_frac", 0.0)),
            offset_x_frac=float(crop.get("offset_x_frac", 0.0)),
            offset_y_frac=float(crop.get("offset_y_frac", 0.0)),
            normalization=str(spec.get("normalization", "none")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path}: input needs integer height, width and channels ({err})") from None
    if spec.get("scale") != "0..1":
        raise ModelError(f"{path}: input.scale {spec.get('scale')!r} is not supported; expected '0..1'")
    try:
        check_normalization(crop_spec.normalization)
    except ValueError as err:
        raise ModelError(f"{path}: input.{err}") from None
    temperature = _temperature(path, raw.get("calibration"))
    return ModelCard(
        name=str(raw.get("name", Path(path).stem)),
        labels=tuple(labels),
        height_px=height,
        width_px=width,
        channels=channels,
        scale=spec["scale"],
        crop=crop_spec,
        quantization=str(raw.get("quantization", "unknown")),
        metrics=raw.get("metrics") or {},
        temperature=temperature,
    )


def _temperature(path: Path, calibration: object) -> float:
    """The card's ``calibration.temperature`` (1.0 without calibration); ModelError unless it is > 0."""
    if calibration is None:
        return 1.0
    value = calibration.get("temperature") if isinstance(calibration, dict) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ModelError(f"{path}: calibration.temperature must be a number > 0, got {value!r}")
    return float(value)


def apply_temperature(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scale probabilities ``(N, classes)``: softmax(log p / T), each row summing to 1.

    Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the logits by
    one scalar T fitted on held-out data; since ``p ∝ exp(z)``, ``softmax(z / T) = p^(1/T) / Σ p^(1/T)``,
    which works on the model's probabilities directly (a class the int8 output rounds to 0 stays 0).
    T > 1 softens, T < 1 sharpens; the top class never changes.
    """
    if temperature == 1.0 or not len(scores):
        return scores
    powered = np.power(np.maximum(scores, 0.0), np.float32(1.0 / temperature), dtype=np.float32)
    total = powered.sum(axis=1, keepdims=True)
    return np.divide(powered, total, out=np.full_like(powered, 1.0 / scores.shape[1]), where=total > 0)


def _read_file(path: Path, what: str, if_missing: str, expected: str) -> bytes:
    """The bytes of the model or its card; ModelError naming the real problem (missing, a folder, no
    permission), with ``if_missing`` and ``expected`` saying what to do."""
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, expected {expected}")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: {what} not found; {if_missing}") from None
    except PermissionError:
        raise ModelError(
            f"{path}: {what} is not readable by this user (permission denied); fix its permissions"
        ) from None
    except OSError as err:
        raise ModelError(f"{path}: {what} cannot be read ({err.strerror})") from None


def read_from(path: Path) -> str:
    """For a relative path, where it was looked for (the default model.path is relative: moodcast run from
    another folder does not find the shipped model), as a phrase with no punctuation around it, which each
    caller adds; "" for an absolute path."""
    return "" if path.is_absolute() else f"a relative path, looked for in {Path.cwd()}"


def not_tflite(path: Path, content: bytes) -> str:
    """One line when ``content`` (the file's bytes, or its first 8) is no TFLite flatbuffer, else ""."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        return f"{path}: not a TFLite flatbuffer (no TFL3 identifier)"
    return ""


def _runtime_failure(module_name: str, err: Exception) -> ModelError:
    """One line for a TFLite runtime that is installed but broken, usually one built against another NumPy:
    tflite-runtime 2.14 under NumPy 2 raises SystemError on import or when the Interpreter is made."""
    package = module_name.split(".")[0]
    detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
    fix = (
        "tflite-runtime 2.14 needs NumPy 1.x: pip install 'numpy<2', or install ai-edge-litert"
        if package == "tflite_runtime"
        else "reinstall it for this Python and NumPy: pip install --force-reinstall "
        + package.replace("_", "-")
    )
    return ModelError(
        f"the TFLite runtime {package} is installed but fails ({type(err).__name__}: {detail}); {fix}"
    )


def _interpreter_class() -> tuple[str, type]:
    """The first installed runtime of ``RUNTIMES``: its module name and Interpreter class."""
    for module_name in RUNTIMES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and (module_name + ".").startswith(err.name + "."):
                continue  # this runtime is not installed: try the next
            raise _runtime_failure(module_name, err) from None  # installed, but something it needs is not
        except Exception as err:  # a runtime built against another NumPy fails in many ways, ImportError too
            raise _runtime_failure(module_name, err) from None
        interpreter = getattr(module, "Interpreter", None)
        if not isinstance(interpreter, type):
            raise _runtime_failure(module_name, AttributeError(f"{module_name} has no Interpreter class"))
        logger.debug("TFLite runtime: %s", module_name)
        return module_name, interpreter
    raise ModelError("no TFLite runtime found; install ai-edge-litert (or tflite-runtime on Raspberry Pi OS)")


class EmotionClassifier:
    """Scores face batches with a TFLite model, quantizing int8 inputs and outputs by their tensors."""

    def __init__(self, model_path: Path, card_path: Path | None = None, threads: int = 1) -> None:
        model_path = Path(model_path)
        if_missing = "run 'make convert' or fix model.path"
        if where := read_from(model_path):
            if_missing = f"{where}; {if_missing}"
        content = _read_file(
            model_path,
            "model file",
            if_missing,
            "the .tflite model file; fix model.path",
        )
        if problem := not_tflite(model_path, content):  # a wrong file: its missing card is not the problem
            raise ModelError(problem)
        self.card = load_card(card_path or card_path_for(model_path))
        runtime, interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"{model_path}: the TFLite runtime rejected the model ({err})") from None
        except Exception as err:  # SystemError, ImportError: the runtime itself is broken, not the model
            raise _runtime_failure(runtime, err) from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_shapes(model_path)
        self._batch = 1
        self._takes_batches = self._resizes(2)
        if not self._takes_batches:
            logger.info("%s has a fixed batch of 1: faces are scored one an invoke", model_path)

    def _check_shapes(self, model_path: Path) -> None:
        card = self.card
        expected = (card.height_px, card.width_px, card.channels)
        got = tuple(int(d) for d in self._input["shape"][1:])
        if got != expected:
            raise ModelError(
                f"{model_path}: input tensor is {got} but the card says {expected}; "
                "convert the model again or use its own card"
            )
        classes = int(self._output["shape"][-1])
        if classes != len(card.labels):
            raise ModelError(
                f"{model_path}: output has {classes} classes but the card lists {len(card.labels)} labels"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, in output order, from the model card."""
        return self.card.labels

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's type (int8 for a full-integer model, float32 otherwise)."""
        return np.dtype(self._input["dtype"])

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Score a float32 batch ``(N, H, W, C)`` scaled 0..1; return probabilities ``(N, classes)``.

        They are temperature-scaled by the card's ``calibration.temperature`` (``apply_temperature``). All
        faces go in one invoke, or one an invoke for a model that takes a fixed batch of 1.

        Raises:
            ModelError: the runtime failed on the batch (one line; the daemon stops with it).
        """
        count = len(faces)
        if count == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if count > 1 and not self._takes_batches:
            return np.concatenate([self.classify(faces[i : i + 1]) for i in range(count)])
        try:
            if count != self._batch:
                self._resize(count)
            self._interpreter.set_tensor(self._input["index"], self._quantize(faces))
            self._interpreter.invoke()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"the TFLite runtime failed on a batch of {count}: {str(err).strip()}") from None
        raw = self._dequantize(self._interpreter.get_tensor(self._output["index"]))
        return apply_temperature(raw, self.card.temperature)

    def _resize(self, count: int) -> None:
        """Make the input a batch of ``count`` faces (raises the runtime's ValueError or RuntimeError)."""
        self._interpreter.resize_tensor_input(self._input["index"], [count, *self._input["shape"][1:]])
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = count

    def _resizes(self, count: int) -> bool:
        """True when the model scores a batch of ``count`` faces in one invoke. A model converted with its
        batch fixed to 1 (a reshape to ``[1, n]``) fails to prepare at any other: it ran until the first frame
        with two faces, then stopped the daemon."""
        try:
            self._resize(count)
            self._interpreter.invoke()
            return True
        except (ValueError, RuntimeError):
            return False
        finally:
            self._resize(1)

    def _quantize(self, faces: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype == np.float32:
            return faces.astype(np.float32, copy=False)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(faces / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.float32:
            return raw.copy()
        scale, zero_point = self._output["quantization"]
        return ((raw.astype(np.float32) - zero_point) * scale).astype(np.float32)
