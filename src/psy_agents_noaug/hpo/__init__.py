"""Hyperparameter search: Optuna studies tracked as one MLflow parent run + a child per trial.

Example:
    >>> from psy_agents_noaug.hpo import OptunaRunner
    >>> runner = OptunaRunner("criteria_stage2", "maximize", "val_f1_macro")  # doctest: +SKIP
    >>> runner.optimize(objective, n_trials=50, search_space=space,  # doctest: +SKIP
    ...                 mlflow_tracking_uri="sqlite:///mlflow.db",
    ...                 mlflow_experiment_name="hpo_criteria")
"""

from __future__ import annotations

from psy_agents_noaug.hpo.optuna_runner import OptunaRunner, format_top_trials, load_best_params
from psy_agents_noaug.hpo.parent_run import StudySummary, summarize_study
from psy_agents_noaug.hpo.samplers import make_pruner, make_pruning_callback, make_sampler
from psy_agents_noaug.hpo.search_space import parse_search_space, suggest_params

__all__ = [
    "OptunaRunner",
    "StudySummary",
    "format_top_trials",
    "load_best_params",
    "make_pruner",
    "make_pruning_callback",
    "make_sampler",
    "parse_search_space",
    "suggest_params",
    "summarize_study",
]
