"""The pictures and tables a training run leaves behind: curves, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.data import atomic_write


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[i, j] = how many examples of class i were predicted as class j."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def confusion_text(counts: np.ndarray, names: list[str], title: str) -> str:
    width = max(6, *(len(n) + 1 for n in names))
    header = "true \\ predicted".ljust(18) + "".join(n[:width - 1].rjust(width) for n in names)
    rows = [title, header]
    for name, row in zip(names, counts):
        rows.append(name[:17].ljust(18) + "".join(str(c).rjust(width) for c in row))
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    rows.append(f"accuracy {accuracy:.4f} on {counts.sum()} examples")
    return "\n".join(rows) + "\n"


def _save_figure(figure: Any, path: Path) -> None:
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, train and validation, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train", "train"), ("val", "validation")):
        losses = [r[f"{key}_loss"] for r in history]
        if any(v is not None for v in losses):
            left.plot(epochs, losses, label=label)
            right.plot(epochs, [r[f"{key}_accuracy"] for r in history], label=label)
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    _save_figure(figure, path)
    plt.close(figure)


def plot_confusion(counts: np.ndarray, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    axes.set_yticks(ticks, names)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        axes.text(j, i, str(value), ha="center", va="center", fontsize=7,
                  color="white" if value > threshold else "black")
    _save_figure(figure, path)
    plt.close(figure)


def write_reports(out: Path, metrics: dict, classes: list[str], labels: np.ndarray | None,
                  predictions: np.ndarray | None, split: str = "test") -> None:
    """curves.png always (when there are epochs); confusion.{png,txt} when labels exist."""
    config = metrics["config"]
    title = f"{config['preset']} preset on {config['data']}"
    if metrics["epochs"]:
        plot_curves(metrics["epochs"], out / "curves.png", title)
    if labels is not None and predictions is not None:
        counts = confusion_matrix(labels, predictions, len(classes))
        text = confusion_text(counts, classes, f"confusion matrix, {split} split ({title})")
        with atomic_write(out / "confusion.txt", "w") as handle:
            handle.write(text)
        plot_confusion(counts, classes, out / "confusion.png", f"{split}: {title}")
