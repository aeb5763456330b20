"""Cross-process locks for the few steps that must happen once: a file lock or the database's.

* a file (sqlite stores, Optuna journal files): ``fcntl.flock`` on a lock file beside it,
  released by the kernel when the holder dies, so a killed process never leaves it held;
* PostgreSQL: a session-level ``pg_advisory_lock``, released by the server when the
  holder's connection drops; MySQL/MariaDB: ``GET_LOCK``;
* anything else: a lock within this process only (with a warning).

Both MLflow's schema creation (see :mod:`~psy_agents_noaug.tracking.store`) and the HPO
study lock (:mod:`~psy_agents_noaug.hpo.storage`) use these.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["Lock", "database_lock", "file_lock", "thread_lock"]

_log = logging.getLogger(__name__)

#: ``lock()`` returns a context manager that holds the lock inside its ``with`` block.
Lock = Callable[[], contextlib.AbstractContextManager[None]]


def file_lock(path: Path) -> Lock:
    """An exclusive lock on ``path`` (created if missing), also exclusive between threads."""
    in_process = threading.Lock()

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        with in_process:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    return lock


def thread_lock() -> Lock:
    """A re-entrant lock for one process (in-memory stores and studies)."""
    rlock = threading.RLock()

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        with rlock:
            yield

    return lock


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def database_lock(url: str, name: str) -> Lock:
    """A lock named ``name`` in the database at ``url`` (sqlite: a file beside the database).

    The lock has its own small engine, made lazily at first use, so it exists before any
    other client of the database does (creating a schema is itself a step that racing
    processes must take one at a time).
    """
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return thread_lock()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        return file_lock(Path(f"{os.path.abspath(database)}.{safe}.lock"))
    key = _lock_key(f"psy_agents:{name}")
    if dialect == "postgresql":
        acquire = sqlalchemy.text("SELECT pg_advisory_lock(:key)").bindparams(key=key)
        release = sqlalchemy.text("SELECT pg_advisory_unlock(:key)").bindparams(key=key)
    elif dialect in ("mysql", "mariadb"):
        label = f"psy_{key & 0xFFFFFFFF:08x}"
        acquire = sqlalchemy.text("SELECT GET_LOCK(:name, -1)").bindparams(name=label)
        release = sqlalchemy.text("SELECT RELEASE_LOCK(:name)").bindparams(name=label)
    else:
        _log.warning(
            "no cross-process lock for %s databases: run one process per store and study, "
            "or use PostgreSQL, MySQL or sqlite",
            dialect,
        )
        return thread_lock()
    in_process = threading.Lock()
    engine: sqlalchemy.engine.Engine | None = None

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        nonlocal engine
        with in_process:
            if engine is None:
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
