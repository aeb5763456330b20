"""The tiny model's set-up that many tests share: seconds-long runs on the small data."""

from __future__ import annotations

from pathlib import Path

#: The tiny encoder as a ``model`` config (for ``build_model`` and logged-model configs).
TINY_MODEL_CFG = {
    "name": "tiny",
    "encoder_name": "tiny",
    "dropout": 0.1,
    "framing": "multilabel",
    "aggregation": "max",
    "max_length": 48,
}


def tiny_overrides(
    small_data: tuple[Path, Path], uri: str, *, system_metrics_interval: int = 5
) -> list[str]:
    """``psy-agents train`` overrides: the tiny model, two epochs of two steps, tracked at
    ``uri``, every step logged."""
    posts, ann = small_data
    return [
        "model=tiny",
        "model.max_length=64",
        "training.num_epochs=2",
        "training.batch_size=16",
        "training.logging_steps=1",
        f"training.system_metrics_interval={system_metrics_interval}",
        f"data.posts_path={posts}",
        f"data.annotations_path={ann}",
        f"mlflow.tracking_uri={uri}",
        "progress=false",
    ]
