"""Classification metrics in plain numpy: accuracy, macro recall, per-class precision/recall/F1, confusion."""

from __future__ import annotations

import numpy as np


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """Accuracy, macro recall, the confusion matrix (rows true, columns predicted) and per-class P/R/F1.

    Macro recall is the unweighted mean of the per-class recalls of the classes present (the balanced accuracy
    of scikit-learn's ``balanced_accuracy_score``): a model that calls everything the majority class scores
    1/classes on it, however large that class.
    """
    n = len(names)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(names):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(confusion[i].sum()),
        }
    present = [m["recall"] for m in per_class.values() if m["support"]]
    return {
        "accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        "macro_recall": round(float(np.mean(present)) if present else 0.0, 4),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": names,
    }


def format_report(metrics: dict) -> str:
    """A plain-text table of the metrics for the terminal."""
    lines = [
        f"accuracy {metrics['accuracy']:.4f}  macro recall {metrics['macro_recall']:.4f}",
        f"{'class':<10}{'prec':>8}{'recall':>8}{'f1':>8}{'n':>7}",
    ]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['support']:>7}")
    return "\n".join(lines)
