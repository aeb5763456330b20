"""Validation metrics for binary/multi-class classification (scikit-learn does the maths)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score


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


def per_class_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """F1 of the positive class (used per criterion by `evaluate`)."""
    return float(f1_score(labels, preds, average="binary", zero_division=0))
