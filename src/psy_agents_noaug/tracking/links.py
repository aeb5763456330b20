"""Links into the MLflow UI for what a command just wrote.

MLflow 3's UI routes are hash routes. An experiment page opens on MLflow's GenAI overview
unless the URL asks for the model-training view, so every experiment link carries
``workflowType=machine_learning``. A sqlite or file store has no UI of its own: the link
then points at ``mlflow ui``'s default address.
"""

from __future__ import annotations

import re

__all__ = ["MLFLOW_UI_DEFAULT", "experiment_link", "run_link", "ui_base"]

#: Where ``mlflow ui`` listens when started without ``--host``/``--port``.
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_base(tracking_uri: str) -> str:
    """The UI's address: the tracking server itself (without credentials), else ``mlflow ui``'s
    default."""
    if tracking_uri.startswith(("http://", "https://")):
        return re.sub(r"://[^/@\s]*@", "://", tracking_uri).rstrip("/")
    return MLFLOW_UI_DEFAULT


def experiment_link(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table, in the model-training view."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """One run's overview page."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"
