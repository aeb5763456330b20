"""Connecting to the tracking store: fail early and clearly, before any run exists."""

from __future__ import annotations

import os
import re
from pathlib import Path


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


SQL_SCHEMES = ("postgresql", "mysql", "mssql")
SCHEMES = ("sqlite:///", "http://", "https://", "file:", *SQL_SCHEMES)


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
        return  # it answered /health; MLflow's own retries deal with a hiccup
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
            f"{_first_line(exc)}{hint}"
        ) from None
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise TrackingStoreError(
            f"cannot connect to the database at {mask_uri(tracking_uri)}: {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def setup_experiment(tracking_uri: str, experiment_name: str) -> str:
    """Point MLflow at the store and the experiment (created if missing); returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.set_experiment(experiment_name).experiment_id
