"""Upload a journal to the store: the writer's replay and `psy-agents sync` share this.

Every readable record is uploaded in order (points, then the run's end), resuming after
the last batch a previous upload finished. Damaged lines are named: one whose record
appears again whole further down (the sink resent it) lost nothing; one that does not
is reported as lost, and only then does `sync` exit non-zero. A journal that holds no end
status (its last record was torn, or writer and training process died together) would
leave the run RUNNING for ever: `sync` ends such a run FAILED, with a tag that says so,
unless the training process that owns it is still alive on this host.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psy_agents_noaug.tracking import journal as jr
from psy_agents_noaug.tracking import tags
from psy_agents_noaug.tracking.lifecycle import ending_directly
from psy_agents_noaug.tracking.store import (
    TrackingStoreError,
    first_line,
    is_rejection,
    mask_uri,
)

__all__ = ["RunGone", "SyncReport", "Uploaded", "sync_journal", "upload"]

log = logging.getLogger(__name__)


class RunGone(Exception):
    """The journal's run was deleted from the store (or never was in it): nothing to do."""


@dataclass
class Uploaded:
    """What one upload sent, and the journaled artifacts whose local copy was gone."""

    points: int = 0
    missing_artifacts: list[str] = field(default_factory=list)


def upload(journal: jr.Journal, client: Any) -> Uploaded:
    """Upload what is not uploaded yet, in order.

    Raises:
        RunGone: The run is deleted or unknown to this store.
        Exception: Whatever the store raised (it is down: try again later).
    """
    from mlflow.entities import Metric

    result = Uploaded()
    run_id = journal.run_id
    for done, points, other in journal.chunks(journal.uploaded()):
        if points:
            metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
            _store_call(client.log_batch, run_id, metrics=metrics, synchronous=True)
            result.points += len(points)
        if isinstance(other, jr.RunDataRecord):
            _upload_run_data(client, run_id, other)
        elif isinstance(other, jr.InputsRecord):
            _upload_inputs(client, run_id, other)
        elif isinstance(other, jr.ArtifactsRecord):
            if not _upload_artifacts(client, run_id, other):
                result.missing_artifacts.append(other.local_path)
        elif isinstance(other, jr.EndRecord):
            if other.reason:
                _store_call(client.set_tag, run_id, tags.END_REASON, other.reason[:5000])
            with ending_directly():  # the run's points are in the store: this is its end
                _store_call(client.set_terminated, run_id, status=other.status)
        journal.mark_uploaded(done)
    return result


def _upload_run_data(client: Any, run_id: str, record: jr.RunDataRecord) -> None:
    from mlflow.entities import Param, RunTag

    params = [Param(k, v) for k, v in record.params.items()]
    run_tags = [RunTag(k, v) for k, v in record.tags.items()]
    try:
        _store_call(client.log_batch, run_id, params=params, tags=run_tags)
    except RunGone:
        raise
    except Exception as exc:
        if not is_rejection(exc):
            raise
        log.warning("run %s refused its params/tags (%s); skipped", run_id, first_line(exc))


def _upload_inputs(client: Any, run_id: str, record: jr.InputsRecord) -> None:
    from psy_agents_noaug.tracking.datasets import dataset_inputs

    try:
        _store_call(client.log_inputs, run_id, datasets=dataset_inputs(record.datasets))
    except RunGone:
        raise
    except Exception as exc:
        if not is_rejection(exc):
            raise
        log.warning("run %s refused its dataset inputs (%s); skipped", run_id, first_line(exc))


def _upload_artifacts(client: Any, run_id: str, record: jr.ArtifactsRecord) -> bool:
    """Upload one journaled file or folder; False when its local copy is gone."""
    path = Path(record.local_path)
    if not path.exists():
        return False
    if path.is_dir():
        _store_call(client.log_artifacts, run_id, str(path), record.artifact_path)
    else:
        _store_call(client.log_artifact, run_id, str(path), record.artifact_path)
    remove_local_copy(path)
    return True


