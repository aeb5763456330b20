"""The `hpo` job: a stage config -> an objective over `train_from_config` -> OptunaRunner.

Each trial trains one model from the composed training config with the sampled values put
at their config keys (``stage.config_keys``), inside the trial's nested MLflow run, and
reports the validation metric after every epoch so the pruner can stop it early.

Stages (``stage=stage0`` … ``stage3``) are search studies, except ``mode: refit`` (stage3):
it takes the best params of a previous stage's study and trains them once per seed.

Several workers share a study when they run the same command with the same
``stage.storage`` (``journal:<path>`` on one machine, a PostgreSQL URL across hosts).
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from psy_agents_noaug.config import ConfigError, load_config, validate_config
from psy_agents_noaug.hpo.optuna_runner import OptunaRunner, load_best_params
from psy_agents_noaug.hpo.samplers import PRUNER_NAMES, SAMPLER_NAMES, make_pruner
from psy_agents_noaug.hpo.search_space import ParamSpec, parse_search_space

__all__ = ["build_objective", "run_hpo", "study_name_for"]

_log = logging.getLogger(__name__)

_MODES = ("search", "refit")


def study_name_for(cfg: DictConfig) -> str:
    """``stage.study_name``, or ``<task>_<stage>`` (e.g. ``criteria_stage0``)."""
    return str(cfg.stage.get("study_name") or f"{cfg.task.name}_{cfg.stage.name}")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _bad(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"bad value stage.{key}={value!r}: must be {expected}")


def _validate_stage(stage: DictConfig) -> None:
    """One clear line for the first bad stage key (load_config checks the other groups)."""
    mode = stage.get("mode", "search")
    if mode not in _MODES:
        raise _bad("mode", mode, " or ".join(_MODES))
    n_trials = stage.get("n_trials")
    if mode == "search" and not _is_int(n_trials, 1):
        raise _bad("n_trials", n_trials, "an integer >= 1")
    for key in ("num_epochs", "max_train_posts"):
        value = stage.get(key)
        if value is not None and not _is_int(value, 1):
            raise _bad(key, value, "an integer >= 1 or null")
    timeout = stage.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise _bad("timeout", timeout, "seconds > 0 or null")
    if stage.get("direction") not in ("maximize", "minimize"):
        raise _bad("direction", stage.get("direction"), "maximize or minimize")
    if stage.get("sampler") not in SAMPLER_NAMES:
        raise _bad("sampler", stage.get("sampler"), ", ".join(SAMPLER_NAMES))
    if str(stage.get("pruner")).lower() not in PRUNER_NAMES and stage.get("pruner") is not None:
        raise _bad("pruner", stage.get("pruner"), ", ".join(PRUNER_NAMES))
    keep = stage.get("keep_checkpoints")
    if keep is not None and not _is_int(keep, 0):
        raise _bad("keep_checkpoints", keep, "an integer >= 0 or null")
    for key in ("heartbeat_interval", "grace_period"):
        value = stage.get(key)
        if value is not None and not _is_int(value, 1):
            raise _bad(key, value, "an integer number of seconds >= 1 or null")
    storage = stage.get("storage")
    if storage is not None and (
        not isinstance(storage, str)
        or not storage.strip()
        or not (storage.startswith("journal:") or "://" in storage)
    ):
        raise _bad(
            "storage",
            storage,
            "null, journal:<path> or a database URL such as postgresql+psycopg2://user@host/db",
        )
    if mode == "refit":
        seeds = stage.get("seeds")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise _bad("seeds", seeds, "a non-empty list of integers")
        if not stage.get("source_stage") and not stage.get("source_study_name"):
            raise _bad("source_stage", None, "the stage whose best params to refit")


def _config_keys(cfg: DictConfig, names: list[str], mapping: Mapping[str, Any]) -> dict[str, str]:
    """Map each parameter to an existing config key; unknown ones are errors."""
    keys = {}
    for name in names:
        key = mapping.get(name)
        if not key:
            raise ConfigError(
                f"stage.config_keys has no entry for search_space.{name}; add e.g. "
                f"config_keys.{name}: training.optimizer.lr"
            )
        if OmegaConf.select(cfg, str(key), default="<missing>") == "<missing>":
            raise ConfigError(
                f"stage.config_keys.{name}={key!r} is not a key of the config; "
                "use a dotted key such as training.optimizer.lr"
            )
        keys[name] = str(key)
    return keys


def _apply(cfg: DictConfig, values: Mapping[str, Any], keys: Mapping[str, str]) -> DictConfig:
    out = copy.deepcopy(cfg)
    with _writable(out):
        for name, value in values.items():
            OmegaConf.update(out, keys[name], value, merge=False)
    return out


def _check_space_fits_config(
    cfg: DictConfig, space: Mapping[str, ParamSpec], keys: Mapping[str, str]
) -> None:
    """Every extreme of the search space must be a valid config value, before trial 0."""
    for name, spec in space.items():
        edges = list(spec.choices) if spec.type == "categorical" else [spec.low, spec.high]
        for edge in edges:
            try:
                validate_config(_apply(cfg, {name: edge}, keys))
            except ConfigError as exc:
                raise ConfigError(f"search_space.{name} allows {edge!r}, but {exc}") from None


def _objective_value(results: Mapping[str, Any], metric: str) -> float:
    best = results.get("best_metrics") or {}
    if metric in best:
        return float(best[metric])
    if f"best_{metric}" in results:
        return float(results[f"best_{metric}"])
    raise KeyError(
        f"training results have no {metric!r} (best-epoch metrics: {sorted(best)}); "
        "set stage.metric to one of them"
    )


def build_objective(
    cfg: DictConfig,
    keys: Mapping[str, str],
    *,
    fixed: Mapping[str, Any] | None = None,
    fixed_keys: Mapping[str, str] | None = None,
    train_fn: Callable[..., dict[str, Any]] | None = None,
) -> Callable[[optuna.Trial, dict[str, Any]], float]:
    """The objective of one stage: train with the sampled params, return the metric.

    Args:
        cfg: The composed config (training, model, data, mlflow, stage).
        keys: Search-space name -> config key.
        fixed: Values applied to every trial before the sampled ones (refit: the source
            study's best params).
        fixed_keys: Config keys of ``fixed``.
        train_fn: ``train_fn(cfg, epoch_end_callback=...) -> results``; default
            :func:`psy_agents_noaug.jobs.train.train_from_config`.

    Returns:
        ``objective(trial, params) -> float``.
    """
    from psy_agents_noaug.hpo.samplers import make_pruning_callback

    if train_fn is None:
        from psy_agents_noaug.jobs.train import train_from_config

        train_fn = train_from_config
    metric = str(cfg.stage.metric)
    base = copy.deepcopy(cfg)
    with _writable(base):
        if cfg.stage.get("num_epochs") is not None:
            base.training.num_epochs = int(cfg.stage.num_epochs)
        if cfg.stage.get("max_train_posts") is not None:
            base.data.max_train_posts = int(cfg.stage.max_train_posts)
        base.progress = False  # the trials bar replaces the per-epoch bars
    if fixed:
        base = _apply(base, fixed, fixed_keys or {})

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        trial_cfg = _apply(base, params, keys)
        validate_config(trial_cfg)
        results = train_fn(trial_cfg, epoch_end_callback=make_pruning_callback(trial, metric))
        if results.get("stop_reason") == "non_finite_loss":
            raise FloatingPointError(results.get("message") or "the loss became NaN/inf")
        return _objective_value(results, metric)

    return objective


class _writable:
    """Temporarily lift struct/readonly flags (only for keys that already exist)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> DictConfig:
        self._readonly = OmegaConf.is_readonly(self.cfg)
        OmegaConf.set_readonly(self.cfg, False)
        return self.cfg

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_readonly(self.cfg, self._readonly)


def _plain_dict(node: Any) -> dict[str, Any]:
    """A config mapping as a plain dict ({} for null)."""
    if node is None:
        return {}
    data = OmegaConf.to_container(node, resolve=True)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}")
    return {str(k): v for k, v in data.items()}


