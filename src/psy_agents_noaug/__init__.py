"""psy-agents: DSM-5 criteria classifiers with production-grade MLflow tracking."""

from __future__ import annotations

import os

# MLflow's usage telemetry is off unless the user turns it back on explicitly.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
