"""What the Trainer needs to know about a task: how to score, count and judge a batch.

The Trainer is generic (the spec's Trainer takes any model, loader and criterion); a task
tells it how to turn a batch's model output and labels into a loss, a running accuracy
(on the device: no sync), probabilities, and the epoch's metrics.

* :class:`ClassificationTask` (the default): one label per example, softmax over classes,
  ``criterion(logits, labels)``; macro F1 over the classes.
* :class:`CriteriaTask`: nine yes/no labels per post, sigmoid per criterion, the criterion
  gets the whole model output (post and sentence scores); per-criterion F1 at thresholds
  tuned on the evaluated split, per-criterion AUPRC, macro and micro F1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from psy_agents_noaug.training.metrics import (
    THRESHOLD_TOLERANCE,
    classification_metrics,
    criteria_metrics,
    tune_thresholds,
)

__all__ = ["ClassificationTask", "CriteriaTask", "Task", "logits_of"]

Loss = Callable[..., torch.Tensor]


def logits_of(output: Any) -> torch.Tensor:
    """The model's logits: the output itself, or its ``.logits``."""
    return output.logits if hasattr(output, "logits") else output


class ClassificationTask:
    """Single-label classification (binary or multi-class), softmax probabilities."""

    def targets(self, labels: Any) -> torch.Tensor:
        return labels

    def count(self, labels: Any) -> int:
        return int(labels.shape[0])

    def loss(self, criterion: Loss, output: Any, labels: Any) -> torch.Tensor:
        return criterion(logits_of(output).float(), labels)

    def correct(self, output: Any, labels: Any) -> tuple[torch.Tensor, int]:
        """(correct decisions as a device tensor, decisions made)."""
        return (logits_of(output).detach().argmax(dim=-1) == labels).sum(), int(labels.shape[0])

    def probabilities(self, output: Any) -> torch.Tensor:
        return torch.softmax(logits_of(output).float(), dim=-1)

    def empty_probabilities(self, device: torch.device) -> torch.Tensor:
        return torch.zeros((0, 2), device=device)

    def metrics(self, targets: np.ndarray, probs: np.ndarray, prefix: str) -> dict[str, float]:
        return classification_metrics(targets, probs, prefix=prefix)

    def checkpoint_state(self) -> dict[str, Any]:
        """What the task adds to a checkpoint (and reads back on resume)."""
        return {}

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`checkpoint_state` wrote."""


Task = ClassificationTask


class CriteriaTask(ClassificationTask):
    """Nine yes/no criteria per post: sigmoid scores, thresholds tuned per criterion.

    Args:
        names: The criteria ids, in output order (``A.1`` … ``A.9``).
        tune: Tune each criterion's decision threshold on every evaluated split (the
            validation split while training); False keeps :attr:`thresholds` fixed
            (evaluating a trained model on the test split).
        thresholds: Starting thresholds (default 0.5 each).
        tolerance: F1 within this of the best counts as a tie when tuning (ties go to the
            threshold nearest 0.5; see :func:`~.metrics.tune_thresholds`).
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        tune: bool = True,
        thresholds: Sequence[float] | None = None,
        tolerance: float = THRESHOLD_TOLERANCE,
    ) -> None:
        self.names = tuple(names)
        self.tune = tune
        self.tolerance = tolerance
        self.thresholds = list(thresholds) if thresholds is not None else [0.5] * len(names)
        #: The last evaluated split's (labels, probabilities), for figures.
        self.last_predictions: tuple[np.ndarray, np.ndarray] | None = None
        if len(self.thresholds) != len(self.names):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.names)} criteria")

    def targets(self, labels: Any) -> torch.Tensor:
        return labels["posts"] if isinstance(labels, dict) else labels

    def count(self, labels: Any) -> int:
        return int(self.targets(labels).shape[0])

    def loss(self, criterion: Loss, output: Any, labels: Any) -> torch.Tensor:
        return criterion(output, labels)

    def correct(self, output: Any, labels: Any) -> tuple[torch.Tensor, int]:
        targets = self.targets(labels)
        decided = logits_of(output).detach() >= 0.0  # probability 0.5
        return (decided == (targets >= 0.5)).sum(), int(targets.numel())

    def probabilities(self, output: Any) -> torch.Tensor:
        return torch.sigmoid(logits_of(output).float())

    def empty_probabilities(self, device: torch.device) -> torch.Tensor:
        return torch.zeros((0, len(self.names)), device=device)

    def metrics(self, targets: np.ndarray, probs: np.ndarray, prefix: str) -> dict[str, float]:
        self.last_predictions = (targets, probs)
        if self.tune:
            self.thresholds = tune_thresholds(targets, probs, tolerance=self.tolerance)
        return criteria_metrics(targets, probs, self.names, self.thresholds, prefix=prefix)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"thresholds": dict(zip(self.names, map(float, self.thresholds), strict=True))}

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        saved = state.get("thresholds")
        if saved:
            self.thresholds = [float(saved.get(name, 0.5)) for name in self.names]