def remove_local_copy(path: Path) -> None:
    """Delete a staged or journaled artifact copy once it is in the store."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _store_call(fn: Any, run_id: str, *args: Any, **kwargs: Any) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return fn(run_id, *args, **kwargs)
    except MlflowException as exc:
        gone = exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "'active' state" in exc.message
        if gone:
            raise RunGone(f"run {run_id} is deleted or not in this store") from None
        raise


@dataclass
class SyncReport:
    """What one `sync` did; ``exit_code`` is 1 only when something could not be recovered."""

    path: Path
    run_id: str
    tracking_uri: str
    points: int = 0
    end_status: str | None = None
    notes: list[str] = field(default_factory=list)
    lost: list[jr.DamagedLine] = field(default_factory=list)
    missing_artifacts: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.lost or self.missing_artifacts else 0

    def __str__(self) -> str:
        where = mask_uri(self.tracking_uri)
        head = f"uploaded {self.points} points to run {self.run_id} at {where}"
        if self.end_status:
            head += f"; run ended {self.end_status}"
        return "\n".join([head, *self.notes])


def sync_journal(path: str | Path, tracking_uri: str | None = None) -> SyncReport:
    """Upload every readable point and the run's end from a journal, exactly once.

    Safe to run twice: progress is recorded after each batch, a finished journal is renamed
    ``*.synced``, and SQL stores ignore points that are already there.

    Raises:
        FileNotFoundError: No journal at ``path`` (and no synced one).
        TrackingStoreError: The store or the run cannot be reached.
    """
    from mlflow.tracking import MlflowClient

    path = Path(path)
    done = path.with_name(path.name + jr.SYNCED_SUFFIX)
    if not path.exists() and done.exists():
        report = SyncReport(path, jr.run_id_of(path), tracking_uri or "")
        report.notes.append(f"{path} was already synced (see {done})")
        return report
    journal = jr.Journal.read(path)
    uri = tracking_uri or journal.tracking_uri
    if not uri:
        raise TrackingStoreError(
            f"{path}: its header is damaged, so the store is unknown; "
            "give it: psy-agents sync PATH tracking_uri=URI"
        )
    report = SyncReport(path, journal.run_id, uri)
    client = MlflowClient(uri)
    try:
        client.get_run(journal.run_id)
    except Exception as exc:
        raise TrackingStoreError(
            f"run {journal.run_id} is not reachable at {mask_uri(uri)} ({first_line(exc)})"
        ) from None
    try:
        uploaded = upload(journal, client)
    except RunGone as exc:
        raise TrackingStoreError(f"{exc}; nothing to upload from {path}") from None
    except Exception as exc:
        raise TrackingStoreError(
            f"the store at {mask_uri(uri)} failed during the upload ({first_line(exc)}); "
            "run the same sync again: it resumes where it stopped"
        ) from None
    report.points = uploaded.points
    report.missing_artifacts = uploaded.missing_artifacts
    _describe_damage(journal, report)
    end = journal.end
    report.end_status = end.status if end is not None else _end_without_status(journal, client)
    if report.end_status is None:
        report.notes.append(
            f"the training process (pid {journal.owner_pid}) still runs, so the run stays "
            "RUNNING; sync again once it ended"
        )
        return report
    if jr.finish(journal) is None:
        report.notes.append(f"{path} grew while syncing; run the same sync again")
    return report


def _describe_damage(journal: jr.Journal, report: SyncReport) -> None:
    if any(d.header for d in journal.damaged):
        report.notes.append(f"the header line of {journal.path} is damaged (no data in it)")
    recovered = [d for d in journal.damaged if d.recovered]
    if recovered:
        report.notes.append(
            f"skipped {len(recovered)} damaged line(s) whose records follow whole "
            f"({', '.join(f'line {d.line + 1}' for d in recovered[:10])}): nothing lost"
        )
    if report.missing_artifacts:
        report.notes.append(
            "could not upload these journaled artifacts, their local copies are gone: "
            + ", ".join(report.missing_artifacts[:5])
        )
    report.lost = journal.unrecovered
    if report.lost:
        lines = ", ".join(f"line {d.line + 1} ({d.size} bytes)" for d in report.lost[:10])
        report.notes.append(
            f"could not read {len(report.lost)} damaged line(s) of {journal.path}: {lines}. "
            "A writer was killed while appending them and no copy follows, so their points "
            "are lost; everything else is uploaded"
        )


def _end_without_status(journal: jr.Journal, client: Any) -> str | None:
    """End a run whose journal has no end record, unless its owner is alive."""
    run = client.get_run(journal.run_id)
    if run.info.status != "RUNNING":
        return str(run.info.status)
    if _owner_alive(journal):
        return None
    reason = (
        "its journal holds no end status (the last record was torn, or the writer and "
        "the training process died together); ended FAILED by psy-agents sync"
    )
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    client.set_tag(journal.run_id, tags.END_REASON, reason)
    client.set_tag(journal.run_id, tags.REPAIRED_AT, when)
    with ending_directly():
        client.set_terminated(journal.run_id, status="FAILED")
    return "FAILED"


def _owner_alive(journal: jr.Journal) -> bool:
    pid = journal.owner_pid
    if pid is None or pid == os.getpid() or journal.owner_host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
