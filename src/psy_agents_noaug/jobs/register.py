"""The `register` job: put a training run's model into the Model Registry.

A training run logs its best checkpoint as an MLflow 3 logged model; the new version
points at that model (one copy of the files). A run without one (trained before logged
models, or whose model waited in a journal) gets one from its checkpoint first: the model
is rebuilt from the config inside it (encoder from its Hugging Face config, no download)
and logged. Versions get tags (task, encoder, the checkpoint's metric) and a description.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from psy_agents_noaug.models.encoders import load_tokenizer
from psy_agents_noaug.models.factory import model_from_checkpoint
from psy_agents_noaug.models.serving import MODEL_NAME, log_criteria_model
from psy_agents_noaug.registry.versions import canonical_stage, register_logged_model
from psy_agents_noaug.training.checkpoints import (
    CHECKPOINT_ARTIFACT,
    CheckpointError,
    download_run_checkpoint,
)
from psy_agents_noaug.training.recipe import encoding_spec

_REQUIRED_MODEL_KEYS = ("encoder_name", "dropout", "max_length")


def register_from_run(
    run_id: str,
    name: str,
    stage: str | None,
    tracking_uri: str,
    *,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    archive_existing: bool = True,
) -> ModelVersion:
    """Register the model of a training run as a new version of ``name``.

    Args:
        run_id: A training run with ``checkpoints/best_checkpoint.pt``.
        name: Registered model name (created on first use).
        stage: ``"Staging"``, ``"Production"``, ``"Archived"`` or ``None``; Staging
            and Production also set the alias ``staging``/``production``.
        tracking_uri: The store holding the run (and the registry).
        tags: Extra version tags, on top of ``task``, ``encoder`` and the checkpoint's metric.
        description: Version description; default says task, encoder, metric and run.
        aliases: Extra aliases for the new version.
        archive_existing: Archive the versions already in ``stage``.

    Returns:
        The new, promoted model version.

    Raises:
        ValueError: Unknown stage, a run without a best checkpoint, or a
            checkpoint without the config needed to rebuild the model.

    Example:
        >>> mv = register_from_run(run_id, "criteria_classifier", "Production",  # doctest: +SKIP
        ...                        "sqlite:///mlflow.db")
        >>> mv.tags["f1_macro"]  # doctest: +SKIP
        '0.8123'
    """
    canonical_stage(stage)  # fail before downloading anything
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    checkpoint = load_run_checkpoint(client, run_id)
    config = checkpoint["config"]
    model_cfg = config["model"]
    task = str(config.get("task", {}).get("name", "criteria"))
    metric_name = str(checkpoint.get("metric_name", "val_f1_macro"))
    best = checkpoint.get("best_metric")
    version_tags = {"task": task, "encoder": str(model_cfg["encoder_name"])}
    if best is not None:
        version_tags[_metric_tag(metric_name)] = f"{float(best):.4f}"
    version_tags.update({str(k): str(v) for k, v in (tags or {}).items()})
    if description is None:
        description = _describe(task, model_cfg, metric_name, best, checkpoint, run_id)

    model_id = logged_model_of(client, run_id)
    if model_id is None:
        info = log_criteria_model(
            model_from_checkpoint(checkpoint),
            load_tokenizer(model_cfg["encoder_name"]),
            model_cfg,
            MODEL_NAME,
            run_id=run_id,
            tracking_uri=tracking_uri,
            step=int(checkpoint.get("epoch") or 0),
            encoding=encoding_spec(config),
            thresholds=checkpoint.get("thresholds"),
        )
        assert info.model_id is not None  # the store answered: it is a logged model
        model_id = info.model_id
    return register_logged_model(
        model_id,
        name,
        stage=stage,
        tags=version_tags,
        description=description,
        aliases=aliases,
        archive_existing=archive_existing,
        tracking_uri=tracking_uri,
        model_description=(
            f"DSM-5 criteria classifiers ({task}): one version per registered training run; "
            "posts in, nine decisions with their evidence sentences out."
        ),
    )


def logged_model_of(client: MlflowClient, run_id: str) -> str | None:
    """The newest READY logged model of a run, or None."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    return ready[0].model_id if ready else None


def load_run_checkpoint(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """Download and safely load a run's best checkpoint (``weights_only=True``).

    Raises:
        CheckpointError: No such run, no best checkpoint, or one without ``config.model``.
    """
    checkpoint = download_run_checkpoint(client, run_id)
    model_cfg = checkpoint.get("config", {}).get("model", {})
    missing = [k for k in _REQUIRED_MODEL_KEYS if k not in model_cfg]
    if missing:
        raise CheckpointError(
            f"{CHECKPOINT_ARTIFACT} of run {run_id} cannot rebuild the model: its "
            f"config.model lacks {missing}"
        )
    return checkpoint


def _metric_tag(metric_name: str) -> str:
    """``val_f1_macro`` → ``f1_macro`` (the tag the spec shows); other metrics keep their name."""
    return metric_name.removeprefix("val_")


def _describe(
    task: str,
    model_cfg: Mapping[str, Any],
    metric_name: str,
    best: Any,
    checkpoint: Mapping[str, Any],
    run_id: str,
) -> str:
    score = f" with {metric_name}={float(best):.4f}" if best is not None else ""
    epoch = checkpoint.get("epoch")
    at = f" at epoch {epoch}" if epoch is not None else ""
    return (
        f"{task} classifier ({model_cfg['encoder_name']}, {model_cfg.get('framing', 'multilabel')})"
        f"{score}{at}; best checkpoint of run {run_id}."
    )


__all__ = [
    "load_run_checkpoint",
    "logged_model_of",
    "register_from_run",
]
