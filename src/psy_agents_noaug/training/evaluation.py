"""Scoring a model on a loader: the Trainer's validation, ``evaluate`` and the benchmarks.

One function, so validation during training and evaluation of a finished model compute
the same thing: the loss (when a criterion is given) and the task's metrics, from every
rank's predictions under torchrun, with one device-to-host copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from psy_agents_noaug.training.distributed import all_reduce_sum, gather_cat

__all__ = ["collect_predictions", "evaluate_loader", "to_device"]


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside dicts) moved to the device; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def split_batch(batch: Any, device: torch.device) -> tuple[Any, Any]:
    """(model inputs, labels) of a dict batch with ``labels``, or an ``(inputs, labels)`` pair."""
    if isinstance(batch, Mapping):
        inputs = {k: to_device(v, device) for k, v in batch.items() if k != "labels"}
        return inputs, to_device(batch["labels"], device)
    inputs, labels = batch
    return to_device(inputs, device), to_device(labels, device)


def forward(model: Any, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


@torch.no_grad()
def collect_predictions(
    model: Any,
    loader: Any,
    task: Any,
    device: torch.device,
    *,
    criterion: Callable[..., torch.Tensor] | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(targets, probabilities, mean loss or NaN) over the loader, from every rank."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    n = 0
    all_probs, all_targets = [], []
    for batch in loader:
        inputs, labels = split_batch(batch, device)
        with autocast():
            output = forward(model, inputs)
        count = task.count(labels)
        if criterion is not None:
            loss_sum += task.loss(criterion, output, labels).float() * count
        n += count
        all_probs.append(task.probabilities(output))
        all_targets.append(task.targets(labels))
    if not all_probs:
        all_probs.append(task.empty_probabilities(device))
        all_targets.append(all_probs[0].new_zeros(all_probs[0].shape[:-1] or (0,)))
    totals = all_reduce_sum(torch.stack([loss_sum, torch.tensor(float(n), device=device)]))
    if totals[1].item() == 0:
        raise ValueError("the evaluation loader is empty")
    probs = gather_cat(torch.cat(all_probs).cpu()).numpy()
    targets = gather_cat(torch.cat(all_targets).cpu()).numpy()
    loss = float(totals[0].item() / totals[1].item()) if criterion is not None else float("nan")
    return targets, probs, loss


def evaluate_loader(
    model: Any,
    loader: Any,
    task: Any,
    device: torch.device,
    *,
    prefix: str = "val_",
    criterion: Callable[..., torch.Tensor] | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, float]:
    """The task's metrics (and ``<prefix>loss`` with a criterion) on a loader."""
    targets, probs, loss = collect_predictions(
        model, loader, task, device, criterion=criterion, autocast=autocast
    )
    metrics = task.metrics(targets, probs, prefix)
    if criterion is not None:
        metrics[f"{prefix}loss"] = loss
    return metrics