def _refit_source(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, str], str]:
    """Best params of the source study, their config keys, and the source study name."""
    stage = cfg.stage
    source_stage = stage.get("source_stage")
    source_study = stage.get("source_study_name") or f"{cfg.task.name}_{source_stage}"
    storage = stage.get("source_storage") or stage.get("storage")
    experiment = cfg.mlflow.experiment_name or f"hpo_{cfg.task.name}"
    best = load_best_params(
        source_study,
        storage=storage,
        tracking_uri=cfg.mlflow.tracking_uri if cfg.mlflow.enabled else None,
        experiment_name=experiment,
    )
    mapping: dict[str, Any] = {}
    if source_stage:
        source_cfg = load_config([f"stage={source_stage}", f"task={cfg.task.name}"])
        mapping.update(_plain_dict(source_cfg.stage.get("config_keys")))
    mapping.update(_plain_dict(stage.get("config_keys")))
    return best, _config_keys(cfg, list(best), mapping), source_study


def run_hpo(
    cfg: DictConfig, *, train_fn: Callable[..., dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Run the study that ``cfg.stage`` describes, as one worker of it.

    Args:
        cfg: The composed config (``load_config(["stage=stage0", ...])``).
        train_fn: Stand-in for ``train_from_config`` (tests); default the real one.

    Returns:
        ``study_name``, ``best_value``, ``best_params``, ``best_trial_number``, the counts
        (``total_trials``, ``completed_trials``, ``pruned_trials``, ``failed_trials``),
        ``parent_run_id`` and ``experiment_name``; refit adds ``refit_values``,
        ``refit_mean`` and ``refit_std``.

    Raises:
        ConfigError: A bad stage key or a search space that does not fit the config.
        ValueError: stage3 cannot find the source study's best params.
    """
    stage = cfg.stage
    _validate_stage(stage)
    refit = stage.get("mode", "search") == "refit"
    study_name = study_name_for(cfg)
    metric = str(stage.metric)
    fixed: dict[str, Any] = {}
    fixed_keys: dict[str, str] = {}
    source_study = None
    if refit:
        fixed, fixed_keys, source_study = _refit_source(cfg)
        search_space: dict[str, Any] = {
            "seed": {"type": "categorical", "choices": [int(s) for s in stage.seeds]}
        }
        n_trials = len(stage.seeds)
    else:
        raw = stage.get("search_space")
        search_space = _plain_dict(raw) if raw is None or isinstance(raw, DictConfig) else raw
        n_trials = int(stage.n_trials)
    space = parse_search_space(search_space)
    keys = _config_keys(cfg, list(space), _plain_dict(stage.get("config_keys")))
    _check_space_fits_config(_apply(cfg, fixed, fixed_keys) if fixed else cfg, space, keys)

    epochs = stage.get("num_epochs") or cfg.training.num_epochs
    pruner = make_pruner(
        stage.get("pruner"),
        n_startup_trials=int(stage.get("pruner_startup_trials") or 0),
        max_resource=int(epochs),
    )
    runner = OptunaRunner(
        study_name,
        str(stage.direction),
        metric,
        storage=stage.get("storage"),
        sampler=str(stage.sampler),
        pruner=pruner,
        seed=stage.get("seed"),
        heartbeat_interval=stage.get("heartbeat_interval"),
        grace_period=stage.get("grace_period"),
        max_retry=stage.get("max_retry"),
    )
    track = bool(cfg.mlflow.enabled)
    experiment = cfg.mlflow.experiment_name or f"hpo_{cfg.task.name}"
    if track:
        from psy_agents_noaug.tracking import prepare_store
        from psy_agents_noaug.tracking.sink import prestart

        prepare_store(
            cfg.mlflow.tracking_uri,
            http_timeout_s=cfg.mlflow.http_timeout_s,
            http_max_retries=cfg.mlflow.http_max_retries,
        )
        prestart(cfg.mlflow.tracking_uri, cfg.mlflow.journal_dir)
        _repair_orphans(cfg.mlflow.tracking_uri, experiment, cfg.mlflow.orphan_after_s)
    objective = build_objective(cfg, keys, fixed=fixed, fixed_keys=fixed_keys, train_fn=train_fn)
    callbacks = []
    if track and stage.get("keep_checkpoints") is not None:
        from psy_agents_noaug.hpo.checkpoints import CheckpointRetention

        callbacks.append(CheckpointRetention(int(stage.keep_checkpoints), cfg.mlflow.tracking_uri))
    study = runner.optimize(
        objective,
        n_trials,
        search_space,
        mlflow_tracking_uri=cfg.mlflow.tracking_uri if track else None,
        mlflow_experiment_name=experiment if track else None,
        timeout=stage.get("timeout"),
        callbacks=callbacks,
        show_progress_bar=bool(cfg.progress),
        log_to_mlflow=track,
    )
    summary = runner.summary
    assert summary is not None
    out: dict[str, Any] = {
        "study_name": study_name,
        "best_value": summary.best_value,
        "best_params": dict(summary.best_params),
        "best_trial_number": summary.best_trial_number,
        "total_trials": summary.total,
        "completed_trials": summary.completed,
        "pruned_trials": summary.pruned,
        "failed_trials": summary.failed,
        "parent_run_id": runner.parent_run_id,
        "experiment_id": runner.experiment_id,
        "experiment_name": experiment if track else None,
    }
    if refit:
        out.update(_refit_summary(study, metric, fixed, source_study, runner.parent_run_id))
    return out


def _repair_orphans(tracking_uri: str, experiment: str, stale_after_s: float) -> None:
    """End the parent and trial runs of workers that died (no heartbeat) before adding more."""
    from psy_agents_noaug.tracking.orphans import repair_orphans

    try:
        ended = repair_orphans(tracking_uri, [experiment], stale_after_s=stale_after_s)
    except Exception as exc:  # housekeeping must never stop a study
        _log.warning("could not check %s for orphaned runs: %s", experiment, exc)
        return
    for run_id in ended:
        _log.warning("run %s had lost its worker (no heartbeat): marked FAILED", run_id)


def _refit_summary(
    study: optuna.Study,
    metric: str,
    fixed: Mapping[str, Any],
    source_study: str | None,
    parent_run_id: str | None,
) -> dict[str, Any]:
    """Mean/std over seeds; logged on the parent run as ``refit/mean_<metric>``, ``refit/std_…``."""
    values = [
        t.value
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    if parent_run_id is not None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        now = int(time.time() * 1000)
        metrics = []
        if mean is not None and std is not None:
            metrics = [
                Metric(f"refit/mean_{metric}", mean, now, 0),
                Metric(f"refit/std_{metric}", std, now, 0),
                Metric("refit/n_seeds", float(len(values)), now, 0),
            ]
        params = [Param(f"refit/{k}", str(v)) for k, v in fixed.items()]
        tags = [RunTag("hpo.source_study", str(source_study))]
        try:
            MlflowClient().log_batch(parent_run_id, metrics=metrics, params=params, tags=tags)
        except Exception:  # the study itself is done; the extra summary is best effort
            _log.warning("could not log the refit summary on %s", parent_run_id, exc_info=True)
    return {"refit_values": values, "refit_mean": mean, "refit_std": std}
