"""The tracking store: check it before any run exists, create its schema once, bound its waits.

Three things every process that talks to MLflow does first, through :func:`prepare_store`:

* **check** it (:func:`check_store`): a known URI, a writable sqlite folder, a database
  that accepts a connection, a server that answers and accepts the credentials; one line
  naming the problem and the fix otherwise;
* **bound its waits** (:func:`apply_http_settings`): MLflow's HTTP client retries seven
  times with backoff and waits 120 s per request by default, so a dead server would hold
  a finished training for 5-21 minutes; ours fail fast to the journal instead;
* **create its schema once** (:func:`ensure_schema`): MLflow creates and migrates a new
  sqlite or PostgreSQL store from whichever client opens it first, and two processes doing
  that together corrupt it ("table latest_metrics already exists", half-migrated files).
  Here it happens under a lock (a file beside the sqlite file, PostgreSQL's advisory
  lock), once; the others wait, then find it ready. A store left half-migrated by an
  interrupted start is refused with one line that says how to repair it.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = [
    "LOG_BATCH_MAX_METRICS",
    "ArtifactStoreError",
    "TrackingStoreError",
    "apply_http_settings",
    "check_store",
    "ensure_schema",
    "is_database_uri",
    "mask_uri",
    "prepare_store",
]

#: MLflow's ``log_batch`` takes at most this many metrics, and params (or tags), per call.
LOG_BATCH_MAX_METRICS = 1000
LOG_BATCH_MAX_PARAMS = 100
#: How long starting a run keeps trying a store that does not answer (a server restart).
DEFAULT_START_RETRY_S = 60.0
#: Defaults for MLflow's HTTP client in our processes (MLflow's own: 120 s, 7 retries).
DEFAULT_HTTP_TIMEOUT_S = 10
DEFAULT_HTTP_MAX_RETRIES = 2

SQL_SCHEMES = ("postgresql", "mysql", "mssql")
SCHEMES = ("sqlite:///", "http://", "https://", "file:", *SQL_SCHEMES)
_SCHEMA_LOCK = "mlflow-schema"


class TrackingStoreError(ValueError):
    """The tracking store cannot be used; the message says why and what to do."""


class ArtifactStoreError(TrackingStoreError):
    """The run's artifact location refused a write (full, read-only, gone)."""


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by ***, safe to print or log.

    Masks up to the last ``@`` before the host, so a password with a raw ``@`` in it is
    hidden whole.
    """
    return re.sub(r"(://[^:/@\s]*:)[^\s/]*@", r"\1***@", uri)


def is_database_uri(uri: str) -> bool:
    """sqlite or another SQLAlchemy database: MLflow's SqlAlchemyStore, not a server."""
    return uri.startswith(("sqlite:", *SQL_SCHEMES))


def prepare_store(
    tracking_uri: str,
    *,
    http_timeout_s: int = DEFAULT_HTTP_TIMEOUT_S,
    http_max_retries: int = DEFAULT_HTTP_MAX_RETRIES,
) -> None:
    """Check the store, bound MLflow's HTTP waits, create the schema once (in that order).

    Raises:
        TrackingStoreError: The store is unusable; the message names the fix.
    """
    apply_http_settings(http_timeout_s, http_max_retries)
    check_store(tracking_uri)
    ensure_schema(tracking_uri)


