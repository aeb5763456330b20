"""Connecting to the tracking store: fail early and clearly, before any run exists."""

from __future__ import annotations

import os
import re
from pathlib import Path


class TrackingStoreError(ValueError):
    """The tracking store cannot be used; the message says why and what to do."""


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by ***, safe to print or log."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", uri)


def check_store(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise TrackingStoreError when the store is clearly unusable (bad path, no server)."""
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
        import requests

        url = tracking_uri.rstrip("/") + "/health"
        try:
            requests.get(url, timeout=timeout_s)
        except requests.RequestException:
            raise TrackingStoreError(
                f"cannot reach the tracking server at {mask_uri(tracking_uri)}; start it "
                "(see README 'Scaling out') or use mlflow.tracking_uri=sqlite:///mlflow.db"
            ) from None


def setup_experiment(tracking_uri: str, experiment_name: str) -> str:
    """Point MLflow at the store and the experiment (created if missing); returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.set_experiment(experiment_name).experiment_id
