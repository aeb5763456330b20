"""Checkpoints: where they live in a run, how they are written and read back, in one place.

A checkpoint is a plain dict (``torch.load(..., weights_only=True)`` reads it): the model's
weights, the epoch and step it was taken at, the metric that made it the best, and the
resolved config that rebuilds the model; the optimizer's state only when asked (resuming),
since for a MiniLM it doubles the file.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "CHECKPOINT_DIR",
    "CHECKPOINT_NAME",
    "CheckpointError",
    "checkpoint_from",
    "download_run_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "best_checkpoint.pt"
#: The best checkpoint's path inside a run's artifacts (the spec's run tree).
CHECKPOINT_ARTIFACT = f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}"
RUN_ID = re.compile(r"[0-9a-f]{32}")


class CheckpointError(ValueError):
    """A checkpoint that cannot be found or read: a user mistake, said in one line."""


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` so that a reader never sees half a file (write, then rename)."""
    tmp = path.with_suffix(".tmp")
    torch.save(dict(state), tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (no pickle beyond tensors and plain containers).

    Raises:
        CheckpointError: No such file, or it is not a checkpoint dict with
            ``model_state_dict``.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn, foreign or pickled-object file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path} is not a readable checkpoint: {reason}") from None
    if not isinstance(state, dict) or "model_state_dict" not in state:
        raise CheckpointError(f"{path} is not a psy-agents checkpoint (no model_state_dict)")
    return state


def download_run_checkpoint(client: Any, run_id: str) -> dict[str, Any]:
    """The best checkpoint of a training run, downloaded and loaded.

    Raises:
        CheckpointError: No such run, or it has no best checkpoint.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise CheckpointError(f"no run {run_id!r} in this tracking store: {exc.message}") from None
    names = {Path(a.path).name for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
    if CHECKPOINT_NAME not in names:
        raise CheckpointError(
            f"run {run_id} has no artifact {CHECKPOINT_ARTIFACT}; use a training run that "
            "finished at least one validation epoch"
        )
    with tempfile.TemporaryDirectory() as tmp:
        return load_checkpoint(client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, tmp))


def checkpoint_from(source: str, tracking_uri: str) -> dict[str, Any]:
    """A checkpoint named by its file's path or by its training run's id.

    Raises:
        CheckpointError: Neither an existing file nor a run of this store with a checkpoint.
    """
    if Path(source).is_file():
        return load_checkpoint(source)
    if RUN_ID.fullmatch(source):
        from mlflow.tracking import MlflowClient

        return download_run_checkpoint(MlflowClient(tracking_uri), source)
    raise CheckpointError(
        f"{source!r} is neither a checkpoint file nor a run id (32 hex characters)"
    )