def apply_http_settings(
    timeout_s: int = DEFAULT_HTTP_TIMEOUT_S,
    max_retries: int = DEFAULT_HTTP_MAX_RETRIES,
    *,
    backoff_factor: int = 1,
) -> None:
    """Short timeouts and few, quick retries for MLflow's HTTP client in this process.

    MLflow reads these variables at every request; child processes (the metric writer)
    inherit them.
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(timeout_s))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(int(max_retries))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(int(backoff_factor))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.2"


def check_store(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise TrackingStoreError when the store is clearly unusable, before any run exists.

    Checks: a known URI scheme; sqlite: the folder exists and is writable; a database URL:
    a connection opens; a tracking server: it answers, and it accepts the credentials in
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``).
    """
    if not tracking_uri.startswith(SCHEMES):
        raise TrackingStoreError(
            f"mlflow.tracking_uri={mask_uri(tracking_uri)!r} is not a tracking URI: use "
            "sqlite:///path.db, http(s)://host:port (a tracking server) or a database URL "
            "such as postgresql+psycopg2://user@host/db"
        )
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        folder = db.parent if str(db.parent) else Path(".")
        if not folder.exists():
            raise TrackingStoreError(
                f"mlflow.tracking_uri={tracking_uri!r}: folder {folder} does not exist; "
                "create it or point mlflow.tracking_uri elsewhere"
            )
        if not os.access(folder, os.W_OK):
            raise TrackingStoreError(
                f"mlflow.tracking_uri={tracking_uri!r}: folder {folder} is not writable"
            )
        return
    if tracking_uri.startswith(("http://", "https://")):
        _check_server(tracking_uri, timeout_s)
    elif tracking_uri.startswith(SQL_SCHEMES):
        _check_database(tracking_uri, timeout_s)


def _check_server(tracking_uri: str, timeout_s: float) -> None:
    import requests

    base = tracking_uri.rstrip("/")
    try:
        requests.get(base + "/health", timeout=timeout_s)
    except requests.RequestException:
        raise TrackingStoreError(
            f"cannot reach the tracking server at {mask_uri(tracking_uri)}; start it "
            "(see README 'Scaling out') or use mlflow.tracking_uri=sqlite:///mlflow.db"
        ) from None
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(
            base + "/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=(user, password or "") if user else None,
            headers=headers,
            timeout=timeout_s,
        )
    except requests.RequestException:
        return  # it answered /health; a hiccup now is the writer's retries' business
    if response.status_code == 401:
        problem = f"refused the password of user {user!r}" if user else "needs a user"
        raise TrackingStoreError(
            f"the tracking server at {mask_uri(tracking_uri)} {problem} (HTTP 401): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a valid user"
        )
    if response.status_code == 403:
        raise TrackingStoreError(
            f"the tracking server at {mask_uri(tracking_uri)} denies user {user!r} access "
            "(HTTP 403): ask its admin for permission"
        )


