"""Early stopping: track the best value of one metric and count epochs without progress."""

from __future__ import annotations

import math


class EarlyStopping:
    """Stop after `patience` epochs without improvement (patience 0 = never stop early).

    Example:
        >>> es = EarlyStopping(patience=1, mode="max")
        >>> [es.update(v) for v in (0.5, 0.6, 0.55)], es.should_stop
        ([True, True, False], True)
    """

    def __init__(self, patience: int = 0, mode: str = "max", min_delta: float = 0.0) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.bad_epochs = 0

    def is_better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when it is a new best."""
        if self.is_better(value):
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience
