"""Study storages from config strings, with heartbeats and a cross-worker study lock.

Three deployments, one spelling in ``stage.storage``:

* ``null``: in memory, one process.
* ``journal:<path>``: an Optuna JournalStorage file, for several worker processes on one
  machine. Optuna 5's JournalStorage has no heartbeat, so :class:`HeartbeatJournalStorage`
  adds one: each running trial touches ``<path>.heartbeats/<trial_id>``; a trial whose file
  is older than the grace period belongs to a dead worker.
* any SQLAlchemy URL (``postgresql://…``, ``sqlite:///…``): Optuna RDBStorage with its
  built-in heartbeat, for any number of workers and hosts.

Every storage also comes with a *study lock*: a mutual-exclusion region shared by all workers
of one study, used for the few steps that must happen exactly once (create the MLflow parent
run, claim the next trial within the trial budget, fail stale trials). Choice of lock:

* journal file and sqlite: ``fcntl.flock`` on ``<path>.hpo-lock`` (released by the kernel if
  the worker dies, so a killed worker never leaves the lock held);
* PostgreSQL: a session-level ``pg_advisory_lock`` keyed by the study name (released by the
  server when the worker's connection drops);
* MySQL: ``GET_LOCK``;
* in memory: a thread lock.

The same kind of lock (another key) also serializes creating Optuna's tables in a fresh
database, which workers that start together would otherwise race on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "HeartbeatJournalStorage",
    "HeartbeatThread",
    "StorageHandle",
    "open_storage",
    "redact_storage_url",
]

_log = logging.getLogger(__name__)

StaleTrialCallback = Callable[["optuna.Study", FrozenTrial], None]
JOURNAL_PREFIX = "journal:"


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A JournalStorage file whose running trials send heartbeats.

    Heartbeats are file modification times, one small file per running trial, so they never
    grow the journal. All workers must share one clock, which holds for the one-machine use
    this storage is for.

    Args:
        path: The journal file.
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds without a heartbeat after which a running trial is stale
            (default ``2 * heartbeat_interval``).
        heartbeat_stale_trial_callback: Called for each trial failed as stale (e.g.
            :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`).

    Raises:
        ValueError: ``heartbeat_interval`` or ``grace_period`` is not positive.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        heartbeat_interval: int,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: StaleTrialCallback | None = None,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0 seconds, got {heartbeat_interval}")
        if grace_period is not None and grace_period <= 0:
            raise ValueError(f"grace_period must be > 0 seconds, got {grace_period}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.heartbeat_dir = Path(f"{self.path}.heartbeats")
        self.heartbeat_dir.mkdir(parents=True, exist_ok=True)
        self.heartbeat_interval = int(heartbeat_interval)
        self.grace_period = int(grace_period or 2 * heartbeat_interval)
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        super().__init__(JournalFileBackend(str(self.path)))

    def _beat_file(self, trial_id: int) -> Path:
        return self.heartbeat_dir / str(trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        """Mark ``trial_id`` alive now."""
        path = self._beat_file(trial_id)
        path.touch(exist_ok=True)
        os.utime(path)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            try:
                last = self._beat_file(trial._trial_id).stat().st_mtime
            except FileNotFoundError:
                # Died before its first heartbeat: count from the trial's start.
                start = trial.datetime_start
                last = start.timestamp() if start is not None else now
            if now - last > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleTrialCallback | None:
        return self.heartbeat_stale_trial_callback

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        updated = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():
            self._beat_file(trial_id).unlink(missing_ok=True)
        return updated


class HeartbeatThread:
    """Records a trial's heartbeat every ``interval`` seconds until stopped.

    Named, daemon, waits on an Event; a failing heartbeat write is logged and retried at the
    next beat, never raised into the trial.
    """

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"hpo-heartbeat-{trial_id}", daemon=True
        )

    def _run(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
            except Exception:  # a missed beat must not kill the trial
                _log.warning("heartbeat for trial id %s failed", self._trial_id, exc_info=True)
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
        storage: The Optuna storage (None = in memory; ``optuna.create_study`` makes one).
        description: Human-readable storage, with any password removed (for run tags).
        lock: ``lock()`` is a context manager excluding all workers of this study.
        heartbeat_interval: Seconds between heartbeats, or None when the storage has none.
    """

    storage: BaseStorage | None
    description: str
    lock: Callable[[], contextlib.AbstractContextManager[None]]
    heartbeat_interval: int | None


def redact_storage_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db`` (for logs and tags)."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: show nothing that could be secret
        return url.split("@")[-1]


def _file_lock(path: Path) -> Callable[[], contextlib.AbstractContextManager[None]]:
    thread_lock = threading.Lock()

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        with thread_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    return lock


def _thread_lock() -> Callable[[], contextlib.AbstractContextManager[None]]:
    rlock = threading.RLock()

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        with rlock:
            yield

    return lock


def _lock_key(study_name: str) -> int:
    digest = hashlib.sha256(f"psy_agents.hpo:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _rdb_lock(url: str, key_name: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A lock for the database at ``url``, keyed by ``key_name``.

    It has its own small engine, so it exists before the Optuna storage does (creating
    Optuna's tables is itself a step that racing workers must take one at a time).
    """
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return _thread_lock()
        return _file_lock(Path(f"{os.path.abspath(database)}.hpo-lock"))
    if dialect == "postgresql":
        key = _lock_key(key_name)
        acquire = sqlalchemy.text("SELECT pg_advisory_lock(:key)").bindparams(key=key)
        release = sqlalchemy.text("SELECT pg_advisory_unlock(:key)").bindparams(key=key)
    elif dialect in ("mysql", "mariadb"):
        name = f"psy_hpo_{_lock_key(key_name) & 0xFFFFFFFF:08x}"
        acquire = sqlalchemy.text("SELECT GET_LOCK(:name, -1)").bindparams(name=name)
        release = sqlalchemy.text("SELECT RELEASE_LOCK(:name)").bindparams(name=name)
    else:
        _log.warning(
            "no cross-process study lock for %s databases: run one worker per study, or use "
            "PostgreSQL/MySQL/sqlite/journal storage",
            dialect,
        )
        return _thread_lock()
    thread_lock = threading.Lock()
    engine: sqlalchemy.engine.Engine | None = None

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        nonlocal engine
        with thread_lock:
            if engine is None:  # lazily, once: no connection until the lock is first used
                engine = sqlalchemy.create_engine(
                    parsed, pool_size=1, max_overflow=0, pool_pre_ping=True
                )
            with engine.connect() as conn:
                conn.execute(acquire)
                try:
                    yield
                finally:
                    conn.execute(release)
                    conn.commit()

    return lock


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
            ``BaseStorage`` (used as is; its lock is cross-process only for RDBStorage and
            HeartbeatJournalStorage).
        study_name: Keys the advisory lock.
        heartbeat_interval: Seconds between heartbeats of running trials (None: no
            heartbeats, so a killed worker's trial stays RUNNING).
        grace_period: Seconds without heartbeat before a running trial is failed.
        stale_trial_callback: Called for each trial failed as stale (e.g. to retry it).

    Returns:
        A :class:`StorageHandle`.

    Raises:
        ValueError: An empty journal path, or a non-positive heartbeat setting.
    """
    if heartbeat_interval is not None and heartbeat_interval <= 0:
        raise ValueError(
            f"heartbeat_interval must be > 0 seconds or None, got {heartbeat_interval}"
        )
    if storage is None:
        return StorageHandle(None, "in-memory", _thread_lock(), None)
    if isinstance(storage, BaseStorage):
        lock: Callable[[], contextlib.AbstractContextManager[None]]
        if isinstance(storage, RDBStorage):
            url = storage.engine.url.render_as_string(hide_password=False)
            lock = _rdb_lock(url, study_name)
        elif isinstance(storage, HeartbeatJournalStorage):
            lock = _file_lock(Path(f"{storage.path}.hpo-lock"))
        else:
            lock = _thread_lock()
        interval = getattr(storage, "heartbeat_interval", None)
        return StorageHandle(storage, type(storage).__name__, lock, interval)
    if not isinstance(storage, str) or not storage.strip():
        raise ValueError(
            f"storage must be null, 'journal:<path>' or a database URL, got {storage!r}"
        )
    if storage.startswith(JOURNAL_PREFIX):
        path = storage[len(JOURNAL_PREFIX) :].strip()
        if not path:
            raise ValueError("storage 'journal:' needs a file path, e.g. journal:./hpo.journal")
        path = os.path.abspath(os.path.expanduser(path))
        if heartbeat_interval is None:
            journal: BaseStorage = JournalStorage(JournalFileBackend(path))
        else:
            journal = HeartbeatJournalStorage(
                path,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=stale_trial_callback,
            )
        return StorageHandle(
            journal, f"journal:{path}", _file_lock(Path(f"{path}.hpo-lock")), heartbeat_interval
        )
    if "://" not in storage:
        raise ValueError(
            f"storage {storage!r} is neither 'journal:<path>' nor a database URL "
            "(e.g. postgresql://user@host/db or sqlite:///optuna.db)"
        )
    url = _with_installed_driver(storage)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    # Workers starting together on a fresh database would race to create Optuna's tables.
    with _rdb_lock(url, "optuna-schema")(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=stale_trial_callback if heartbeat_interval else None,
        )
    return StorageHandle(
        rdb, redact_storage_url(storage), _rdb_lock(url, study_name), heartbeat_interval
    )
