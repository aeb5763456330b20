"""Study storages from config strings, with heartbeats and a cross-worker study lock.

Three deployments, one spelling in ``stage.storage``:

* ``null``: in memory, one process.
* ``journal:<path>``: an Optuna JournalStorage file, for several worker processes on one
  machine. JournalStorage has no heartbeat, so :class:`FileHeartbeats` adds one: each
  running trial touches ``<path>.heartbeats/<trial_id>``; a trial whose file is older than
  the grace period belongs to a dead worker.
* any SQLAlchemy URL (``postgresql://…``, ``sqlite:///…``): Optuna RDBStorage with its
  built-in heartbeat, for any number of workers and hosts.

Every storage also comes with a *study lock* (:mod:`psy_agents_noaug.tracking.locks`): a
mutual-exclusion region shared by all workers of one study, for the few steps that must
happen exactly once (create the MLflow parent run, claim the next trial within the trial
budget, fail stale trials). The same kind of lock also serializes creating Optuna's tables
in a fresh database, which workers that start together would otherwise race on.

Only Optuna's public API is used: the trial id a heartbeat needs comes from
``storage.get_trial_id_from_study_id_trial_number``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from psy_agents_noaug.tracking.locks import Lock, database_lock, file_lock, thread_lock

__all__ = [
    "FileHeartbeats",
    "HeartbeatThread",
    "StorageHandle",
    "open_storage",
    "redact_storage_url",
]

_log = logging.getLogger(__name__)

StaleTrialCallback = Callable[["optuna.Study", FrozenTrial], None]
JOURNAL_PREFIX = "journal:"


class FileHeartbeats:
    """Heartbeats of a journal study's running trials, as modification times of small files.

    Heartbeats never grow the journal. All workers must share one clock, which holds for
    the one-machine use journal storage is for.

    Args:
        folder: Where the heartbeat files live (``<journal>.heartbeats``).
        grace_period: Seconds without a heartbeat after which a running trial is stale.
    """

    def __init__(self, folder: Path, grace_period: float) -> None:
        self.folder = folder
        self.grace_period = grace_period
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, trial_id: int) -> Path:
        return self.folder / str(trial_id)

    def record(self, trial_id: int) -> None:
        """Mark ``trial_id`` alive now."""
        path = self._file(trial_id)
        path.touch(exist_ok=True)
        os.utime(path)

    def forget(self, trial_id: int) -> None:
        self._file(trial_id).unlink(missing_ok=True)

    def stale_trials(self, storage: BaseStorage, study_id: int) -> list[FrozenTrial]:
        """Running trials whose worker stopped beating."""
        now = time.time()
        stale = []
        for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                last = self._file(trial_id).stat().st_mtime
            except FileNotFoundError:
                # Died before its first heartbeat: count from the trial's start.
                start = trial.datetime_start
                last = start.timestamp() if start is not None else now
            if now - last > self.grace_period:
                stale.append(trial)
        return stale


class HeartbeatThread:
    """Calls ``beat()`` every ``interval`` seconds until stopped.

    Named, daemon, waits on an Event; a failing heartbeat write is logged and retried at the
    next beat, never raised into the trial.
    """

    def __init__(self, beat: Callable[[], None], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self._beat()
            except Exception:  # a missed beat must not kill the trial
                _log.warning("%s failed", self._thread.name, exc_info=True)
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> HeartbeatThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StorageHandle:
    """A study storage plus what the runner needs around it.

    Attributes:
        storage: The Optuna storage (an InMemoryStorage when none was configured).
        description: Human-readable storage, with any password removed (for run tags).
        lock: ``lock()`` is a context manager excluding all workers of this study.
        heartbeat_interval: Seconds between heartbeats, or None when the storage has none.
        grace_period: Seconds without heartbeat before a running trial is stale.
        file_heartbeats: The heartbeat files of a journal storage.
    """

    storage: BaseStorage
    description: str
    lock: Lock
    heartbeat_interval: int | None
    grace_period: float | None = None
    file_heartbeats: FileHeartbeats | None = None

    def trial_id(self, study: optuna.Study, number: int) -> int:
        """The storage's id of trial ``number`` (public API, no private attributes)."""
        study_id = self.storage.get_study_id_from_name(study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def heartbeat(self, trial_id: int) -> HeartbeatThread | None:
        """A thread that keeps trial ``trial_id`` alive, or None without heartbeats."""
        if self.heartbeat_interval is None:
            return None
        if self.file_heartbeats is not None:
            beat: Callable[[], None] = lambda: self.file_heartbeats.record(trial_id)  # type: ignore[union-attr]  # noqa: E731
        elif isinstance(self.storage, RDBStorage):
            beat = lambda: self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]  # noqa: E731
        else:
            return None
        return HeartbeatThread(beat, self.heartbeat_interval, f"hpo-heartbeat-{trial_id}")

    def trial_finished(self, trial_id: int) -> None:
        if self.file_heartbeats is not None:
            self.file_heartbeats.forget(trial_id)

    def fail_stale_trials(self, study: optuna.Study, callback: StaleTrialCallback | None) -> None:
        """Fail the running trials of dead workers and hand each to ``callback`` (retry)."""
        if self.heartbeat_interval is None:
            return
        if self.file_heartbeats is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # RDBStorage's own heartbeat
            return
        study_id = self.storage.get_study_id_from_name(study.study_name)
        for trial in self.file_heartbeats.stale_trials(self.storage, study_id):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                failed = self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its own worker finished it meanwhile
            self.file_heartbeats.forget(trial_id)
            if failed and callback is not None:
                callback(study, self.storage.get_trial(trial_id))


