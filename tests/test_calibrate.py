"""Calibrated confidence: convert fits a temperature, the card carries it, the device applies it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convert.calibrate import fit_temperature, reliability
from device.errors import ModelError
from device.vision.classify import EmotionClassifier, apply_temperature, card_path_for
from device.vision.preprocess import normalize
from tests.test_classify import copy_model


def synthetic(temperature: float, count: int = 4000, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are calibrated once divided by ``temperature``: labels drawn from the calibrated ones."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (count, 7))
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in calibrated])
    overconfident = np.exp(logits * temperature)
    return (overconfident / overconfident.sum(axis=1, keepdims=True)).astype(np.float32), labels


def test_fit_recovers_the_temperature_and_removes_the_calibration_error() -> None:
    scores, labels = synthetic(temperature=2.0)
    fitted = fit_temperature(scores, labels)
    assert fitted == pytest.approx(2.0, rel=0.1)
    before, after = reliability(scores, labels), reliability(apply_temperature(scores, fitted), labels)
    assert before["ece"] > 0.1 and after["ece"] < 0.03
    assert sum(b["count"] for b in after["bins"]) == len(labels)


def test_temperature_keeps_the_top_class_and_sums_to_one() -> None:
    scores, _ = synthetic(temperature=1.0, count=50)
    for temperature in (0.5, 3.0):
        scaled = apply_temperature(scores, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(scaled.argmax(axis=1), scores.argmax(axis=1))
    assert apply_temperature(scores, 3.0).max() < scores.max() < apply_temperature(scores, 0.5).max()


def test_the_device_applies_the_cards_temperature(shipped_model: Path, tmp_path: Path) -> None:
    import cv2

    from tests.fixtures_model import FER_MINI

    files = sorted((FER_MINI / "test").glob("*/PrivateTest_*.jpg"))[::20]
    model, card_path = copy_model(shipped_model, tmp_path)
    card = json.loads(card_path.read_text())
    del card["calibration"]  # the model's own probabilities
    card_path.write_text(json.dumps(card))
    plain = EmotionClassifier(model)
    faces = normalize(
        np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]), plain.card.crop.normalization
    )[..., np.newaxis]
    raw = plain.classify(faces)
    card["calibration"] = {"temperature": 0.25}
    card_path.write_text(json.dumps(card))
    calibrated = EmotionClassifier(model)
    assert calibrated.card.temperature == 0.25
    np.testing.assert_allclose(calibrated.classify(faces), apply_temperature(raw, 0.25), atol=1e-6)
    assert calibrated.classify(faces).max(axis=1).mean() > raw.max(axis=1).mean()


@pytest.mark.parametrize("value", [0, -1.5, "warm", None, float("nan")])
def test_a_bad_temperature_is_refused_in_one_line(shipped_model: Path, tmp_path: Path, value: object) -> None:
    model, card_path = copy_model(shipped_model, tmp_path)
    card = json.loads(card_path.read_text())
    card["calibration"] = {"temperature": value}
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError) as err:
        EmotionClassifier(model)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(card_path_for(model))), message
    assert "calibration.temperature must be a number > 0" in message


@pytest.mark.slow  # the placeholder model, which a fresh clone builds first (~30 s): make test-slow
def test_converted_card_records_normalization_and_calibration(int8_model: Path) -> None:
    card = json.loads(card_path_for(int8_model).read_text())
    assert card["input"]["normalization"] == "equalize_hist"
    calibration = card["calibration"]
    assert calibration["temperature"] > 0 and calibration["fitted_on"] == "FER2013 PublicTest"
    assert 0 <= calibration["ece"] <= 1 and 0 <= calibration["ece_uncalibrated"] <= 1
    report = json.loads((int8_model.with_name("emotion-int8-report") / "report.json").read_text())
    assert set(report["labels_unchanged"]) >= {"brightness x0.4", "box shift 4 px", "jpeg quality 30"}
    assert all(0 <= share <= 1 for share in report["labels_unchanged"].values())
    for picture in ("confusion-fer2013.png", "reliability.png"):
        assert (int8_model.with_name("emotion-int8-report") / picture).stat().st_size > 1000
