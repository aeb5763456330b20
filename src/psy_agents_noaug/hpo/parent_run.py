"""The study's MLflow parent run: created once for all workers, kept current as trials end.

Every worker of a study finds the parent run id in the study's user attributes
(``mlflow_parent_run_id``). The first worker creates the run inside the study lock (see
:mod:`psy_agents_noaug.hpo.storage`), so workers that start together still make exactly one.

The summary is always *recomputed from the study* (never counted incrementally), so the
parent run's counts equal the study's own counts whichever worker wrote last. Metrics are
logged with ``step = number of finished trials``, so their history shows the study's
progress and a late write from a slower worker never hides a newer value.

MLflow params cannot change once logged, so while the study runs the best parameters live in
mutable tags (``hpo.best_params`` as JSON, ``hpo.best/<name>``); ``best_hpo/*`` params are
logged once, when the study is finished.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from psy_agents_noaug.tracking import TrackedRun
from psy_agents_noaug.tracking import tags as run_tags

__all__ = [
    "HISTORY_CSV",
    "OPTIMIZATION_HTML",
    "PARENT_RUN_ATTR",
    "ParentRun",
    "StudySummary",
    "summarize_study",
    "trials_history",
    "write_plots",
]

_log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"
HISTORY_CSV = "hpo_trials_history.csv"
OPTIMIZATION_HTML = "hpo_optimization_history.html"
IMPORTANCES_HTML = "hpo_param_importances.html"
PARALLEL_HTML = "hpo_parallel_coordinate.html"
TIMELINE_HTML = "hpo_timeline.html"
INTERMEDIATE_HTML = "hpo_intermediate_values.html"
#: Completed trials needed before param importances / parallel coordinates mean anything.
MIN_TRIALS_FOR_ANALYSIS = 3


@dataclass(frozen=True)
class StudySummary:
    """Counts and best trial of a study at one moment.

    Attributes:
        total: All trials, any state.
        completed: COMPLETE trials.
        pruned: PRUNED trials.
        failed: FAIL trials (errors, and trials failed by heartbeat).
        running: RUNNING trials.
        waiting: WAITING trials (enqueued, e.g. retries of a dead worker's trial).
        best_value: Best objective value among completed trials, or None.
        best_trial_number: Number of that trial, or None.
        best_params: Its parameters.
    """

    total: int
    completed: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best_value: float | None = None
    best_trial_number: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Trials that reached a final state."""
        return self.completed + self.pruned + self.failed

    def metrics(self, metric: str) -> dict[str, float]:
        """The parent-run metrics: ``best_<metric>``, ``best_trial_number`` and the counts."""
        out = {
            "total_trials": float(self.total),
            "completed_trials": float(self.completed),
            "pruned_trials": float(self.pruned),
            "failed_trials": float(self.failed),
            "running_trials": float(self.running),
        }
        if self.best_value is not None and self.best_trial_number is not None:
            out[f"best_{metric}"] = float(self.best_value)
            out["best_trial_number"] = float(self.best_trial_number)
        return out


def _best(trials: list[FrozenTrial], direction: optuna.study.StudyDirection) -> FrozenTrial | None:
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        return None
    pick = max if direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: (t.value, -t.number))  # ties: earliest trial


def summarize_study(study: optuna.Study) -> StudySummary:
    """Count the study's trials by state and find the best completed one.

    Args:
        study: A single-objective study.

    Returns:
        The :class:`StudySummary`.
    """
    trials = study.get_trials(deepcopy=False)
    count = {state: 0 for state in TrialState}
    for trial in trials:
        count[trial.state] += 1
    best = _best(trials, study.direction)
    return StudySummary(
        total=len(trials),
        completed=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        waiting=count[TrialState.WAITING],
        best_value=None if best is None else best.value,
        best_trial_number=None if best is None else best.number,
        best_params={} if best is None else dict(best.params),
    )


