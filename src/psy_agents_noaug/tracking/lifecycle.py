"""The one run lifecycle: start (or join), own with a heartbeat, log, end points-first.

Every run psy-agents creates (training runs, a Trainer's own run, HPO parents and trials)
is a :class:`TrackedRun`:

* **start**: created in its experiment (nested under a parent if it has one) with the
  heartbeat tag already set, so `doctor` can always tell a dead run from a live one;
* **own**: the metric writer renews the heartbeat every 30 s; with ``exclusive`` it ends
  the run KILLED if this process dies (an HPO parent is shared by many workers: not
  exclusive);
* **end**: every point logged so far is made durable first, *then* the terminal status is
  written (FINISHED, FAILED or KILLED, with the reason in a tag); when the store is down
  both wait in the run's journal, in that order, and the caller is told where.

Runs that psy-agents only logs into (the user's own ``with mlflow.start_run()``, a run
that :class:`~psy_agents_noaug.monitoring.SystemMetricsLogger` fills) are ended by MLflow's
own calls. MLflow offers no hook there, so :func:`install_end_hook` wraps
``MlflowClient.set_terminated`` once, the call that ``mlflow.end_run()``, leaving a ``with
mlflow.start_run()`` block, MLflow's exit handler and direct client calls all end in: for a
run that has points in a metric sink, the points are flushed and the status follows them
through the sink; other runs go straight to MLflow.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from psy_agents_noaug.tracking import tags
from psy_agents_noaug.tracking.sink import (
    DEFAULT_FLUSH_TIMEOUT_S,
    FlushResult,
    MetricSink,
    connections_of,
    get_sink,
)
from psy_agents_noaug.tracking.store import (
    DEFAULT_START_RETRY_S,
    first_line,
    mask_uri,
    retry_store_call,
)

__all__ = [
    "FAILED",
    "FINISHED",
    "KILLED",
    "TrackedRun",
    "ensure_experiment",
    "install_end_hook",
    "setup_experiment",
    "status_for",
]

log = logging.getLogger(__name__)

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
_HOOK_MARK = "__psy_agents_end_hook__"
_skip_hook = threading.local()  # run ids whose end this thread already sent through the sink


def status_for(exc: BaseException | None) -> tuple[str, str | None]:
    """The terminal status and reason for a run whose body ended with ``exc`` (or None)."""
    if exc is None:
        return FINISHED, None
    if isinstance(exc, KeyboardInterrupt):
        return KILLED, "interrupted (Ctrl-C or SIGTERM)"
    return FAILED, f"{type(exc).__name__}: {first_line(exc, 500)}"


def _warn_journaled(run_id: str, result: FlushResult) -> None:
    journals = [j for j in result.journals if run_id in j] or result.journals
    where = journals[0] if journals else "the journal folder"
    print(
        f"[psy-agents] the tracking store is unreachable: run {run_id}'s points and its end "
        f"status wait in {where}. Upload them once it answers: psy-agents sync {where}",
        file=sys.stderr,
        flush=True,
    )


def _end_through_sink(
    original: Any, client: Any, run_id: str, status: str | None, end_time: int | None
) -> None:
    if getattr(_skip_hook, "direct", False):
        original(client, run_id, status, end_time)
        return
    skipped: set[str] = getattr(_skip_hook, "runs", set())
    if run_id in skipped:
        skipped.discard(run_id)
        return
    connections = connections_of(run_id)
    uri = getattr(client, "tracking_uri", None)
    same_store = [c for c in connections if c.tracking_uri == uri]
    for other in connections:
        if other not in same_store[:1]:
            other.flush()  # points first, wherever they go
    if not same_store:
        original(client, run_id, status, end_time)
        return
    sink = MetricSink(run_id, same_store[0])
    sink.end_run(status or FINISHED, end_time_ms=end_time)
    result = sink.flush()
    if not result:
        _warn_journaled(run_id, result)


def install_end_hook() -> None:
    """Make every MLflow route to a run's end flush that run's points first (once)."""
    from mlflow.tracking import MlflowClient

    current = MlflowClient.set_terminated
    if getattr(current, _HOOK_MARK, False):
        return

    @functools.wraps(current)
    def set_terminated(
        self: Any, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        _end_through_sink(current, self, run_id, status, end_time)

    setattr(set_terminated, _HOOK_MARK, True)
    MlflowClient.set_terminated = set_terminated  # type: ignore[method-assign]


def _end_active_runs_at_exit() -> None:
    """Before the writers close: end runs still active, so their status follows their points.

    MLflow's own exit handler would end them too (FINISHED), but after our writers closed,
    and with the store down its status would be lost; here it waits in the journal.
    """
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    import mlflow

    with contextlib.suppress(Exception):
        while mlflow.active_run() is not None:
            mlflow.end_run()


atexit.register(_end_active_runs_at_exit)  # after the sink's: so it runs before it


@contextlib.contextmanager
def _skipping_hook(run_id: str) -> Iterator[None]:
    runs = getattr(_skip_hook, "runs", None)
    if runs is None:
        runs = _skip_hook.runs = set()
    runs.add(run_id)
    try:
        yield
    finally:
        runs.discard(run_id)


@contextlib.contextmanager
def deferred_interrupts(what: str) -> Iterator[None]:
    """A first Ctrl-C waits until the block is done (and says so); a second one interrupts.

    A run's end (points, then status) is short and leaves the run whole; cut halfway, the
    run would say one thing and hold another. Only the main thread can do this.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        print(
            f"\n[psy-agents] finishing {what} first (a few seconds); Ctrl-C again to leave now",
            file=sys.stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def ending_directly() -> Iterator[None]:
    """Runs ended in this block go straight to MLflow (a journal upload: its points are in)."""
    before = getattr(_skip_hook, "direct", False)
    _skip_hook.direct = True
    try:
        yield
    finally:
        _skip_hook.direct = before


def ensure_experiment(client: Any, name: str, *, description: str | None = None) -> str:
    """The id of experiment ``name``, created if needed (safe when processes race).

    A new experiment is marked as a model-training experiment (MLflow 3 then opens it on
    its runs, not on the GenAI overview) and gets ``description``.

    Raises:
        ValueError: The experiment exists but is deleted.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            created = client.create_experiment(
                name, tags={tags.EXPERIMENT_KIND: tags.EXPERIMENT_KIND_TRAINING}
            )
            if description:
                client.set_experiment_tag(created, tags.DESCRIPTION, description)
            return str(created)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
            "or choose another experiment name"
        )
    if tags.EXPERIMENT_KIND not in experiment.tags:
        client.set_experiment_tag(
            experiment.experiment_id, tags.EXPERIMENT_KIND, tags.EXPERIMENT_KIND_TRAINING
        )
    return str(experiment.experiment_id)


def setup_experiment(tracking_uri: str, name: str, *, description: str | None = None) -> str:
    """Point MLflow at the store and make ``name`` the active experiment; returns its id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(MlflowClient(tracking_uri), name, description=description)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class TrackedRun:
    """A run this process runs: heartbeat while alive, points before status at the end.

    Use :meth:`start` or :meth:`attach`; as a context manager, leaving the block ends the
    run FINISHED, FAILED (an exception, reason in a tag) or KILLED (Ctrl-C/SIGTERM), or
    with :attr:`status`/:attr:`reason` when the body set them.

    Example:
        >>> with TrackedRun.start(uri, experiment_id, run_name="demo") as run:  # doctest: +SKIP
        ...     run.sink.log("loss", 0.1, step=1)
    """

    def __init__(self, run_id: str, tracking_uri: str, sink: MetricSink, *, active: bool):
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.sink = sink
        self.active = active
        self.status: str | None = None  # set by the body to end otherwise than FINISHED
        self.reason: str | None = None
        self.result: FlushResult | None = None

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment_id: str | None,
        *,
        run_name: str | None,
        run_tags: Mapping[str, str] | None = None,
        description: str | None = None,
        parent_run_id: str | None = None,
        activate: bool = True,
        exclusive: bool = True,
        journal_dir: str | None = None,
        retry_s: float = DEFAULT_START_RETRY_S,
    ) -> TrackedRun:
        """Create the run (heartbeat tag set), own it, and make it active on this thread.

        Args:
            tracking_uri: The store.
            experiment_id: Its experiment (None: MLflow's active experiment; needs
                ``activate``).
            run_name: The run's name (None: MLflow makes one up; needs ``activate``).
            run_tags: Tags to create it with.
            description: Shown as the run's description in the MLflow UI.
            parent_run_id: Nest it under this run.
            activate: Make it this thread's active MLflow run (so ``mlflow.log_*`` and the
                Trainer log into it); False leaves the active run alone.
            exclusive: End it KILLED if this process dies (False for shared parent runs).
            journal_dir: Where its points wait when the store is down.
            retry_s: How long to keep trying a store that does not answer.
        """
        import mlflow
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags

        all_tags = {tags.HEARTBEAT: tags.heartbeat_value(), **dict(run_tags or {})}
        if description:
            all_tags[tags.DESCRIPTION] = description
        nested = mlflow.active_run() is not None
        if activate and parent_run_id is None:
            mlflow.set_tracking_uri(tracking_uri)
            run: Any = retry_store_call(
                lambda: mlflow.start_run(
                    experiment_id=experiment_id, run_name=run_name, tags=all_tags, nested=nested
                ),
                "start a run",
                budget_s=retry_s,
            )
        else:
            if experiment_id is None or run_name is None:
                raise ValueError("a run that is not activated needs experiment_id and run_name")
            if parent_run_id is not None:
                all_tags[tags.PARENT_RUN_ID] = parent_run_id
            client = MlflowClient(tracking_uri)
            run = retry_store_call(
                lambda: client.create_run(
                    experiment_id, run_name=run_name, tags=resolve_tags(all_tags)
                ),
                f"create the run {run_name}",
                budget_s=retry_s,
            )
            if activate:  # MLflow reads the run back first: a server may die right here
                retry_store_call(
                    lambda: mlflow.start_run(run_id=run.info.run_id, nested=nested),
                    f"start the run {run_name}",
                    budget_s=retry_s,
                )
        sink = get_sink(run.info.run_id, tracking_uri=tracking_uri, journal_dir=journal_dir)
        sink.own_run(exclusive=exclusive)
        return cls(run.info.run_id, tracking_uri, sink, active=activate)

    @classmethod
    def attach(
        cls,
        run_id: str,
        tracking_uri: str,
        *,
        activate: bool = False,
        exclusive: bool = True,
        journal_dir: str | None = None,
    ) -> TrackedRun:
        """Own an existing run (e.g. a study's parent run that another worker created)."""
        import mlflow

        if activate:
            mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
        sink = get_sink(run_id, tracking_uri=tracking_uri, journal_dir=journal_dir)
        sink.own_run(exclusive=exclusive)
        return cls(run_id, tracking_uri, sink, active=activate)

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, reason = status_for(exc)
        if exc is None and self.status is not None:
            status, reason = self.status, self.reason
        self.end(status, reason)

    def end(
        self,
        status: str = FINISHED,
        reason: str | None = None,
        *,
        timeout: float | None = DEFAULT_FLUSH_TIMEOUT_S,
    ) -> FlushResult:
        """Write every point, then the status; with the store down both go to the journal.

        Returns:
            The flush result (falsy when the points and the end wait in the journal).
        """
        import mlflow

        with deferred_interrupts(f"the end of run {self.run_id}"):
            self.sink.end_run(status, reason)
            self.result = self.sink.flush(timeout)
            if not self.result:
                _warn_journaled(self.run_id, self.result)
            active = mlflow.active_run()
            if self.active and active is not None and active.info.run_id == self.run_id:
                with _skipping_hook(self.run_id):  # the end went through the sink already
                    mlflow.end_run(status)
            self.active = False
        return self.result

    def __repr__(self) -> str:
        return f"TrackedRun({self.run_id!r} at {mask_uri(self.tracking_uri)})"
