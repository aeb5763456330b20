"""Samplers and pruners from names, and the per-epoch pruning hook.

Config files name a strategy (``sampler: tpe``, ``pruner: median``); these factories turn the
name into an Optuna object and reject unknown names with the list of valid ones. The pruning
hook is a plain ``(epoch, metrics) -> None`` callable, so the training loop can call it after
each validation without knowing anything about Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from psy_agents_noaug.hpo.search_space import SearchSpace, parse_search_space

__all__ = [
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "make_pruner",
    "make_pruning_callback",
    "make_sampler",
]

SAMPLER_NAMES = ("tpe", "random", "cmaes", "grid")
PRUNER_NAMES = ("median", "hyperband", "none")


def _grid_from_space(space: SearchSpace) -> dict[str, list[Any]]:
    """Enumerate a search space for GridSampler (categoricals and stepped/int ranges only)."""
    grid: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            grid[name] = list(spec.choices)
        elif spec.type == "int" and not spec.log:
            assert spec.low is not None and spec.high is not None
            grid[name] = list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
        elif spec.type == "float" and spec.step is not None and not spec.log:
            assert spec.low is not None and spec.high is not None
            count = math.floor((spec.high - spec.low) / spec.step + 1e-9) + 1
            grid[name] = [spec.low + i * spec.step for i in range(count)]
        else:
            raise ValueError(
                f"sampler 'grid' needs a finite search space; search_space.{name} is a "
                f"continuous {spec.type} range (give it a 'step', or make it categorical)"
            )
    return grid


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its ``study.stop()`` once the grid is used up.

    ``Study.stop`` works only inside ``Study.optimize``; OptunaRunner drives the study with
    ``ask``/``tell`` and ends it by its trial budget (the grid's size) instead.
    """

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        pass


def _as_space(search_space: Mapping[str, Any] | SearchSpace | None) -> SearchSpace:
    if search_space and all(hasattr(v, "suggest") for v in search_space.values()):
        return dict(search_space)  # type: ignore[arg-type]
    return parse_search_space(search_space)


def make_sampler(
    name: str | optuna.samplers.BaseSampler,
    *,
    seed: int | None = None,
    search_space: Mapping[str, Any] | SearchSpace | None = None,
) -> optuna.samplers.BaseSampler:
    """Build an Optuna sampler from its config name.

    Args:
        name: ``tpe`` (default choice: good for mixed spaces), ``random``, ``cmaes``
            (continuous/int spaces; categoricals fall back to independent sampling; needs the
            ``cmaes`` package), ``grid`` (every point of a finite space once, e.g. seeds in
            stage3). A sampler instance is returned unchanged.
        seed: Seed for the sampler's RNG (reproducible studies).
        search_space: Needed by ``grid``; used by ``cmaes`` to warn about categoricals.

    Returns:
        The sampler.

    Raises:
        ValueError: Unknown name, or ``grid`` over a continuous space.
        ImportError: ``cmaes`` requested but the package is missing (with an install hint).

    Example:
        >>> type(make_sampler("random", seed=0)).__name__
        'RandomSampler'
    """
    if isinstance(name, optuna.samplers.BaseSampler):
        return name
    key = str(name).lower()
    if key == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if key == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if key == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "sampler 'cmaes' needs the 'cmaes' package: pip install cmaes "
                "(or choose sampler: tpe)"
            ) from exc
        space = _as_space(search_space)
        categorical = [n for n, s in space.items() if s.type == "categorical"]
        if categorical:
            optuna.logging.get_logger(__name__).warning(
                "CMA-ES does not model categorical parameters %s; they are sampled "
                "independently (at random)",
                categorical,
            )
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if key == "grid":
        grid = _grid_from_space(_as_space(search_space))
        if not grid:
            raise ValueError("sampler 'grid' needs a non-empty search_space")
        return _GridSampler(grid, seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLER_NAMES)}")


def make_pruner(
    name: str | optuna.pruners.BasePruner | None,
    *,
    n_startup_trials: int = 2,
    n_warmup_steps: int = 0,
    max_resource: int | str = "auto",
) -> optuna.pruners.BasePruner:
    """Build an Optuna pruner from its config name.

    Args:
        name: ``median`` (stop a trial whose epoch metric is below the median of earlier
            trials at that epoch), ``hyperband`` (successive halving over epochs), ``none``
            (never prune; also None). A pruner instance is returned unchanged.
        n_startup_trials: ``median``: trials that always run to the end first.
        n_warmup_steps: ``median``: epochs before pruning may start.
        max_resource: ``hyperband``: the number of epochs of a full trial (or ``"auto"``).

    Returns:
        The pruner.

    Raises:
        ValueError: Unknown name or bad option.

    Example:
        >>> type(make_pruner("none")).__name__
        'NopPruner'
    """
    if isinstance(name, optuna.pruners.BasePruner):
        return name
    key = "none" if name is None else str(name).lower()
    if n_startup_trials < 0:
        raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
    if n_warmup_steps < 0:
        raise ValueError(f"n_warmup_steps must be >= 0, got {n_warmup_steps}")
    if key == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
    if key == "hyperband":
        if max_resource != "auto" and (not isinstance(max_resource, int) or max_resource < 1):
            raise ValueError(f"max_resource must be 'auto' or an int >= 1, got {max_resource!r}")
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)
    if key == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNER_NAMES)}")


def make_pruning_callback(
    trial: optuna.trial.Trial, metric: str
) -> Callable[[int, Mapping[str, float]], None]:
    """The hook a training loop calls after each epoch's validation.

    It reports ``metrics[metric]`` to the trial at step ``epoch`` and raises
    :class:`optuna.TrialPruned` when the pruner says stop, which ends the training call early.

    Args:
        trial: The running trial.
        metric: The key to report, e.g. ``"val_f1_macro"``.

    Returns:
        ``callback(epoch, metrics)``.

    Raises:
        KeyError: (from the callback) ``metric`` is not in the epoch's metrics.
    """

    def callback(epoch: int, metrics: Mapping[str, float]) -> None:
        if metric not in metrics:
            raise KeyError(
                f"pruning metric {metric!r} is not among the epoch metrics {sorted(metrics)}"
            )
        value = float(metrics[metric])
        trial.report(value, step=int(epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with {metric}={value:.6g}")

    return callback
