"""Figures of a criteria model on one split, to look at in the MLflow UI.

``mlflow.evaluate`` does not do multi-label, so these are drawn here (matplotlib, saved as
PNG, which the MLflow UI shows inline): per criterion, the precision-recall curve with the
chosen operating point, the confusion matrix at the tuned threshold, and the F1 of every
threshold tried (the sweep that chose it); and one reliability diagram of all nine.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from psy_agents_noaug.training.metrics import THRESHOLD_GRID

__all__ = ["FIGURE_NAMES", "write_figures"]

#: File names (without the split prefix) of the figures :func:`write_figures` writes.
FIGURE_NAMES = ("pr_curves", "confusion", "threshold_sweep", "reliability")
_GRID = (3, 3)


def _axes(title: str):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows, cols = _GRID
    figure, axes = plt.subplots(rows, cols, figsize=(11, 10))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.92, hspace=0.45, wspace=0.3)
    figure.suptitle(title)
    return figure, axes.ravel()


def write_figures(
    labels: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    thresholds: Sequence[float],
    out_dir: Path,
    *,
    split: str,
) -> list[Path]:
    """Write the four figures for one split; returns their paths (``<split>_<name>.png``).

    Args:
        labels: ``[posts, criteria]`` 0/1.
        probs: ``[posts, criteria]`` probabilities.
        names: Criterion ids, in column order.
        thresholds: Each criterion's decision threshold.
        out_dir: Folder to write into.
        split: ``val`` or ``test`` (in the titles and the file names).
    """
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    y = labels >= 0.5
    written = []

    figure, axes = _axes(f"Precision-recall per criterion ({split} split)")
    for axis, column, name in zip(axes, range(len(names)), names, strict=False):
        truth, score = y[:, column], probs[:, column]
        if truth.any():
            precision, recall, _ = precision_recall_curve(truth, score)
            axis.plot(recall, precision)
            chosen = score >= thresholds[column]
            tp = float((chosen & truth).sum())
            axis.plot(
                tp / truth.sum(), tp / max(chosen.sum(), 1), "o", label=f"t={thresholds[column]:g}"
            )
            axis.legend(loc="lower left", fontsize=8)
        axis.set(title=f"{name} ({int(truth.sum())} positives)", xlim=(0, 1), ylim=(0, 1.05))
        axis.set_xlabel("recall", fontsize=8)
        axis.set_ylabel("precision", fontsize=8)
    written.append(_save(figure, out_dir / f"{split}_pr_curves.png"))

    figure, axes = _axes(f"Confusion at the tuned thresholds ({split} split)")
    for axis, column, name in zip(axes, range(len(names)), names, strict=False):
        matrix = confusion_matrix(
            y[:, column], probs[:, column] >= thresholds[column], labels=[0, 1]
        )
        axis.imshow(matrix, cmap="Blues")
        for (row, col), value in np.ndenumerate(matrix):
            axis.text(col, row, str(value), ha="center", va="center")
        axis.set(title=name, xticks=[0, 1], yticks=[0, 1])
        axis.set_xticklabels(["no", "yes"])
        axis.set_yticklabels(["no", "yes"])
        axis.set_xlabel("predicted", fontsize=8)
        axis.set_ylabel("true", fontsize=8)
    written.append(_save(figure, out_dir / f"{split}_confusion.png"))

    figure, axes = _axes(f"F1 of each threshold tried ({split} split)")
    for axis, column, name in zip(axes, range(len(names)), names, strict=False):
        scores = [
            f1_score(y[:, column], probs[:, column] >= t, zero_division=0) for t in THRESHOLD_GRID
        ]
        axis.plot(THRESHOLD_GRID, scores)
        axis.axvline(thresholds[column], linestyle="--", color="grey")
        axis.set(title=f"{name}: chosen {thresholds[column]:g}", xlim=(0, 1), ylim=(0, 1.05))
        axis.set_xlabel("threshold", fontsize=8)
        axis.set_ylabel("F1", fontsize=8)
    written.append(_save(figure, out_dir / f"{split}_threshold_sweep.png"))

    figure, axis = plt.subplots(figsize=(6, 6))
    figure.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.92)
    edges = np.linspace(0.0, 1.0, 11)
    flat_p, flat_y = probs.ravel(), y.ravel()
    centres, observed, sizes = [], [], []
    for low, high in itertools.pairwise(edges):
        inside = (flat_p >= low) & (flat_p < high if high < 1 else flat_p <= high)
        if inside.any():
            centres.append(float(flat_p[inside].mean()))
            observed.append(float(flat_y[inside].mean()))
            sizes.append(int(inside.sum()))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axis.plot(centres, observed, "o-", label="model")
    for x, yv, n in zip(centres, observed, sizes, strict=True):
        axis.annotate(str(n), (x, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.set(
        title=f"Reliability, all criteria ({split} split)",
        xlabel="mean predicted probability",
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axis.legend(loc="upper left")
    written.append(_save(figure, out_dir / f"{split}_reliability.png"))
    return written


def _save(figure, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
