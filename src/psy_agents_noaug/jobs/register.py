"""The `register` job: put a training run's best checkpoint into the Model Registry.

The checkpoint (``checkpoints/best_checkpoint.pt``) is a plain dict loaded with
``weights_only=True``; the model is rebuilt from the config inside it, with the
encoder built from its Hugging Face config (no download), logged into the same
run as the criteria pyfunc, and registered with tags and a description.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from transformers import AutoModel

from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.models.encoders import encoder_config, load_tokenizer
from psy_agents_noaug.models.serving import log_criteria_model
from psy_agents_noaug.registry.versions import canonical_stage, register_run_artifact

CHECKPOINT_ARTIFACT = "checkpoints/best_checkpoint.pt"
REGISTERED_ARTIFACT = "best_model"
"""Run folder of the pyfunc built from the best checkpoint; reused when registering again."""

_REQUIRED_MODEL_KEYS = ("encoder_name", "pooling", "dropout", "max_length")


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
    artifact_path: str = REGISTERED_ARTIFACT,
) -> ModelVersion:
    """Register the best checkpoint of a training run as a new version of ``name``.

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
        artifact_path: Run folder for the pyfunc; if the run already has a model
            there (an earlier registration), it is reused, not logged again.

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

    if not _has_model(client, run_id, artifact_path):
        model = rebuild_model(checkpoint)
        log_criteria_model(
            model,
            load_tokenizer(model_cfg["encoder_name"]),
            model_cfg,
            artifact_path,
            run_id=run_id,
            tracking_uri=tracking_uri,
        )
    return register_run_artifact(
        run_id,
        artifact_path,
        name,
        stage=stage,
        tags=version_tags,
        description=description,
        aliases=aliases,
        archive_existing=archive_existing,
        tracking_uri=tracking_uri,
    )


def load_run_checkpoint(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """Download and safely load a run's best checkpoint (``weights_only=True``).

    Raises:
        ValueError: No such run, no best checkpoint, or one without ``config.model``.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(f"no run {run_id!r} in this tracking store: {exc.message}") from None
    folder, filename = CHECKPOINT_ARTIFACT.rsplit("/", 1)
    if filename not in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}:
        raise ValueError(
            f"run {run_id} has no artifact {CHECKPOINT_ARTIFACT}; register a run that "
            "finished at least one validation epoch"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, tmp)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{CHECKPOINT_ARTIFACT} of run {run_id} is not a checkpoint dict")
    model_cfg = checkpoint.get("config", {}).get("model", {})
    missing = [k for k in _REQUIRED_MODEL_KEYS if k not in model_cfg]
    if "model_state_dict" not in checkpoint:
        missing.append("model_state_dict")
    if missing:
        raise ValueError(
            f"{CHECKPOINT_ARTIFACT} of run {run_id} cannot rebuild the model: it needs "
            f"model_state_dict and config.model with {list(_REQUIRED_MODEL_KEYS)}; "
            f"missing {missing}"
        )
    return checkpoint


def rebuild_model(checkpoint: Mapping[str, Any]) -> CriteriaClassifier:
    """The classifier from a checkpoint: encoder from its HF config, then the saved weights."""
    model_cfg = checkpoint["config"]["model"]
    encoder = AutoModel.from_config(encoder_config(model_cfg["encoder_name"]))
    num_labels = int(checkpoint["config"].get("task", {}).get("num_labels", 2))
    model = CriteriaClassifier(
        encoder, num_labels, pooling=model_cfg["pooling"], dropout=float(model_cfg["dropout"])
    )
    missing, unexpected = model.load_state_dict(checkpoint["model_state_dict"], strict=False)
    bad = [k for k in missing if not k.startswith("encoder.pooler.")] + list(unexpected)
    if bad:
        raise ValueError(f"checkpoint weights do not match {model_cfg['encoder_name']}: {bad[:10]}")
    return model.eval()


def _has_model(client: MlflowClient, run_id: str, artifact_path: str) -> bool:
    return any(Path(a.path).name == "MLmodel" for a in client.list_artifacts(run_id, artifact_path))


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
        f"{task} classifier ({model_cfg['encoder_name']}, {model_cfg['pooling']} pooling)"
        f"{score}{at}; best checkpoint of run {run_id}."
    )


__all__ = [
    "CHECKPOINT_ARTIFACT",
    "REGISTERED_ARTIFACT",
    "load_run_checkpoint",
    "rebuild_model",
    "register_from_run",
]
