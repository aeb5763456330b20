"""The `train` job: config -> data, model, optimizer -> Trainer, inside an MLflow run.

`train_from_config` trains inside the caller's active run (the HPO objective
uses it for each trial); `run_train` is the CLI job that owns the run: it
names it, logs params and config.yaml, the model, and prints a summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from psy_agents_noaug.config import config_to_dict, training_params
from psy_agents_noaug.tracking import tags
from psy_agents_noaug.training.distributed import (
    SINGLE,
    DistContext,
    init_distributed,
    shard_loaders,
    shutdown_distributed,
)
from psy_agents_noaug.training.train_loop import EpochCallback, Trainer

log = logging.getLogger(__name__)

CONFIG_ARTIFACT = "config.yaml"
FIGURES_ARTIFACT = "figures"


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; explicit cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA GPU is visible; use device=cpu or auto")
    return torch.device(name)


def build_optimizer(model: nn.Module, opt_cfg: Any) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if opt_cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
    if opt_cfg.name == "adam":
        return torch.optim.Adam(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
    return torch.optim.SGD(params, lr=opt_cfg.lr, momentum=0.9, weight_decay=opt_cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, sched_cfg: Any, total_steps: int) -> Any:
    from transformers import get_scheduler

    name = "constant_with_warmup" if sched_cfg.name == "constant" else sched_cfg.name
    warmup = int(sched_cfg.warmup_ratio * total_steps)
    return get_scheduler(
        name, optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1)
    )


@dataclass
class Prepared:
    """Everything a training run needs, built before any run exists (so errors leave none)."""

    model: nn.Module
    tokenizer: Any
    train_loader: Any
    val_loader: Any
    device: torch.device
    criterion: nn.Module
    task: Any
    data_params: dict[str, str]
    datasets: dict[str, Any]
    distributed: DistContext = SINGLE
    #: The checkpoint ``resume_from`` names, checked against this model and config.
    resume: dict[str, Any] | None = None


def prepare(cfg: DictConfig, distributed: DistContext = SINGLE) -> Prepared:
    """Seed, read and split the data, window it, build the model, loss and loaders.

    Raises:
        DataError, ConfigError, EncoderNotFoundError: user mistakes, before any run exists.
    """
    from transformers import set_seed

    from psy_agents_noaug.data.dataset import build_dataloaders
    from psy_agents_noaug.models.factory import build_model
    from psy_agents_noaug.training import recipe

    set_seed(cfg.seed)
    device = resolve_device(cfg.device)
    splits = recipe.load_splits(cfg)
    classifier, tokenizer = build_model(cfg.model, seed=cfg.seed)
    resume = _resume_checkpoint(cfg, classifier) if cfg.get("resume_from") else None
    model: nn.Module = classifier
    spec = recipe.encoding_spec(cfg)
    train_loader, val_loader = build_dataloaders(
        [splits.train, splits.val],
        tokenizer,
        spec,
        batch_size=cfg.training.batch_size,
        eval_batch_size=cfg.training.eval_batch_size,
        seed=cfg.seed,
        num_workers=cfg.training.num_workers,
    )
    data_params: dict[str, str] = {}
    stats = {}
    for split, loader in (("train", train_loader), ("val", val_loader)):
        stats[split] = loader.dataset.stats()  # type: ignore[attr-defined]
        recipe.warn_cut_posts(split, stats[split], spec.max_windows)
        data_params.update(stats[split].as_params(split))
    datasets = recipe.split_datasets(cfg.data, splits, stats)
    criterion = recipe.build_loss(splits.train, train_loader.dataset, cfg.training)  # type: ignore[arg-type]
    if distributed.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank)
        model = DistributedDataParallel(
            model.to(device), device_ids=[distributed.local_rank] if device.type == "cuda" else None
        )
        train_loader, val_loader = shard_loaders(train_loader, val_loader, distributed, cfg.seed)
    task = recipe.criteria_task(tune=True, tolerance=cfg.training.threshold_tolerance)
    return Prepared(
        model, tokenizer, train_loader, val_loader, device, criterion, task, data_params,
        datasets, distributed, resume,
    )  # fmt: skip


def _resume_checkpoint(cfg: DictConfig, model: nn.Module) -> dict[str, Any]:
    """The checkpoint ``resume_from`` names, once it is known to fit (before any run exists).

    Raises:
        CheckpointError: Not found, unreadable, at or past ``num_epochs``, or weights
            that do not fit ``model``.
    """
    from psy_agents_noaug.training.checkpoints import CheckpointError, checkpoint_from

    source = str(cfg.resume_from)
    checkpoint = checkpoint_from(source, cfg.mlflow.tracking_uri)
    epoch = int(checkpoint.get("epoch", 0))
    if epoch >= cfg.training.num_epochs:
        raise CheckpointError(
            f"resume_from={source} is at epoch {epoch} and training.num_epochs is "
            f"{cfg.training.num_epochs}: set training.num_epochs above {epoch} to train further"
        )
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as exc:
        saved = (checkpoint.get("config") or {}).get("model", {}).get("encoder_name", "?")
        first = str(exc).strip().splitlines()[1:2] or [""]
        raise CheckpointError(
            f"resume_from={source} holds a {saved} model whose weights do not fit "
            f"model.encoder_name={cfg.model.encoder_name}: pass the model it was trained "
            f"with ({first[0].strip()[:120]})"
        ) from None
    return checkpoint


def train_from_config(
    cfg: DictConfig,
    *,
    epoch_end_callback: EpochCallback | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Train one model from `cfg` inside the caller's active MLflow run (if any).

    Logs params (dotted config keys, the data's windowing statistics), ``config.yaml``
    and every Trainer metric into the active run; never ends a run it did not start. With
    ``mlflow.enabled=false`` nothing is tracked.

    Returns:
        The Trainer's results (``best_val_f1_macro``, ``best_epoch``, ``total_steps``,
        ``thresholds``, …) plus ``model`` and ``tokenizer`` for callers that save them.
    """
    p = prepared or prepare(cfg)
    optimizer = build_optimizer(p.model, cfg.training.optimizer)
    steps_per_epoch = -(-len(p.train_loader) // cfg.training.gradient_accumulation_steps)
    scheduler = build_scheduler(
        optimizer, cfg.training.scheduler, steps_per_epoch * cfg.training.num_epochs
    )
    track = bool(cfg.mlflow.enabled)
    if track:
        _log_config(cfg, p.data_params)
        _log_datasets(p.datasets)
    trainer = Trainer(
        p.model,
        p.train_loader,
        p.val_loader,
        optimizer,
        p.criterion,
        p.device,
        num_epochs=cfg.training.num_epochs,
        logging_steps=cfg.training.logging_steps,
        log_system_metrics=cfg.training.log_system_metrics,
        system_metrics_interval=cfg.training.system_metrics_interval,
        scheduler=scheduler,
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
        max_grad_norm=cfg.training.max_grad_norm,
        use_amp=cfg.training.amp,
        early_stopping_patience=cfg.training.early_stopping.patience,
        early_stopping_metric=cfg.training.early_stopping.metric,
        early_stopping_mode=cfg.training.early_stopping.mode,
        save_dir=cfg.training.save_dir,
        epoch_end_callback=epoch_end_callback,
        config=config_to_dict(cfg),
        track=track,
        progress=cfg.progress,
        distributed=p.distributed,
        task=p.task,
        save_optimizer=cfg.training.save_optimizer,
    )
    if p.resume is not None:
        trainer.resume(p.resume)
    results = trainer.train()
    model = getattr(p.model, "module", p.model)  # unwrap DistributedDataParallel
    results.update(model=model, tokenizer=p.tokenizer, trainer=trainer, best_checkpoint=None)
    path = results.get("checkpoint_path")
    if path:
        from psy_agents_noaug.training.checkpoints import load_checkpoint

        results["best_checkpoint"] = load_checkpoint(path)
        if cfg.training.save_dir is None:  # a temporary folder: uploaded (or journaled) now
            shutil.rmtree(Path(path).parent, ignore_errors=True)
            results["checkpoint_path"] = None
    return results


def _log_datasets(datasets: dict[str, Any]) -> None:
    """The splits as the run's dataset inputs (the runs table's Dataset column), through
    the metric sink like the params: a store that is down for a moment delays them."""
    import mlflow

    from psy_agents_noaug.tracking import get_sink
    from psy_agents_noaug.tracking.datasets import CONTEXTS

    run = mlflow.active_run()
    if run is None:
        return
    get_sink(run.info.run_id).log_inputs({CONTEXTS[s]: d for s, d in datasets.items()})


def _log_config(cfg: DictConfig, data_params: dict[str, str]) -> None:
    """Dotted config keys (and the data's windowing statistics) as params, the resolved
    config as ``config.yaml``.

    Both go through the metric sink, so a store that is down for a moment (a server
    restart between two HPO trials) delays them instead of failing the training.
    """
    import mlflow

    from psy_agents_noaug.tracking import get_sink

    run = mlflow.active_run()
    if run is None:
        return
    sink = get_sink(run.info.run_id)
    sink.log_params({**{k: v[:6000] for k, v in training_params(cfg).items()}, **data_params})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CONFIG_ARTIFACT
        path.write_text(OmegaConf.to_yaml(OmegaConf.create(config_to_dict(cfg))))
        sink.log_artifact(path)


def _artifact_error(run_id: str, what: str, exc: BaseException | str, extra: str = "") -> Exception:
    """One line naming the artifact location and the OS's reason (e.g. no space left)."""
    import mlflow

    from psy_agents_noaug.tracking import ArtifactStoreError, mask_uri

    try:
        where = mask_uri(mlflow.MlflowClient().get_run(run_id).info.artifact_uri)
    except Exception:
        where = "the run's artifact location"
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return ArtifactStoreError(f"cannot write {what} to {where}: {reason}{extra}")


def default_run_name(cfg: DictConfig) -> str:
    return f"{cfg.task.name}_{cfg.model.name}_{dt.date.today().isoformat()}"


def run_train(cfg: DictConfig) -> dict[str, Any]:
    """The CLI `train` job: owns the run `<task>_<encoder>_<date>` in `training_<task>`.

    Under `torchrun`, every rank trains its shard and only rank 0 owns the run.
    """
    distributed = init_distributed(resolve_device(cfg.device).type)
    try:
        if not cfg.mlflow.enabled or not distributed.is_main:
            # Under torchrun only rank 0 talks to MLflow; the others just train.
            return train_from_config(cfg, prepared=prepare(cfg, distributed))
        return _run_tracked(cfg, distributed)
    finally:
        shutdown_distributed()


def _run_tracked(cfg: DictConfig, distributed: DistContext) -> dict[str, Any]:
    from psy_agents_noaug.tracking import TrackedRun, prepare_store, setup_experiment
    from psy_agents_noaug.tracking.lifecycle import deferred_interrupts
    from psy_agents_noaug.tracking.sink import prestart

    uri = cfg.mlflow.tracking_uri
    prepare_store(
        uri, http_timeout_s=cfg.mlflow.http_timeout_s, http_max_retries=cfg.mlflow.http_max_retries
    )
    # The writer process starts (and imports MLflow) while data and model load.
    prestart(uri, cfg.mlflow.journal_dir)
    prepared = prepare(cfg, distributed)
    experiment = cfg.mlflow.experiment_name or f"training_{cfg.task.name}"
    experiment_id = setup_experiment(uri, experiment, description=_experiment_description(cfg))
    _repair_orphans(cfg, experiment)
    run_tags = {
        tags.TASK: cfg.task.name,
        tags.ENCODER: cfg.model.encoder_name,
        tags.WORLD_SIZE: str(distributed.world_size),
    }
    if cfg.get("resume_from"):
        run_tags[tags.RESUMED_FROM] = str(cfg.resume_from)
    with TrackedRun.start(
        uri,
        experiment_id,
        run_name=cfg.mlflow.run_name or default_run_name(cfg),
        run_tags=run_tags,
        journal_dir=cfg.mlflow.journal_dir,
    ) as run:
        results = train_from_config(cfg, prepared=prepared)
        kept = results.get("checkpoint_path")
        extra = f"; the best checkpoint is kept at {kept}" if kept else ""
        with deferred_interrupts("the model's upload"):  # whole, or marked FAILED
            try:
                model_info = _log_model(results, cfg, run, prepared)
            except Exception as exc:
                raise _artifact_error(run.run_id, "the model", exc, extra) from None
        _log_figures(results, run.sink, prepared.task.names)
        refused = [text for run_id, text in run.sink.flush().refused if run_id == run.run_id]
        if refused:  # a full or read-only artifact location: the copies wait in the journal
            raise _artifact_error(run.run_id, "the artifacts", refused[0], extra)
        if cfg.register and model_info is not None and model_info.model_id is not None:
            results["model_version"] = _register(run.run_id, cfg)
        results["model_uri"] = model_info.model_uri if model_info is not None else None
        run.sink.set_tags({tags.DESCRIPTION: _run_description(cfg, results, prepared)})
        stop = results["stop_reason"]
        run.status, run.reason = stop.run_status, results.get("message")
    results["run_id"] = run.run_id
    results["experiment_name"] = experiment
    results["experiment_id"] = experiment_id
    results["synced"] = bool(run.result)
    results["journals"] = list(run.result.journals) if run.result is not None else []
    return results


def _experiment_description(cfg: DictConfig) -> str:
    return (
        f"DSM-5 criteria classifiers ({cfg.task.name}): one run per `psy-agents train`, "
        "with step, epoch, system and final metrics, the best checkpoint and the model."
    )


def _repair_orphans(cfg: DictConfig, experiment: str) -> None:
    """End this experiment's runs whose process died (no heartbeat) before adding one."""
    from psy_agents_noaug.tracking.orphans import repair_orphans

    try:
        ended = repair_orphans(
            cfg.mlflow.tracking_uri, [experiment], stale_after_s=cfg.mlflow.orphan_after_s
        )
    except Exception as exc:  # housekeeping must never stop a training run
        log.warning("could not check %s for orphaned runs: %s", experiment, exc)
        return
    for run_id in ended:
        log.warning("run %s had lost its process (no heartbeat): marked FAILED", run_id)


def _log_model(results: dict[str, Any], cfg: DictConfig, run: Any, prepared: Prepared) -> Any:
    """The best checkpoint as the run's logged model, with that epoch's validation metrics."""
    from psy_agents_noaug.models.serving import MODEL_NAME, log_criteria_model
    from psy_agents_noaug.training.recipe import encoding_spec

    state = results.get("best_checkpoint")
    if state is None:
        return None  # no validation epoch finished: nothing worth serving
    model = results["model"]
    model.load_state_dict(state["model_state_dict"])
    thresholds = state.get("thresholds") or results.get("thresholds") or {}
    epoch = int(state.get("epoch") or results["best_epoch"])
    row: dict[str, Any] = next((h for h in results["history"] if h.get("epoch") == epoch), {})
    metrics = {f"epoch/{k}": v for k, v in row.items() if k.startswith("val_")}
    val = prepared.datasets["val"]
    model_cfg = config_to_dict(cfg)["model"]
    params = {
        "encoder_name": model_cfg["encoder_name"],
        "framing": model_cfg["framing"],
        "aggregation": model_cfg["aggregation"],
        "max_length": model_cfg["max_length"],
        "max_windows_per_post": cfg.data.max_windows_per_post,
        "trained_on": prepared.datasets["train"].name,
        **{f"threshold_{k}": v for k, v in thresholds.items()},
    }
    return log_criteria_model(
        model.cpu(),
        results["tokenizer"],
        model_cfg,
        MODEL_NAME,
        run_id=run.run_id,
        tracking_uri=cfg.mlflow.tracking_uri,
        step=epoch,
        encoding=encoding_spec(cfg),
        thresholds=thresholds,
        metrics=metrics,
        metrics_timestamp_ms=row.get("timestamp_ms"),
        dataset=(val.name, val.digest),
        params=params,
        sink=run.sink,
    )


def _log_figures(results: dict[str, Any], sink: Any, names: Any) -> None:
    """PR curves, confusion, threshold sweep and reliability of the best epoch (validation)."""
    from psy_agents_noaug.training.figures import write_figures

    predictions = results.get("val_predictions")
    thresholds = results.get("thresholds")
    if predictions is None or not thresholds:
        return
    labels, probs = predictions
    with tempfile.TemporaryDirectory() as tmp:
        try:
            paths = write_figures(
                labels, probs, names, [thresholds[n] for n in names], Path(tmp), split="val"
            )
        except Exception as exc:  # a figure is never worth a failed run
            log.warning("could not draw the validation figures: %s", exc)
            return
        for path in paths:
            sink.log_artifact(path, FIGURES_ARTIFACT, mode="move")


def _run_description(cfg: DictConfig, results: dict[str, Any], prepared: Prepared) -> str:
    train = prepared.datasets["train"]
    return (
        f"{cfg.model.name} ({cfg.model.encoder_name}) criteria classifier, {cfg.model.framing} "
        f"framing, trained on {train.name} ({train.profile['posts']} posts): best validation "
        f"macro F1 {results['best_val_f1_macro']:.3f} at epoch {results['best_epoch']} of "
        f"{results['total_epochs']}."
        + (f" Resumed from {cfg.resume_from}." if cfg.get("resume_from") else "")
    )


def _register(run_id: str, cfg: DictConfig) -> Any:
    from psy_agents_noaug.jobs.register import register_from_run

    return register_from_run(
        run_id,
        name=f"{cfg.task.name}_classifier",
        stage="Staging",
        tracking_uri=cfg.mlflow.tracking_uri,
    )