def redact_storage_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db`` (for logs and tags)."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: show nothing that could be secret
        return url.split("@")[-1]


def _with_installed_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is there."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if (
        scheme in ("postgresql", "postgres")
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return f"postgresql+psycopg2{sep}{rest}"
    return url


def _study_lock_name(study_name: str) -> str:
    return f"hpo:{study_name}"


def open_storage(
    storage: str | BaseStorage | None,
    study_name: str,
    *,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = None,
    stale_trial_callback: StaleTrialCallback | None = None,
) -> StorageHandle:
    """Build the Optuna storage named by ``storage`` and the study lock that goes with it.

    Args:
        storage: None (in memory), ``"journal:<path>"``, an SQLAlchemy URL, or a ready
            ``BaseStorage`` (used as is; its lock is cross-process only for RDBStorage).
        study_name: Keys the study lock.
        heartbeat_interval: Seconds between heartbeats of running trials (None: no
            heartbeats, so a killed worker's trial stays RUNNING).
        grace_period: Seconds without heartbeat before a running trial is failed (default
            ``2 * heartbeat_interval``).
        stale_trial_callback: Called for each trial an RDB storage fails as stale.

    Returns:
        A :class:`StorageHandle`.

    Raises:
        ValueError: An empty journal path, or a non-positive heartbeat setting.
    """
    if heartbeat_interval is not None and heartbeat_interval <= 0:
        raise ValueError(
            f"heartbeat_interval must be > 0 seconds or None, got {heartbeat_interval}"
        )
    if grace_period is not None and grace_period <= 0:
        raise ValueError(f"grace_period must be > 0 seconds or None, got {grace_period}")
    grace = float(grace_period or 2 * heartbeat_interval) if heartbeat_interval else None
    if storage is None:
        return StorageHandle(InMemoryStorage(), "in-memory", thread_lock(), None)
    if isinstance(storage, BaseStorage):
        lock: Lock
        if isinstance(storage, RDBStorage):
            url = storage.engine.url.render_as_string(hide_password=False)
            lock = database_lock(url, _study_lock_name(study_name))
        else:
            lock = thread_lock()
        interval = heartbeat_interval if isinstance(storage, RDBStorage) else None
        return StorageHandle(storage, type(storage).__name__, lock, interval, grace)
    if not isinstance(storage, str) or not storage.strip():
        raise ValueError(
            f"storage must be null, 'journal:<path>' or a database URL, got {storage!r}"
        )
    if storage.startswith(JOURNAL_PREFIX):
        return _journal_storage(storage, heartbeat_interval, grace)
    if "://" not in storage:
        raise ValueError(
            f"storage {storage!r} is neither 'journal:<path>' nor a database URL "
            "(e.g. postgresql://user@host/db or sqlite:///optuna.db)"
        )
    url = _with_installed_driver(storage)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    # Workers starting together on a fresh database would race to create Optuna's tables.
    with database_lock(url, "optuna-schema")(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=stale_trial_callback if heartbeat_interval else None,
        )
    return StorageHandle(
        rdb,
        redact_storage_url(storage),
        database_lock(url, _study_lock_name(study_name)),
        heartbeat_interval,
        grace,
    )


def _journal_storage(
    spec: str, heartbeat_interval: int | None, grace: float | None
) -> StorageHandle:
    path = spec[len(JOURNAL_PREFIX) :].strip()
    if not path:
        raise ValueError("storage 'journal:' needs a file path, e.g. journal:./hpo.journal")
    path = os.path.abspath(os.path.expanduser(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    journal = JournalStorage(JournalFileBackend(path))
    beats = None
    if heartbeat_interval is not None and grace is not None:
        beats = FileHeartbeats(Path(f"{path}.heartbeats"), grace)
    lock = file_lock(Path(f"{path}.hpo-lock"))
    return StorageHandle(journal, f"journal:{path}", lock, heartbeat_interval, grace, beats)