def _check_database(tracking_uri: str, timeout_s: float) -> None:
    import sqlalchemy

    try:
        url = sqlalchemy.engine.make_url(tracking_uri)
        engine = sqlalchemy.create_engine(
            url, connect_args={"connect_timeout": int(max(1, timeout_s))}
        )
    except Exception as exc:  # a driver that is not installed, a malformed URL
        hint = ""
        if "psycopg" in str(exc) and tracking_uri.startswith("postgresql://"):
            hint = " (write postgresql+psycopg2://… to use the installed psycopg2)"
        raise TrackingStoreError(
            f"mlflow.tracking_uri={mask_uri(tracking_uri)!r} cannot be used: "
            f"{first_line(exc)}{hint}"
        ) from None
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise TrackingStoreError(
            f"cannot connect to the database at {mask_uri(tracking_uri)}: {first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


#: File-system answers that retrying does not change: full, read-only, not allowed.
_REFUSING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def is_rejection(exc: BaseException) -> bool:
    """The store answered and refused (a bad value, a deleted run, a full or read-only
    artifact location): retrying cannot help.

    Anything else (no connection, a timeout, a 5xx, a locked database) may pass.
    """
    from mlflow.exceptions import MlflowException

    if isinstance(exc, OSError):
        return exc.errno in _REFUSING_ERRNOS
    if not isinstance(exc, MlflowException):
        return False
    status = exc.get_http_status_code()
    return 400 <= status < 500 and status not in (408, 429)


def retry_store_call(call: Callable[[], T], what: str, *, budget_s: float) -> T:
    """Run an essential store call (creating a run), retrying a store that does not answer.

    Waits 0.5, 1, 2, 4 … s between tries for up to ``budget_s`` in all; a refusal (a 4xx)
    is raised at once.

    Raises:
        TrackingStoreError: The store stayed unreachable for the whole budget.
    """
    deadline = time.monotonic() + budget_s
    delay = 0.5
    while True:
        try:
            return call()
        except Exception as exc:
            if is_rejection(exc) or time.monotonic() + delay > deadline:
                if is_rejection(exc):
                    raise
                raise TrackingStoreError(
                    f"could not {what}: the tracking store did not answer for {budget_s:g} s "
                    f"({first_line(exc)})"
                ) from None
        time.sleep(delay)  # backoff between tries of an unreachable store
        delay = min(delay * 2, 8.0)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (a database error's own, if wrapped)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:limit]


_READY: set[str] = set()
_READY_LOCK = threading.Lock()


def ensure_schema(tracking_uri: str) -> None:
    """Create or migrate a database store's schema once, under a cross-process lock.

    A tracking server or file store has nothing to do here. Cheap after the first call in
    a process (MLflow keeps the store it opened).

    Raises:
        TrackingStoreError: The store is half-migrated, out of date, or its creation failed.
    """
    if not is_database_uri(tracking_uri):
        return
    with _READY_LOCK:
        if tracking_uri in _READY:
            return
        from mlflow.tracking import MlflowClient

        from psy_agents_noaug.tracking.locks import database_lock

        try:
            lock = database_lock(tracking_uri, _SCHEMA_LOCK)()
            lock.__enter__()
        except OSError as exc:
            raise TrackingStoreError(
                f"cannot use the tracking store {mask_uri(tracking_uri)}: {first_line(exc)}"
            ) from None
        try:
            _refuse_half_migrated(tracking_uri)
            try:
                MlflowClient(tracking_uri).search_experiments(max_results=1)
            except Exception as exc:  # alembic, SQLAlchemy and MLflow each raise their own
                raise TrackingStoreError(_schema_problem(tracking_uri, exc)) from None
        finally:
            lock.__exit__(None, None, None)
        _READY.add(tracking_uri)


def _refuse_half_migrated(tracking_uri: str) -> None:
    """One line for a store that an interrupted schema creation or migration left behind."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(tracking_uri)
    try:
        with engine.connect() as conn:
            tables = sqlalchemy.inspect(conn).get_table_names()
            leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
            experiments = 0
            if "experiments" in tables:
                count = conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM experiments"))
                experiments = int(count.scalar() or 0)
    except Exception:
        return  # unreadable here: MLflow's own open says why, below
    finally:
        engine.dispose()
    if leftovers:
        raise TrackingStoreError(
            f"the tracking store {mask_uri(tracking_uri)} is half-migrated (leftover table "
            f"{leftovers[0]}): an earlier schema creation or upgrade was interrupted. "
            + _repair_hint(tracking_uri, experiments)
        )


def _repair_hint(tracking_uri: str, experiments: int) -> str:
    if experiments == 0 and tracking_uri.startswith("sqlite:///"):
        path = tracking_uri.removeprefix("sqlite:///")
        return f"It holds no experiments: delete {path} and start again"
    return (
        "Back it up, drop the _alembic_tmp_* tables, then run "
        f"`mlflow db upgrade {mask_uri(tracking_uri)}`"
    )


def _schema_problem(tracking_uri: str, exc: BaseException) -> str:
    text = first_line(exc)
    if "out-of-date database schema" in text:
        return (
            f"the tracking store {mask_uri(tracking_uri)} has an older MLflow schema: back it "
            f"up, then run `mlflow db upgrade {mask_uri(tracking_uri)}`"
        )
    return (
        f"cannot open the tracking store {mask_uri(tracking_uri)}: {text}. If an earlier "
        "start was interrupted while creating it, it may be half-migrated: "
        + _repair_hint(tracking_uri, 0 if "already exists" in text else 1)
    )
