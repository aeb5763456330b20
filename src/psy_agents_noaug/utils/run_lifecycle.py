"""Start and end MLflow runs without ever losing the end status.

`end_run` tries MLflow's own `end_run`; when the store is unreachable, the
terminal status goes through the metric sink instead, after the run's last
points, and is journaled until the store answers again.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def end_run(status: str, sink: Any | None = None) -> None:
    """End the active run with `status` (FINISHED, FAILED or KILLED)."""
    import mlflow

    try:
        mlflow.end_run(status)
        if sink is not None:
            sink.disown_run()
    except Exception as exc:
        if sink is None:
            raise
        log.warning("could not set run status now (%s); it is queued with the metrics", exc)
        sink.end_run(status)
