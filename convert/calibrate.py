"""Calibrated confidence: fit one temperature on held-out faces, and measure expected calibration error.

Temperature scaling: Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern Neural Networks" (ICML).
Expected calibration error (ECE) and the reliability diagram: Naeini, Cooper & Hauskrecht, 2015, with the
15 equal-width confidence bins Guo et al. use.
"""

from __future__ import annotations

import numpy as np

from device.vision.classify import apply_temperature

ECE_BINS = 15
# The int8 output's smallest step is 1/256: a true class scored 0 is taken as half a step for the likelihood.
PROBABILITY_FLOOR = 1.0 / 512
TEMPERATURE_RANGE = (0.05, 20.0)


def negative_log_likelihood(scores: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean −log p(true class) after temperature scaling: ``scores`` ``(N, C)``, ``labels`` ``(N,)``."""
    scaled = apply_temperature(scores, temperature)
    return float(-np.log(np.maximum(scaled[np.arange(len(labels)), labels], PROBABILITY_FLOOR)).mean())


def fit_temperature(scores: np.ndarray, labels: np.ndarray, iterations: int = 60) -> float:
    """The temperature in ``TEMPERATURE_RANGE`` that minimises the NLL of ``labels`` under ``scores``.

    Golden-section search on log T: the NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T), so it
    has one minimum on the range. ``scores``: probabilities ``(N, C)``; ``labels``: class indices ``(N,)``.
    Raises ValueError on an empty set.
    """
    if not len(labels):
        raise ValueError("fit_temperature needs at least one face")
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(iterations):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(scores, labels, float(np.exp(a))) <= negative_log_likelihood(
            scores, labels, float(np.exp(b))
        ):
            high = b
        else:
            low = a
    return round(float(np.exp((low + high) / 2.0)), 4)


def reliability(scores: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error and the per-bin table of the reliability diagram.

    Each face falls in the bin of its top score (confidence, equal-width bins over 0..1); ECE is the
    face-weighted mean of |accuracy − mean confidence| over the bins. Returns ``{"ece", "bins": [{"low",
    "high", "count", "confidence", "accuracy"}, ...]}`` with empty bins left out.
    """
    confidence = scores.max(axis=1)
    correct = scores.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        mean_confidence, accuracy = float(confidence[inside].mean()), float(correct[inside].mean())
        ece += inside.sum() / len(labels) * abs(accuracy - mean_confidence)
        table.append(
            {
                "low": round(float(edges[b]), 4),
                "high": round(float(edges[b + 1]), 4),
                "count": int(inside.sum()),
                "confidence": round(mean_confidence, 4),
                "accuracy": round(accuracy, 4),
            }
        )
    return {"ece": round(float(ece), 4), "bins": table}
