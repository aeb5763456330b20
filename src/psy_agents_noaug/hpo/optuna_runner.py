"""OptunaRunner: an Optuna study tracked in MLflow as one parent run with a child per trial.

One process or fifty run the same code against one study; they share one parent run
``HPO_<study_name>`` (summary, best params, trial history, figures), and every trial runs
inside its own nested child run ``trial_NNNN`` (``NNNN`` = Optuna's trial number, from 0),
which is the *active* MLflow run on the calling thread while the objective runs, so whatever
the objective logs (the Trainer's ``train/*``, ``epoch/*``, ``system/*``) lands in that trial.
Parent and trial runs follow the one run lifecycle (:class:`~psy_agents_noaug.tracking.
TrackedRun`): they carry the heartbeat tag from their first moment, and end after their
points, so `psy-agents doctor` can end any of them whose worker died.

Trial outcomes in MLflow:

* complete: child ``FINISHED``, tag ``hpo.state=COMPLETE``, metric ``trial/<metric>``;
* pruned: child ``FINISHED`` with tag ``hpo.state=PRUNED`` (pruning is the designed early
  end of a trial, not an error or a user kill) and ``hpo.pruned_at_epoch``;
* failed: child ``FAILED``, tags ``hpo.state=FAIL`` and ``hpo.error``; the study goes on;
* lost (its worker died): failed by the heartbeat of another worker, its child run set
  ``FAILED``, and the trial re-queued with the same params (up to ``max_retry`` times).

Trial budget: ``n_trials`` is the size of the *study*, not of one call. Workers claim trials
inside the study lock and stop once the study holds ``n_trials`` trials (a lost trial that was
re-queued is replaced by its retry, not counted twice), so three workers asked for 12 trials
finish exactly 12, and rerunning a finished study's command does nothing more.

Only Optuna's public API is used (``ask``/``tell``, storage methods by trial id); so
``study.stop()``, which Optuna allows only inside its own ``study.optimize``, works in
callbacks through the study view they receive, and objectives call :meth:`OptunaRunner.stop`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from psy_agents_noaug.hpo.parent_run import ParentRun, StudySummary, summarize_study
from psy_agents_noaug.hpo.samplers import make_pruner, make_sampler
from psy_agents_noaug.hpo.search_space import SearchSpace, parse_search_space, suggest_params
from psy_agents_noaug.hpo.storage import StorageHandle, open_storage
from psy_agents_noaug.tracking import TrackedRun, ensure_experiment, status_for, tags
from psy_agents_noaug.tracking.store import ensure_schema

__all__ = ["ObjectiveFn", "OptunaRunner", "format_top_trials", "load_best_params"]

_log = logging.getLogger(__name__)

ObjectiveFn = Callable[[optuna.Trial, dict[str, Any]], float]
TrialCallback = Callable[[Any, FrozenTrial], None]

_DIRECTIONS = ("maximize", "minimize")
_MAX_TAG_CHARS = 4000
#: Seconds between looks at the study while this worker waits for others' last trials.
_IDLE_POLL_S = 1.0
#: A failed trial older than this is no longer being ended by its own worker.
_SETTLE_S = 60.0
_TRIAL_RUN_ATTR = "mlflow_run_id"


def _finite_value(result: Any) -> float:
    """The objective's return as a finite float (else the trial fails with this message)."""
    if hasattr(result, "item") and callable(result.item):
        result = result.item()  # 0-dim tensor / numpy scalar
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise TypeError(f"objective must return a number, got {type(result).__name__}")
    value = float(result)
    if not math.isfinite(value):
        raise ValueError(f"objective returned {value!r}, not a finite number")
    return value


