"""Find and end orphaned runs: RUNNING in MLflow, but nothing is running them any more.

Only the process that runs an MLflow run can end it. When that process and its metric
writer die together (SIGKILL of the whole process group, the OOM killer, a lost node), the
run stays RUNNING for ever. (If only the training process dies, its writer ends the run
KILLED itself.) Every run psy-agents creates carries the tag ``psy_agents.heartbeat`` (UTC
time, renewed by the writer every 30 s); a RUNNING run whose last heartbeat is older than
``stale_after_s`` has no live owner, and :func:`repair_orphans` ends it FAILED, with a tag
that says why. Runs without the tag were not started by psy-agents and are never touched.

Example:
    >>> from psy_agents_noaug.tracking.orphans import repair_orphans
    >>> repair_orphans("http://127.0.0.1:5000", ["training_criteria"])  # doctest: +SKIP
    ['3f2a…']
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psy_agents_noaug.tracking import tags
from psy_agents_noaug.tracking.store import TrackingStoreError, mask_uri

__all__ = ["DEFAULT_STALE_AFTER_S", "Orphan", "find_orphans", "heartbeat_seconds", "repair_orphans"]
# Ten missed beats: a slow store or a long pause of the writer never makes a live run look dead.
DEFAULT_STALE_AFTER_S = 10 * tags.HEARTBEAT_INTERVAL_S
_PAGE = 1000


@dataclass(frozen=True)
class Orphan:
    """A RUNNING run whose owner stopped sending heartbeats."""

    run_id: str
    run_name: str
    experiment_name: str
    last_heartbeat: float  # unix seconds
    silent_s: float  # seconds since the last heartbeat

    def __str__(self) -> str:
        return (
            f"run {self.run_id} ({self.run_name!r} in {self.experiment_name!r}): RUNNING, "
            f"no heartbeat for {self.silent_s:.0f} s"
        )


def _check_stale_after(stale_after_s: float) -> None:
    if (
        isinstance(stale_after_s, bool)
        or not isinstance(stale_after_s, int | float)
        or not math.isfinite(stale_after_s)
        or stale_after_s <= 0
    ):
        raise ValueError(f"stale_after_s must be a number of seconds > 0, got {stale_after_s!r}")


def _experiments(client: Any, names: Sequence[str] | None) -> list[Any]:
    if names is None:
        found, token = [], None
        while True:
            page = client.search_experiments(max_results=_PAGE, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found
    experiments = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:  # nothing ran there yet: nothing to repair
            experiments.append(experiment)
    return experiments


def _running_runs(client: Any, experiment_ids: list[str]) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string="attributes.status = 'RUNNING'",
            max_results=_PAGE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def heartbeat_seconds(value: str | None) -> float | None:
    """A heartbeat tag as unix seconds: ISO-8601 UTC, or the milliseconds of older runs."""
    if not value:
        return None
    try:
        seconds = float(value) / 1000
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        seconds = parsed.timestamp()
    return seconds if math.isfinite(seconds) else None


def _heartbeat(run: Any) -> float | None:
    return heartbeat_seconds(run.data.tags.get(tags.HEARTBEAT))


def find_orphans(
    tracking_uri: str,
    experiment_names: Sequence[str] | None = None,
    *,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    now: float | None = None,
) -> list[Orphan]:
    """RUNNING runs whose psy-agents heartbeat is older than ``stale_after_s``.

    Args:
        tracking_uri: The store to inspect.
        experiment_names: Only these experiments (missing ones are skipped); None: all.
        stale_after_s: Seconds without a heartbeat after which a run counts as orphaned;
            keep it well above the writer's interval (30 s).
        now: Current unix time (default ``time.time()``).

    Returns:
        The orphans, oldest heartbeat first.

    Raises:
        ValueError: ``stale_after_s`` is not a positive number.
        TrackingStoreError: The store cannot be read.
    """
    from mlflow.tracking import MlflowClient

    _check_stale_after(stale_after_s)
    now = time.time() if now is None else now
    client = MlflowClient(tracking_uri)
    try:
        experiments = _experiments(client, experiment_names)
        names = {e.experiment_id: e.name for e in experiments}
        runs = list(_running_runs(client, list(names))) if names else []
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrackingStoreError(
            f"cannot read runs from {mask_uri(tracking_uri)}: {first[:200]}"
        ) from None
    orphans = []
    for run in runs:
        beat = _heartbeat(run)
        if beat is None or now - beat <= stale_after_s:
            continue
        orphans.append(
            Orphan(
                run_id=run.info.run_id,
                run_name=run.info.run_name or "",
                experiment_name=names.get(run.info.experiment_id, run.info.experiment_id),
                last_heartbeat=beat,
                silent_s=now - beat,
            )
        )
    return sorted(orphans, key=lambda o: o.last_heartbeat)


def repair_orphans(
    tracking_uri: str,
    experiment_names: Sequence[str] | None = None,
    *,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    now: float | None = None,
) -> list[str]:
    """End every orphaned run FAILED (end time = its last heartbeat) and say why in a tag.

    Each run is read again just before it is ended, so a run that finished, or whose owner
    beat again, since :func:`find_orphans` looked is left alone. Safe to run from several
    places at once.

    Args:
        tracking_uri: The store to repair.
        experiment_names: Only these experiments; None: all.
        stale_after_s: See :func:`find_orphans`.
        now: Current unix time (default ``time.time()``).

    Returns:
        The run ids that were ended, oldest heartbeat first.

    Raises:
        ValueError: ``stale_after_s`` is not a positive number.
        TrackingStoreError: The store cannot be read.
    """
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    orphans = find_orphans(tracking_uri, experiment_names, stale_after_s=stale_after_s, now=now)
    client = MlflowClient(tracking_uri)
    repaired = []
    for orphan in orphans:
        run = client.get_run(orphan.run_id)
        if run.info.status != "RUNNING" or _heartbeat(run) != orphan.last_heartbeat:
            continue
        when = dt.datetime.fromtimestamp(time.time(), dt.UTC).isoformat(timespec="seconds")
        reason = (
            f"orphaned: no heartbeat for {orphan.silent_s:.0f} s (its process died); "
            "marked FAILED by psy-agents doctor"
        )
        client.log_batch(
            orphan.run_id,
            tags=[RunTag(tags.END_REASON, reason), RunTag(tags.REPAIRED_AT, when)],
        )
        client.set_terminated(
            orphan.run_id, status="FAILED", end_time=round(orphan.last_heartbeat * 1000)
        )
        repaired.append(orphan.run_id)
    return repaired
