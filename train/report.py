"""The evaluation report: accuracy, per-class precision/recall/F1, confusion matrix and curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    """Draw the row-normalised confusion matrix with counts to ``path`` (PNG)."""
    confusion = np.asarray(metrics["confusion"], float)
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    names = metrics["labels"]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(
            j,
            i,
            f"{int(count)}\n{share[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if share[i, j] > 0.5 else "black",
        )
    ax.set_title(f"{title} (accuracy {metrics['accuracy']:.1%})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history_csv: Path, path: Path) -> None:
    """Plot loss and accuracy per epoch from Keras's CSVLogger file to ``path`` (PNG)."""
    with history_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="PublicTest")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, metrics: dict, extra: dict) -> Path:
    """Write ``report.json`` (metrics plus run facts) and the confusion PNG; return the JSON path."""
    plot_confusion(metrics, out_dir / "confusion.png", f"{extra.get('split', '')}")
    path = out_dir / "report.json"
    path.write_text(json.dumps({**extra, **metrics}, indent=2) + "\n")
    return path


def write_json(path: Path, content: dict) -> None:
    """Write ``content`` as indented JSON to ``path``."""
    path.write_text(json.dumps(content, indent=2) + "\n")


def format_report(metrics: dict) -> str:
    """A plain-text table of the metrics for the terminal."""
    lines = [
        f"accuracy {metrics['accuracy']:.4f}  macro recall {metrics['macro_recall']:.4f}",
        f"{'class':<10}{'prec':>8}{'recall':>8}{'f1':>8}{'n':>7}",
    ]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['support']:>7}")
    return "\n".join(lines)