class _StaleTrialHandler:
    """Heartbeat-stale callback: re-queue the lost trial and remember it for MLflow."""

    def __init__(self, max_retry: int | None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.lost: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        _log.warning("trial %d lost its worker (no heartbeat); re-queued", trial.number)
        self.lost.append(trial)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry(study, trial)

    def drain(self) -> list[FrozenTrial]:
        lost, self.lost = self.lost, []
        return lost


class _TrialRuns:
    """Creates, fills and ends the nested child run of each trial."""

    def __init__(
        self, tracking_uri: str, experiment_id: str, parent_run_id: str, study_name: str
    ) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study_name = study_name

    def start(self, trial: optuna.Trial, retry_of: int | None) -> TrackedRun:
        """Create ``trial_NNNN`` under the parent and make it this thread's active run."""
        run_tags = {
            tags.HPO_STUDY_NAME: self.study_name,
            tags.HPO_TRIAL_NUMBER: str(trial.number),
            tags.HPO_STATE: "RUNNING",
        }
        if retry_of is not None:
            run_tags[tags.HPO_RETRY_OF] = str(retry_of)
        run = TrackedRun.start(
            self.tracking_uri,
            self.experiment_id,
            run_name=f"trial_{trial.number:04d}",
            run_tags=run_tags,
            parent_run_id=self.parent_run_id,
            # A lost trial is failed by another worker's heartbeat check (or doctor), with the
            # study's own words; its writer must not race that with a KILLED of its own.
            exclusive=False,
        )
        trial.set_user_attr(_TRIAL_RUN_ATTR, run.run_id)
        return run

    def log_params(self, run: TrackedRun, trial: optuna.Trial, params: Mapping[str, Any]) -> None:
        values = {f"hpo/{k}": v for k, v in params.items()}
        values.update(trial_number=trial.number, study_name=self.study_name)
        run.sink.log_params(values)

    def end(
        self,
        run: TrackedRun,
        trial: FrozenTrial,
        *,
        metric: str,
        error: str | None,
        duration_s: float,
        status: str,
    ) -> None:
        """Outcome metrics and tags, then the run's end after all its points."""
        values = {"trial/number": float(trial.number), "trial/duration_seconds": duration_s}
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            values[f"trial/{metric}"] = float(trial.value)
        run.sink.log_dict(values, step=0)
        outcome = {tags.HPO_STATE: trial.state.name}
        if error:
            outcome[tags.HPO_ERROR] = error[:_MAX_TAG_CHARS]
        if trial.state == TrialState.PRUNED and trial.last_step is not None:
            outcome[tags.HPO_PRUNED_AT_EPOCH] = str(trial.last_step)
        run.sink.set_tags(outcome)
        run.end(status, error if status != "FINISHED" else None)

    def close_lost(self, trial: FrozenTrial, grace_s: float | None) -> None:
        """End a dead worker's child run as FAILED (its own process cannot any more)."""
        run_id = trial.user_attrs.get(_TRIAL_RUN_ATTR)
        if not run_id:
            return
        try:
            run = self.client.get_run(run_id)
            # KILLED: the dead worker's metric writer saw its process go and ended the run.
            settled = run.data.tags.get(tags.HPO_STATE) in ("COMPLETE", "PRUNED", "FAIL")
            if run.info.status not in ("RUNNING", "KILLED") or settled:
                return
            message = "worker lost: no heartbeat"
            if grace_s is not None:
                message += f" for more than {grace_s:g} s"
            self.client.log_batch(
                run_id,
                tags=[
                    RunTag(tags.HPO_STATE, "FAIL"),
                    RunTag(tags.HPO_ERROR, message),
                    RunTag(tags.END_REASON, message),
                ],
            )
            self.client.set_terminated(run_id, status="FAILED")
        except Exception:  # bookkeeping for a dead run must not stop the study
            _log.warning("could not close the run %s of lost trial %d", run_id, trial.number)


class _StudyView:
    """The study as a callback sees it: ``stop()`` ends this runner's loop.

    Optuna's own ``Study.stop`` only works inside ``Study.optimize``, which this runner does
    not use (it claims trials under a lock to keep the budget exact); every other attribute
    is the study's own.
    """

    def __init__(self, study: optuna.Study, stop: Callable[[], None]) -> None:
        self._study = study
        self._stop = stop

    def stop(self) -> None:
        self._stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def format_top_trials(study: optuna.Study, metric: str, k: int = 10) -> str:
    """A printable table of the ``k`` best completed trials, under a one-line summary.

    Args:
        study: The study.
        metric: Objective name (column title).
        k: Rows to show.

    Returns:
        The text.
    """
    s = summarize_study(study)
    head = (
        f"Study {study.study_name}: {s.total} trials ({s.completed} complete, {s.pruned} pruned, "
        f"{s.failed} failed, {s.running} running)"
    )
    done = list(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not done:
        return head + "\nno completed trials"
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda t: t.number)
    done.sort(key=lambda t: t.value, reverse=maximize)  # type: ignore[arg-type, return-value]
    rows = []
    for rank, t in enumerate(done[:k], start=1):
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_start and t.datetime_complete
            else float("nan")
        )
        params = ", ".join(f"{n}={_short(v)}" for n, v in sorted(t.params.items()))
        rows.append((str(rank), str(t.number), f"{t.value:.6g}", f"{duration:.1f}", params))
    titles = ("rank", "trial", metric, "seconds", "params")
    widths = [max(len(titles[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    lines = [
        "  ".join(titles[i].rjust(widths[i]) for i in range(4)) + "  " + titles[4],
        *("  ".join(r[i].rjust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows),
    ]
    best = f"best {metric} = {s.best_value:.6g} (trial {s.best_trial_number})"
    return "\n".join([head, best, *lines])


def _describe(strategy: object) -> str:
    return strategy if isinstance(strategy, str) else type(strategy).__name__


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class OptunaRunner:
    """Runs an Optuna study with MLflow nested runs; safe to run from many workers at once.

    Args:
        study_name: Study name; also names the parent run ``HPO_<study_name>``.
        direction: ``"maximize"`` or ``"minimize"``.
        metric: Name of the objective's value, e.g. ``"val_f1_macro"``: gives the parent
            metric ``best_val_f1_macro``, the trial metric ``trial/val_f1_macro``, and is the
            key the pruning hook reports each epoch.
        storage: None (in memory, one process), ``"journal:<path>"`` (workers on one
            machine), a database URL such as ``postgresql://user@host/db`` (workers on many
            hosts), or a ready Optuna storage.
        sampler: ``"tpe"``, ``"random"``, ``"cmaes"``, ``"grid"`` or a sampler instance.
        pruner: ``"median"``, ``"hyperband"``, ``"none"`` or a pruner instance.
        seed: Sampler seed. With shared storages each worker reseeds (else parallel workers
            would all propose the same points).
        heartbeat_interval: Seconds between heartbeats of a running trial on journal/RDB
            storages; None disables heartbeats (a killed worker's trial then stays RUNNING).
        grace_period: Seconds without heartbeat before a trial is failed (default
            ``2 * heartbeat_interval``).
        max_retry: Times a lost trial is re-queued (None: forever).
        plot_interval_s: Least seconds between uploads of the parent's HTML figures (always
            written at the end); None writes no figures.

    Raises:
        ValueError: A bad direction, name, or option (the message names it).

    Example:
        >>> runner = OptunaRunner("demo", "maximize", "score", sampler="random")
        >>> study = runner.optimize(
        ...     lambda trial, p: -(p["x"] - 1) ** 2, n_trials=3,
        ...     search_space={"x": {"type": "float", "low": -2, "high": 2}},
        ...     log_to_mlflow=False, show_progress_bar=False, print_summary=False)
        >>> len(study.trials)
        3
    """

    def __init__(
        self,
        study_name: str,
        direction: str,
        metric: str,
        storage: str | optuna.storages.BaseStorage | None = None,
        sampler: str | optuna.samplers.BaseSampler = "tpe",
        pruner: str | optuna.pruners.BasePruner | None = "median",
        *,
        seed: int | None = None,
        heartbeat_interval: int | None = 10,
        grace_period: int | None = None,
        max_retry: int | None = 3,
        plot_interval_s: float | None = 120.0,
    ) -> None:
        if not isinstance(study_name, str) or not study_name.strip():
            raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
        if str(direction).lower() not in _DIRECTIONS:
            choices = ", ".join(_DIRECTIONS)
            raise ValueError(f"direction must be one of {choices}, got {direction!r}")
        if not isinstance(metric, str) or not metric.strip():
            raise ValueError(f"metric must be a non-empty string, got {metric!r}")
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0 or None, got {heartbeat_interval}")
        if grace_period is not None and grace_period <= 0:
            raise ValueError(f"grace_period must be > 0 or None, got {grace_period}")
        if max_retry is not None and max_retry < 0:
            raise ValueError(f"max_retry must be >= 0 or None, got {max_retry}")
        # Validate names now (a typo fails at construction); build the objects in optimize(),
        # where the search space that "grid" needs is known.
        if isinstance(sampler, str) and sampler.lower() != "grid":
            make_sampler(sampler, seed=seed)
        make_pruner(pruner)
        self.study_name = study_name
        self.direction = str(direction).lower()
        self.metric = metric
        self.storage = storage
        self.sampler = sampler
        self.pruner = pruner
        self.seed = seed
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.plot_interval_s = plot_interval_s
        self.study: optuna.Study | None = None
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.summary: StudySummary | None = None
        self._stop: threading.Event | None = None

    @property
    def best_params(self) -> dict[str, Any]:
        """Parameters of the best completed trial (after :meth:`optimize`)."""
        return dict(self.summary.best_params) if self.summary else {}

    @property
    def best_value(self) -> float | None:
        """Best objective value (after :meth:`optimize`)."""
        return self.summary.best_value if self.summary else None

    def optimize(
        self,
        objective_fn: ObjectiveFn,
        n_trials: int | None,
        search_space: Mapping[str, Any] | None = None,
        mlflow_tracking_uri: str | None = None,
        mlflow_experiment_name: str | None = None,
        timeout: float | None = None,
        *,
        catch: tuple[type[Exception], ...] = (Exception,),
        callbacks: Iterable[TrialCallback] | None = None,
        show_progress_bar: bool = True,
        print_summary: bool = True,
        log_to_mlflow: bool = True,
        top_k: int = 10,
    ) -> optuna.Study:
        """Run trials until the study holds ``n_trials`` of them (or ``timeout`` passes).

        Args:
            objective_fn: ``objective_fn(trial, params) -> float``; ``params`` holds the
                values sampled from ``search_space``. It runs inside the trial's child run,
                may call ``trial.report``/raise ``optuna.TrialPruned`` (see
                :func:`~psy_agents_noaug.hpo.samplers.make_pruning_callback`) and may sample
                more with ``trial.suggest_*``.
            n_trials: Size of the study (shared by all workers); None = until ``timeout``.
            search_space: Plain-dict space (see :mod:`~psy_agents_noaug.hpo.search_space`).
            mlflow_tracking_uri: Tracking store; None = ``mlflow.get_tracking_uri()``. It is
                set as the process's tracking URI, so the objective logs to the same store.
            mlflow_experiment_name: Experiment of the parent run; None = ``hpo_<study_name>``.
            timeout: Seconds after which this worker starts no new trial.
            catch: Exceptions that fail one trial but not the study; others fail the trial,
                end the study's bookkeeping and propagate.
            callbacks: ``callback(study, frozen_trial)`` after each trial of this worker.
            show_progress_bar: Show a tqdm bar over the study's trials.
            print_summary: Print the table of the best trials at the end.
            log_to_mlflow: False runs the study without any MLflow run.
            top_k: Rows in the printed table.

        Returns:
            The Optuna study.

        Raises:
            ValueError: Bad ``n_trials``/``timeout``/search space, or the stored study was
                created with the other direction.
        """
        if not callable(objective_fn):
            raise ValueError("objective_fn must be callable as objective_fn(trial, params)")
        if n_trials is None and timeout is None:
            raise ValueError("give n_trials, timeout, or both (else the study never ends)")
        if n_trials is not None and (
            isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
        ):
            raise ValueError(f"n_trials must be an integer >= 1 or None, got {n_trials!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
        space = parse_search_space(search_space)
        stale = _StaleTrialHandler(self.max_retry)
        handle = open_storage(
            self.storage,
            self.study_name,
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            stale_trial_callback=stale,
        )
        session = _Session(
            self,
            self._open_study(handle, space),
            handle,
            stale,
            space,
            objective_fn,
            n_trials,
            timeout,
            catch,
            list(callbacks or ()),
            show_progress_bar,
        )
        self._stop = session.stopped
        if log_to_mlflow:
            uri = mlflow_tracking_uri or mlflow.get_tracking_uri()
            self._attach_mlflow(session, uri, mlflow_experiment_name or f"hpo_{self.study_name}")
        end_status = "FINISHED"
        try:
            session.run()
        except BaseException as exc:
            end_status = status_for(exc)[0]
            raise
        finally:
            self.summary = session.wrap_up(end_status)
        if print_summary:
            print(format_top_trials(session.study, self.metric, top_k))
        return session.study

    def stop(self) -> None:
        """Start no new trial (from an objective or another thread); the current one ends."""
        if self._stop is not None:
            self._stop.set()

    def _open_study(self, handle: StorageHandle, space: SearchSpace) -> optuna.Study:
        sampler = make_sampler(self.sampler, seed=self.seed, search_space=space)
        if not isinstance(handle.storage, optuna.storages.InMemoryStorage):
            sampler.reseed_rng()  # else parallel workers would all propose the same points
        with handle.lock():
            study = optuna.create_study(
                storage=handle.storage,
                sampler=sampler,
                pruner=make_pruner(self.pruner),
                study_name=self.study_name,
                direction=optuna.study.StudyDirection[self.direction.upper()],
                load_if_exists=True,
            )
        if study.direction.name.lower() != self.direction:
            raise ValueError(
                f"study {self.study_name!r} in {handle.description} was created to "
                f"{study.direction.name.lower()}, not {self.direction}; use another study_name"
            )
        self.study = study
        return study

    def _attach_mlflow(self, session: _Session, uri: str, experiment_name: str) -> None:
        """The study's parent run (created by the first worker) and the trial-run factory."""
        mlflow.set_tracking_uri(uri)
        ensure_schema(uri)
        experiment_id = ensure_experiment(
            MlflowClient(uri),
            experiment_name,
            description=(
                "Optuna hyperparameter searches: one parent run `HPO_<study name>` per study, with "
                "one nested run per trial."
            ),
        )
        session.parent = ParentRun.attach(
            session.study,
            uri,
            experiment_id,
            metric=self.metric,
            lock=session.handle.lock,
            tags=self._parent_tags(session.handle, session.n_trials),
            plot_interval_s=self.plot_interval_s,
        )
        self.parent_run_id = session.parent.run_id
        self.experiment_id = experiment_id
        session.runs = _TrialRuns(uri, experiment_id, session.parent.run_id, self.study_name)

    def _parent_tags(self, handle: StorageHandle, n_trials: int | None) -> dict[str, str]:
        return {
            tags.HPO_STUDY_NAME: self.study_name,
            tags.HPO_DIRECTION: self.direction,
            tags.HPO_METRIC: self.metric,
            tags.HPO_N_TRIALS: str(n_trials),
            tags.HPO_SAMPLER: _describe(self.sampler),
            tags.HPO_PRUNER: _describe(self.pruner),
            tags.HPO_STORAGE: handle.description,
        }


@dataclass
class _Session:
    """One worker's part in one study: what :meth:`OptunaRunner.optimize` set up, and the loop."""

    runner: OptunaRunner
    study: optuna.Study
    handle: StorageHandle
    stale: _StaleTrialHandler
    space: SearchSpace
    objective: ObjectiveFn
    n_trials: int | None
    timeout: float | None
    catch: tuple[type[Exception], ...]
    callbacks: list[TrialCallback]
    show_progress_bar: bool
    runs: _TrialRuns | None = None
    parent: ParentRun | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def metric(self) -> str:
        return self.runner.metric

    def run(self) -> None:
        """Claim and run trials until the budget, the timeout or a stop request ends it."""
        from tqdm.auto import tqdm

        started = time.monotonic()
        idle = threading.Event()
        view = _StudyView(self.study, self.stopped.set)
        bar = tqdm(
            total=self.n_trials,
            desc=f"HPO {self.study.study_name}",
            unit="trial",
            disable=not self.show_progress_bar,
        )
        try:
            while not self.stopped.is_set():
                if self.timeout is not None and time.monotonic() - started >= self.timeout:
                    break
                trial, wait = self.claim()
                self.close_lost()
                if trial is None:
                    if not wait:
                        break
                    # Others' trials still run: wait, so a trial whose worker dies is retried
                    # (and the last worker out closes the parent run).
                    idle.wait(min(float(self.handle.heartbeat_interval or 1), _IDLE_POLL_S))
                    continue
                frozen = self.run_trial(trial)
                self._update_parent(bar)
                for callback in self.callbacks:
                    callback(view, frozen)
        finally:
            bar.close()

    def _update_parent(self, bar: Any) -> None:
        if self.parent is not None:
            try:
                summary = self.parent.update(self.study)
                if summary.best_value is not None:
                    bar.set_postfix({f"best_{self.metric}": f"{summary.best_value:.4g}"})
            except Exception:  # a summary write must not stop the study
                _log.warning("could not update the parent run summary", exc_info=True)
        _, finished, _, _ = self.budget()
        bar.n = min(finished, self.n_trials) if self.n_trials else finished
        bar.refresh()

    def budget(self) -> tuple[int, int, bool, bool]:
        """(trials counted against n_trials, finished among them, any waiting, any running)."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        counted = [t for t in trials if t.number not in retried]
        finished = sum(t.state.is_finished() for t in counted)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        running = any(t.state == TrialState.RUNNING for t in trials)
        return len(counted), finished, waiting, running

    def claim(self) -> tuple[optuna.Trial | None, bool]:
        """Inside the study lock: fail stale trials, then take a trial if the budget allows.

        Returns:
            (the trial or None, whether to wait for other workers' running trials).
        """
        with self.handle.lock():
            self.handle.fail_stale_trials(self.study, self.stale)
            counted, _, waiting, running = self.budget()
            if self.n_trials is None or counted < self.n_trials or waiting:
                with warnings.catch_warnings():
                    # "Heartbeat of storage is supposed to be used with Study.optimize": this
                    # runner beats for its trials itself (StorageHandle.heartbeat).
                    warnings.simplefilter("ignore", UserWarning)
                    return self.study.ask(), False
        return None, running and self.handle.heartbeat_interval is not None

    def run_trial(self, trial: optuna.Trial) -> FrozenTrial:
        start = time.monotonic()
        trial_id = self.handle.trial_id(self.study, trial.number)
        run: TrackedRun | None = None
        state = TrialState.FAIL
        value: float | None = None
        error: str | None = None
        reraise: BaseException | None = None
        heartbeat = self.handle.heartbeat(trial_id) or contextlib.nullcontext()
        with heartbeat:
            try:
                if self.runs is not None:
                    attrs = self.handle.storage.get_trial_system_attrs(trial_id)
                    run = self.runs.start(trial, attrs.get("failed_trial"))
                params = suggest_params(trial, self.space)
                if self.runs is not None and run is not None:
                    self.runs.log_params(run, trial, params)
                value = _finite_value(self.objective(trial, params))
                state = TrialState.COMPLETE
            except optuna.TrialPruned as exc:
                state, error = TrialState.PRUNED, str(exc) or None
            except self.catch as exc:
                error = f"{type(exc).__name__}: {exc}"
                _log.warning("trial %d failed: %s", trial.number, error, exc_info=True)
            except BaseException as exc:  # KeyboardInterrupt, or an exception not in `catch`
                error = f"{type(exc).__name__}: {exc}"
                reraise = exc
        if error is not None and state == TrialState.FAIL:
            # Suppressed: the trial may already be failed by another worker's heartbeat check.
            with contextlib.suppress(Exception):
                trial.set_user_attr("error", error[:_MAX_TAG_CHARS])
        try:
            self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            # Another worker failed this trial as stale (this worker stalled past the grace
            # period); its retry will run elsewhere.
            _log.warning("trial %d was finished elsewhere: %s", trial.number, exc)
            error = error or "failed by heartbeat check while still running (worker stalled)"
        self.handle.trial_finished(trial_id)
        frozen = self.handle.storage.get_trial(trial_id)
        if self.runs is not None and run is not None:
            self._end_run(run, frozen, error, time.monotonic() - start, reraise)
        if reraise is not None:
            raise reraise
        return frozen

    def _end_run(
        self,
        run: TrackedRun,
        frozen: FrozenTrial,
        error: str | None,
        duration_s: float,
        reraise: BaseException | None,
    ) -> None:
        if isinstance(reraise, KeyboardInterrupt):
            status = status_for(reraise)[0]
        else:
            status = "FAILED" if frozen.state == TrialState.FAIL else "FINISHED"
        assert self.runs is not None
        try:
            self.runs.end(
                run, frozen, metric=self.metric, error=error, duration_s=duration_s, status=status
            )
        except Exception:  # the trial itself is already recorded in the study
            _log.warning("could not finish the run of trial %d", frozen.number, exc_info=True)
            if run.active:
                run.end(status, error)

    def close_lost(self) -> None:
        for lost in self.stale.drain():
            if self.runs is not None:
                self.runs.close_lost(lost, self.handle.grace_period)

    def wrap_up(self, status: str) -> StudySummary:
        """Close the parent run if this worker is the last one out; else refresh it."""
        self.close_lost()
        if self.parent is None:
            return summarize_study(self.study)
        try:
            with self.handle.lock():
                summary = summarize_study(self.study)
                if self.runs is not None:
                    # Backstop for lost trials whose detecting worker died before closing their
                    # run; recent failures are skipped: their own worker may still be ending them.
                    settled = datetime.datetime.now() - datetime.timedelta(seconds=_SETTLE_S)
                    for trial in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                        if trial.datetime_complete and trial.datetime_complete < settled:
                            self.runs.close_lost(trial, self.handle.grace_period)
                if summary.running == 0 and summary.waiting == 0:
                    return self.parent.finish(self.study, status=status)
                return self.parent.leave(self.study)
        except Exception:  # never hide the study's own result or exception
            _log.warning("could not write the final HPO summary", exc_info=True)
            return summarize_study(self.study)


def load_best_params(
    study_name: str,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
) -> dict[str, Any]:
    """Best params of a finished study, from its Optuna storage or its MLflow parent run.

    The storage is read when given (exact, typed values). Otherwise the latest parent run
    ``HPO_<study_name>`` in ``experiment_name`` is read (its ``hpo.best_params`` JSON tag),
    which also works for in-memory studies, whose storage is gone.

    Args:
        study_name: The study.
        storage: Its storage (None: use MLflow).
        tracking_uri: MLflow store holding the parent run.
        experiment_name: Experiment of the parent run (default ``hpo_<study_name>``).

    Returns:
        ``{name: value}``.

    Raises:
        ValueError: No such study/run, or it has no completed trial.
    """
    import json

    if storage is not None:
        handle = open_storage(storage, study_name, heartbeat_interval=None)
        try:
            study = optuna.load_study(study_name=study_name, storage=handle.storage)
        except KeyError:
            raise ValueError(f"no study {study_name!r} in {handle.description}") from None
        summary = summarize_study(study)
        if summary.best_trial_number is None:
            raise ValueError(f"study {study_name!r} has no completed trial yet")
        return dict(summary.best_params)
    if tracking_uri is None:
        raise ValueError(
            f"cannot find the best params of study {study_name!r}: give its storage "
            "(stage.source_storage) or an MLflow tracking store that holds its parent run"
        )
    client = MlflowClient(tracking_uri)
    experiment = experiment_name or f"hpo_{study_name}"
    found = client.get_experiment_by_name(experiment)
    runs = (
        client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{tags.RUN_NAME}` = 'HPO_{study_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=20,
        )
        if found is not None
        else []
    )
    for run in runs:
        best = json.loads(run.data.tags.get(tags.HPO_BEST_PARAMS) or "{}")
        if best:
            return dict(best)
    raise ValueError(
        f"no parent run HPO_{study_name} with a completed trial in experiment {experiment!r} "
        f"of {tracking_uri}; run that stage first (or set stage.source_storage)"
    )
