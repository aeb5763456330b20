"""The `train` job: config -> data, model, optimizer -> Trainer, inside an MLflow run.

`train_from_config` trains inside the caller's active run (the HPO objective
uses it for each trial); `run_train` is the CLI job that owns the run: it
names it, logs params and config.yaml, the model, and prints a summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from psy_agents_noaug.config import config_to_dict, flatten_params
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


def load_splits(cfg: DictConfig) -> Any:
    """The (post, criterion) pairs split by post id, from the configured CSVs or the sample."""
    from psy_agents_noaug.data.pairs import build_criteria_pairs, split_by_post
    from psy_agents_noaug.data.redsm5 import load_redsm5
    from psy_agents_noaug.data.sample import sample_paths

    if cfg.data.posts_path is None:
        posts_path, annotations_path = sample_paths()
    else:
        posts_path, annotations_path = Path(cfg.data.posts_path), Path(cfg.data.annotations_path)
    data = load_redsm5(posts_path, annotations_path)
    if data.dropped:
        log.warning(
            "dropped %d annotation rows: %s", len(data.dropped), "; ".join(data.dropped[:5])
        )
    pairs = build_criteria_pairs(data)
    return split_by_post(
        pairs,
        val_fraction=cfg.data.val_fraction,
        test_fraction=cfg.data.test_fraction,
        seed=cfg.seed,
    )


@dataclass
class Prepared:
    """Everything a training run needs, built before any run exists (so errors leave none)."""

    model: nn.Module
    tokenizer: Any
    train_loader: Any
    val_loader: Any
    device: torch.device
    distributed: DistContext = SINGLE


def prepare(cfg: DictConfig, distributed: DistContext = SINGLE) -> Prepared:
    """Seed, read and split the data, build the model and loaders; raises on user mistakes."""
    from transformers import set_seed

    from psy_agents_noaug.data.dataset import build_dataloaders
    from psy_agents_noaug.models.factory import build_model

    set_seed(cfg.seed)
    device = resolve_device(cfg.device)
    splits = load_splits(cfg)
    classifier, tokenizer = build_model(cfg.model, cfg.task.num_labels, seed=cfg.seed)
    model: nn.Module = classifier
    train_loader, val_loader, _ = build_dataloaders(
        splits,
        tokenizer,
        max_length=cfg.model.max_length,
        batch_size=cfg.training.batch_size,
        eval_batch_size=cfg.training.eval_batch_size,
        seed=cfg.seed,
        num_workers=cfg.training.num_workers,
    )
    if distributed.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank)
        model = DistributedDataParallel(
            model.to(device), device_ids=[distributed.local_rank] if device.type == "cuda" else None
        )
        train_loader, val_loader = shard_loaders(train_loader, val_loader, distributed, cfg.seed)
    return Prepared(model, tokenizer, train_loader, val_loader, device, distributed)


def train_from_config(
    cfg: DictConfig,
    *,
    epoch_end_callback: EpochCallback | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Train one model from `cfg` inside the caller's active MLflow run (if any).

    Logs params (dotted config keys), ``config.yaml`` and every Trainer metric into
    the active run; never ends a run it did not start. With ``mlflow.enabled=false``
    nothing is tracked.

    Returns:
        The Trainer's results (``best_val_f1_macro``, ``best_epoch``, ``total_steps``, …)
        plus ``model`` and ``tokenizer`` for callers that want to save them.
    """
    p = prepared or prepare(cfg)
    optimizer = build_optimizer(p.model, cfg.training.optimizer)
    steps_per_epoch = -(-len(p.train_loader) // cfg.training.gradient_accumulation_steps)
    scheduler = build_scheduler(
        optimizer, cfg.training.scheduler, steps_per_epoch * cfg.training.num_epochs
    )
    track = bool(cfg.mlflow.enabled)
    if track:
        _log_config(cfg)
    trainer = Trainer(
        p.model,
        p.train_loader,
        p.val_loader,
        optimizer,
        nn.CrossEntropyLoss(),
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
    )
    results = trainer.train()
    model = getattr(p.model, "module", p.model)  # unwrap DistributedDataParallel
    results.update(model=model, tokenizer=p.tokenizer, trainer=trainer)
    return results


def _log_config(cfg: DictConfig) -> None:
    """Dotted config keys as params and the resolved config as ``config.yaml``.

    Both go through the metric sink, so a store that is down for a moment (a server
    restart between two HPO trials) delays them instead of failing the training.
    """
    import mlflow

    from psy_agents_noaug.tracking import get_sink

    run = mlflow.active_run()
    if run is None:
        return
    sink = get_sink(run.info.run_id)
    sink.log_params({k: v[:6000] for k, v in flatten_params(cfg).items()})
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
        try:
            _log_model(results, cfg, run.sink)
        except Exception as exc:
            raise _artifact_error(run.run_id, "the model", exc, extra) from None
        refused = [text for run_id, text in run.sink.flush().refused if run_id == run.run_id]
        if refused:  # a full or read-only artifact location: the copies wait in the journal
            raise _artifact_error(run.run_id, "the artifacts", refused[0], extra)
        if cfg.register:
            run.sink.flush()  # the model is in the store before the registry points at it
            results["model_version"] = _register(results, cfg)
        stop = results["stop_reason"]
        run.status, run.reason = stop.run_status, results.get("message")
    results["run_id"] = run.run_id
    results["experiment_name"] = experiment
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


def _log_model(results: dict[str, Any], cfg: DictConfig, sink: Any) -> None:
    """The text-in, probabilities-out model as the run's `model/` artifact (via the writer)."""
    from psy_agents_noaug.models.serving import log_criteria_model
    from psy_agents_noaug.training.checkpoints import load_checkpoint

    best = results.get("checkpoint_path")
    model = results["model"]
    if best:
        model.load_state_dict(load_checkpoint(best)["model_state_dict"])
    log_criteria_model(model.cpu(), results["tokenizer"], config_to_dict(cfg)["model"], sink=sink)


def _register(results: dict[str, Any], cfg: DictConfig) -> Any:
    import mlflow

    from psy_agents_noaug.jobs.register import register_from_run

    run = mlflow.active_run()
    assert run is not None
    return register_from_run(
        run.info.run_id,
        name=f"{cfg.task.name}_classifier",
        stage="Staging",
        tracking_uri=cfg.mlflow.tracking_uri,
        artifact_path="model",
    )
