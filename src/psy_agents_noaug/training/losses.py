"""The criteria loss: post labels, plus the evidence sentences where annotations say which.

ReDSM5 says both *whether* a post shows a criterion and *which sentence* shows it. The
post term trains the aggregated score; the sentence term trains each sentence's own
score (evidence sentences positive, every other sentence negative), which teaches the
model what evidence looks like instead of what posts with evidence look like. Rare
criteria are weighted up (``pos_weight``, from the training split) so that a criterion
with 35 positives is not learned as "never".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["CriteriaLoss", "positive_weights"]

#: Up-weighting beyond this makes a rare criterion's few examples dominate and overfit.
MAX_POS_WEIGHT = 10.0


def positive_weights(labels: np.ndarray, *, limit: float = MAX_POS_WEIGHT) -> list[float]:
    """``negatives / positives`` per column of a 0/1 matrix, within ``[1, limit]``."""
    labels = np.asarray(labels, dtype=float)
    if labels.size == 0:
        return [1.0] * (labels.shape[1] if labels.ndim == 2 else 0)
    positives = labels.sum(axis=0)
    negatives = labels.shape[0] - positives
    ratio = np.where(positives > 0, negatives / np.maximum(positives, 1.0), 1.0)
    return [float(v) for v in np.clip(ratio, 1.0, limit)]


class CriteriaLoss(nn.Module):
    """Binary cross-entropy on post scores, plus ``sentence_weight`` × on sentence scores.

    Args:
        pos_weight: Per-criterion weight of positive posts (None: 1).
        sentence_pos_weight: Per-criterion weight of evidence sentences (None: 1).
        sentence_weight: Weight of the sentence term (0: post labels only).
    """

    def __init__(
        self,
        pos_weight: Sequence[float] | None = None,
        sentence_pos_weight: Sequence[float] | None = None,
        *,
        sentence_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if sentence_weight < 0:
            raise ValueError(f"sentence_weight must be >= 0, got {sentence_weight}")
        self.sentence_weight = float(sentence_weight)
        self.register_buffer("pos_weight", _tensor(pos_weight), persistent=False)
        self.register_buffer("sentence_pos_weight", _tensor(sentence_pos_weight), persistent=False)

    def forward(self, output: Any, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = output.logits.float()
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, labels["posts"], pos_weight=self._weight(self.pos_weight, logits)
        )
        if self.sentence_weight:
            read = output.sentence_read  # a sentence cut by the window cap teaches nothing
            sentences = output.sentence_logits.float()[read]
            if sentences.numel():
                loss = loss + self.sentence_weight * nn.functional.binary_cross_entropy_with_logits(
                    sentences,
                    labels["sentences"][read],
                    pos_weight=self._weight(self.sentence_pos_weight, sentences),
                )
        return loss

    @staticmethod
    def _weight(weight: Any, like: torch.Tensor) -> torch.Tensor | None:
        return None if weight is None or weight.numel() == 0 else weight.to(like.device)


def _tensor(values: Sequence[float] | None) -> torch.Tensor | None:
    return None if values is None else torch.tensor(list(values), dtype=torch.float32)