def trials_history(study: optuna.Study) -> Any:
    """One row per trial: number, state, value, duration, params, MLflow run, error.

    Args:
        study: The study.

    Returns:
        A ``pandas.DataFrame`` (columns ``params_<name>`` for each parameter).
    """
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = None
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "duration_seconds": duration,
            "datetime_start": trial.datetime_start,
            "datetime_complete": trial.datetime_complete,
        }
        for name, value in sorted(trial.params.items()):
            row[f"params_{name}"] = value
        row["mlflow_run_id"] = trial.user_attrs.get("mlflow_run_id")
        row["retry_of"] = trial.system_attrs.get("failed_trial")
        row["error"] = trial.user_attrs.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


def write_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Write the study's Plotly HTML figures into ``out_dir``.

    Always the optimization history and the timeline (trials per worker over time); the
    intermediate values (what the pruner saw) once a trial reported any; param importances
    and parallel coordinates once :data:`MIN_TRIALS_FOR_ANALYSIS` trials are complete. A
    figure that fails to render is logged and skipped (plots never fail a study). Files
    embed plotly.js, so they open offline from the MLflow UI.

    Args:
        study: The study.
        out_dir: Folder to write into.

    Returns:
        The files written.
    """
    from optuna import visualization as vis

    figures: list[tuple[str, Callable[[], Any]]] = [
        (OPTIMIZATION_HTML, lambda: vis.plot_optimization_history(study)),
        (TIMELINE_HTML, lambda: vis.plot_timeline(study)),  # which worker ran what, when
    ]
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        # the per-epoch values the pruner judged trials by
        figures.append((INTERMEDIATE_HTML, lambda: vis.plot_intermediate_values(study)))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    has_params = any(t.params for t in complete)
    if len(complete) >= MIN_TRIALS_FOR_ANALYSIS and has_params:
        figures.append((IMPORTANCES_HTML, lambda: vis.plot_param_importances(study)))
        figures.append((PARALLEL_HTML, lambda: vis.plot_parallel_coordinate(study)))
    written = []
    for name, make in figures:
        try:
            path = out_dir / name
            make().write_html(str(path), include_plotlyjs=True, full_html=True)
            written.append(path)
        except Exception:  # a figure is never worth a failed study
            _log.warning("could not render %s", name, exc_info=True)
    return written


class ParentRun:
    """The parent run of one study, as one worker sees it.

    Use :meth:`attach` (not the constructor) so all workers share one run. Each worker owns
    it non-exclusively while it works (its writer renews the heartbeat; one worker's death
    does not end it); the last worker out ends it with :meth:`finish`, the others
    :meth:`leave`.

    Args:
        run: The parent run, owned by this worker.
        metric: Objective name, e.g. ``"val_f1_macro"`` (gives ``best_val_f1_macro``).
        plot_interval_s: Least seconds between two uploads of the HTML figures (they are
            large); the CSV is uploaded after every trial, figures always at the end.
            None: no figures at all.
    """

    def __init__(
        self, run: TrackedRun, metric: str, *, plot_interval_s: float | None = 120.0
    ) -> None:
        self.run = run
        self.run_id = run.run_id
        self.metric = metric
        self.plot_interval_s = plot_interval_s
        self._last_plot = time.monotonic()  # figures first after one interval, and at the end

    @classmethod
    def attach(
        cls,
        study: optuna.Study,
        tracking_uri: str,
        experiment_id: str,
        *,
        metric: str,
        lock: Callable[[], AbstractContextManager[None]],
        tags: dict[str, str] | None = None,
        plot_interval_s: float | None = 120.0,
    ) -> ParentRun:
        """Find the study's parent run, or create it if this is the first worker.

        Args:
            study: The study (its user attrs hold the run id).
            tracking_uri: The store.
            experiment_id: Where the run lives.
            metric: Objective name.
            lock: The study lock; creation happens inside it.
            tags: Tags for a newly created run.
            plot_interval_s: See the class.

        Returns:
            The attached :class:`ParentRun` (status RUNNING).
        """
        client = MlflowClient(tracking_uri)
        with lock():
            run_id = study.user_attrs.get(PARENT_RUN_ATTR)
            if run_id is not None:
                try:
                    found = client.get_run(run_id)
                except MlflowException:
                    found = None
                usable = (
                    found is not None
                    and found.info.lifecycle_stage == "active"
                    and found.info.experiment_id == experiment_id
                )
                if usable:
                    assert found is not None
                    if found.info.status != "RUNNING":
                        client.update_run(run_id, status="RUNNING")
                    run = TrackedRun.attach(run_id, tracking_uri, exclusive=False)
                    return cls(run, metric, plot_interval_s=plot_interval_s)
                _log.warning(
                    "parent run %s of study %s is not in this tracking store/experiment "
                    "(or was deleted); creating a new one",
                    run_id,
                    study.study_name,
                )
            run = TrackedRun.start(
                tracking_uri,
                experiment_id,
                run_name=f"HPO_{study.study_name}",
                run_tags=tags,
                description=f"Optuna study {study.study_name}: one nested run per trial.",
                activate=False,
                exclusive=False,
            )
            study.set_user_attr(PARENT_RUN_ATTR, run.run_id)
            return cls(run, metric, plot_interval_s=plot_interval_s)

    def update(self, study: optuna.Study, *, plots: bool | None = None) -> StudySummary:
        """Write the current summary (metrics, best-params tags, CSV; figures if due).

        Args:
            study: The study to summarize.
            plots: Force (True) or skip (False) the figures; None = when the interval passed.

        Returns:
            The summary that was written.
        """
        summary = summarize_study(study)
        sink = self.run.sink  # through the metric sink: a store that is down delays this
        sink.log_dict(summary.metrics(self.metric), step=summary.finished)
        best = summary.best_params
        best_tags = {f"{run_tags.HPO_BEST_PREFIX}{k}": str(v) for k, v in best.items()}
        sink.set_tags({run_tags.HPO_BEST_PARAMS: json.dumps(best, default=str), **best_tags})
        if self.plot_interval_s is None:
            plots = False
        elif plots is None:
            plots = time.monotonic() - self._last_plot >= self.plot_interval_s
        self._upload_artifacts(study, plots=plots)
        sink.flush()  # readable before the next trial starts (journaled if the store is down)
        return summary

    def _upload_artifacts(self, study: optuna.Study, *, plots: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="hpo_summary_") as tmp:
            out = Path(tmp) / "summary"
            out.mkdir()
            trials_history(study).to_csv(out / HISTORY_CSV, index=False)
            if plots:
                write_plots(study, out)
                self._last_plot = time.monotonic()
            self.run.sink.log_artifact(out, mode="move")  # its files land at the run's root

    def leave(self, study: optuna.Study) -> StudySummary:
        """This worker is done but others still run trials: refresh, stop its heartbeat."""
        summary = self.update(study, plots=True)
        self.run.sink.disown_run()
        return summary

    def finish(self, study: optuna.Study, *, status: str = "FINISHED") -> StudySummary:
        """Final summary, figures, ``best_hpo/*`` params, and end the run.

        Args:
            study: The finished study.
            status: MLflow run status to end with.

        Returns:
            The final summary.
        """
        try:
            summary = self.update(study, plots=True)
        except Exception:  # a summary (CSV, figures) must never keep the run from ending
            _log.warning("could not write the final study summary", exc_info=True)
            summary = summarize_study(study)
        params = {f"best_hpo/{k}": v for k, v in summary.best_params.items()}
        if params:
            self.run.sink.log_params(params)  # a resumed study's new best: the tags hold it
        final_state = "COMPLETE" if status == "FINISHED" else status
        self.run.sink.set_tags({run_tags.HPO_STATUS: final_state})
        self.run.end(status)
        return summary
