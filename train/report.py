"""The report's pictures and files: confusion matrices, training curves, reliability diagram."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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


def plot_reliability(curves: dict[str, dict], path: Path, title: str) -> None:
    """Draw reliability diagrams to ``path`` (PNG): accuracy against mean confidence per bin, one line each.

    ``curves`` maps a legend name to ``convert.calibrate.reliability``'s result (``{"ece", "bins": [...]}``).
    A calibrated model lies on the diagonal.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, curve in curves.items():
        bins = curve["bins"]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{name} (ECE {curve['ece']:.3f})",
        )
    ax.set_xlabel("confidence (top score)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
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
