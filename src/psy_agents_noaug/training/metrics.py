"""Validation metrics (scikit-learn does the maths).

* :func:`classification_metrics`: single-label classification (the generic Trainer).
* :func:`criteria_metrics`: nine yes/no criteria per post: F1, precision, recall, AUPRC
  and AUROC per criterion; their macro means; micro F1 over every decision.
* :func:`tune_thresholds`: the decision threshold per criterion that (nearly) maximises
  its F1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

#: Thresholds tried per criterion: a coarse grid generalises better than the exact
#: probabilities of a few validation positives.
THRESHOLD_GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, *, prefix: str = "val_"
) -> dict[str, float]:
    """Accuracy, macro F1/precision/recall and AUROC from labels and class probabilities.

    AUROC is NaN when the labels hold a single class (it is undefined there).
    """
    preds = probs.argmax(axis=1)
    out = {
        "accuracy": accuracy_score(labels, preds),
        "f1_macro": f1_score(labels, preds, average="macro", zero_division=0),
        "precision_macro": precision_score(labels, preds, average="macro", zero_division=0),
        "recall_macro": recall_score(labels, preds, average="macro", zero_division=0),
        "auroc": _auroc(labels, probs),
    }
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


def _auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    if len(np.unique(labels)) < 2:
        return math.nan
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr"))


#: F1 within this of a criterion's best counts as a tie, and ties go to the threshold nearest
#: 0.5. 0 keeps the best; a small validation split (few positives of a criterion) is better
#: served by 0.1-0.2: its exact best is noise, often at an extreme (0.10, 0.85).
THRESHOLD_TOLERANCE = 0.0


def tune_thresholds(
    labels: np.ndarray, probs: np.ndarray, *, tolerance: float = THRESHOLD_TOLERANCE
) -> list[float]:
    """Per column, the grid threshold nearest 0.5 whose F1 is within ``tolerance`` of the
    best (no positive in the column: 0.5)."""
    thresholds = []
    for column in range(labels.shape[1]):
        y = labels[:, column] >= 0.5
        if not y.any():
            thresholds.append(0.5)
            continue
        scores = [f1_score(y, probs[:, column] >= t, zero_division=0) for t in THRESHOLD_GRID]
        best = max(scores)
        near = [t for t, f1 in zip(THRESHOLD_GRID, scores, strict=True) if f1 >= best - tolerance]
        thresholds.append(float(min(near, key=lambda t: (abs(t - 0.5), t))))
    return thresholds


def criteria_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    thresholds: Sequence[float],
    *,
    prefix: str = "val_",
) -> dict[str, float]:
    """Per-criterion and overall metrics of [posts, criteria] labels and probabilities.

    Returns ``<prefix>f1_<name>`` and ``<prefix>auprc_<name>`` per criterion and
    ``<prefix>f1_macro``, ``f1_micro``, ``precision_macro``, ``recall_macro``,
    ``auprc_macro``, ``auroc``, ``accuracy``.
    AUPRC/AUROC of a criterion with no positive (or no negative) are NaN, and left out of
    the macro means.
    """
    y = labels >= 0.5
    decided = probs >= np.asarray(thresholds)[None, :]
    out: dict[str, float] = {}
    f1s, precisions, recalls, auprcs, aurocs = [], [], [], [], []
    for column, name in enumerate(names):
        truth, pred, score = y[:, column], decided[:, column], probs[:, column]
        f1 = float(f1_score(truth, pred, zero_division=0))
        precision = float(precision_score(truth, pred, zero_division=0))
        recall = float(recall_score(truth, pred, zero_division=0))
        auprc = float(average_precision_score(truth, score)) if truth.any() else math.nan
        auroc = float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else math.nan
        out[f"f1_{name}"], out[f"auprc_{name}"] = f1, auprc
        f1s.append(f1)
        precisions.append(precision)
        recalls.append(recall)
        auprcs.append(auprc)
        aurocs.append(auroc)
    out["f1_macro"] = float(np.mean(f1s))
    out["f1_micro"] = float(f1_score(y.ravel(), decided.ravel(), zero_division=0))
    out["precision_macro"] = float(np.mean(precisions))
    out["recall_macro"] = float(np.mean(recalls))
    out["auprc_macro"] = _nanmean(auprcs)
    out["auroc"] = _nanmean(aurocs)
    out["accuracy"] = float((y == decided).mean()) if y.size else math.nan
    return {f"{prefix}{k}": v for k, v in out.items()}


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.mean(finite))


def per_class_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """F1 of the positive class."""
    return float(f1_score(labels, preds, average="binary", zero_division=0))
