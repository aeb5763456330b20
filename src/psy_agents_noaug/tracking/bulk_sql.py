"""Bulk metric writes for database-backed MLflow stores (sqlite, PostgreSQL).

Why this exists: MLflow's ``SqlAlchemyStore.log_batch`` spends about 3 ms per call
and 0.1 ms per metric point on ORM bookkeeping (measured on the 2-core machines
this project targets). The sink's writer process runs beside training, so on a
small machine that CPU is taken from training. This module writes the very same
rows with two ``executemany`` statements per batch, through the store's own
engine and MLflow's own table definitions (``SqlMetric``, ``SqlLatestMetric``)
and value rule (``sanitize_metric_value``): about 20x less CPU per point.

Semantics match ``log_batch`` for run metrics: a point already stored (same key,
step, timestamp, value) is skipped, never doubled; ``latest_metrics`` keeps the
point with the greatest ``(step, timestamp, value)``; only active runs accept
points. Any other store, a dialect other than sqlite/PostgreSQL, or any error
here means the caller uses ``log_batch`` instead (`BulkMetricWriter.for_client`
returns None, `write` raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psy_agents_noaug.tracking.journal import Point

#: Dialects whose INSERT supports ON CONFLICT, and where SQLAlchemy keeps that INSERT.
_DIALECT_INSERTS = {
    "sqlite": "sqlalchemy.dialects.sqlite",
    "postgresql": "sqlalchemy.dialects.postgresql",
}


class BulkMetricWriter:
    """Writes metric points of active runs straight into an MLflow SQL store."""

    def __init__(self, store: Any) -> None:
        import importlib

        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

        self.store = store
        self.engine = store.engine
        dialect = importlib.import_module(_DIALECT_INSERTS[self.engine.dialect.name])
        metrics = SqlMetric.__table__
        latest = SqlLatestMetric.__table__
        self.insert_points = dialect.insert(metrics).on_conflict_do_nothing()
        upsert = dialect.insert(latest)
        newer = _row(upsert.excluded) > _row(latest.c)
        self.upsert_latest = upsert.on_conflict_do_update(
            index_elements=[latest.c.key, latest.c.run_uuid],
            set_={c: upsert.excluded[c] for c in ("value", "timestamp", "step", "is_nan")},
            where=newer,
        )
        self.active_runs: set[str] = set()

    @classmethod
    def for_client(cls, client: Any) -> BulkMetricWriter | None:
        """A writer for this MlflowClient's store, or None when it is not a SQL store we know."""
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
            if not isinstance(store, SqlAlchemyStore):
                return None
            if store.engine.dialect.name not in _DIALECT_INSERTS:
                return None
            return cls(store)
        except Exception:  # an MLflow whose internals moved: the public path still works
            return None

    def write(self, run_id: str, points: Sequence[Point]) -> None:
        """Store the points in one transaction; raises on anything log_batch would reject."""
        if run_id not in self.active_runs:
            self._check_active(run_id)
        from mlflow.utils.validation import _validate_metric

        sanitize = self.store.sanitize_metric_value
        rows: list[dict[str, Any]] = []
        latest: dict[str, dict[str, Any]] = {}
        for point in points:
            _validate_metric(point.key, point.value, point.timestamp_ms, point.step)
            is_nan, value = sanitize(point.value)
            row = {
                "run_uuid": run_id,
                "key": point.key,
                "value": value,
                "timestamp": point.timestamp_ms,
                "step": point.step,
                "is_nan": is_nan,
            }
            rows.append(row)
            best = latest.get(point.key)
            if best is None or _newer(row, best):
                latest[point.key] = row
        if not rows:
            return
        newest = sorted(latest.values(), key=lambda r: r["key"])  # one lock order for all
        with self.engine.begin() as conn:
            conn.execute(self.insert_points, rows)
            conn.execute(self.upsert_latest, newest)

    def _check_active(self, run_id: str) -> None:
        from mlflow.entities import LifecycleStage
        from mlflow.exceptions import MlflowException

        run = self.store.get_run(run_id)
        if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(f"run {run_id} is deleted; metrics cannot be logged to it")
        self.active_runs.add(run_id)


def _row(columns: Any) -> Any:
    import sqlalchemy as sa

    return sa.tuple_(columns.step, columns.timestamp, columns.value)


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["step"], a["timestamp"], a["value"]) > (b["step"], b["timestamp"], b["value"])
