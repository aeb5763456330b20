"""The bulk SQL path stores exactly what MLflow's own log_batch stores, on sqlite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from psy_agents_noaug.tracking.bulk_sql import BulkMetricWriter
from psy_agents_noaug.tracking.journal import Point
from psy_agents_noaug.tracking.writer import BULK_FAILURES_TO_DISABLE, Writer
from tests.mlflow_server import postgres_available, postgres_database

NAN, INF = float("nan"), float("inf")

#: Edge cases in one batch: NaN, +-inf, an exact duplicate, the same step logged twice with
#: different timestamps and values, steps out of order, and a key whose newest point is
#: not the last one sent.
TRICKY = [
    Point("loss", 0.5, 1, 1_000),
    Point("loss", NAN, 3, 1_003),
    Point("loss", 0.25, 2, 1_002),
    Point("loss", 0.25, 2, 1_002),
    Point("loss", 0.75, 3, 1_001),
    Point("acc", INF, 1, 1_000),
    Point("acc", -INF, 2, 1_000),
    Point("acc", 0.9, 2, 1_000),
    Point("lr", 1e-4, 5, 1_000),
    Point("lr", 2e-4, 4, 2_000),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest, sqlite_store: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_store
        return
    why = postgres_available()
    if why:
        pytest.skip(why)
    with postgres_database("psy_bulk") as uri:
        yield uri


def _snapshot(client: MlflowClient, run_id: str) -> tuple[dict, dict]:
    """Every stored point (NaN spelt as a string so that equal means equal) and the latest."""
    run = client.get_run(run_id)
    history = {
        key: sorted(
            (m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
            for m in client.get_metric_history(run_id, key)
        )
        for key in run.data.metrics
    }
    latest = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return history, latest


def _new_run(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name("bulk") or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("bulk")
    return client.create_run(experiment_id).info.run_id


def test_bulk_stores_what_log_batch_stores_and_replay_doubles_nothing(store_uri: str) -> None:
    client = MlflowClient(store_uri)
    bulk = BulkMetricWriter.for_client(client)
    assert bulk is not None
    ours, theirs = _new_run(client), _new_run(client)
    for _ in range(2):  # the second time is a journal replay: nothing may be doubled
        bulk.write(ours, TRICKY)
        client.log_batch(
            theirs, metrics=[Metric(p.key, p.value, p.timestamp_ms, p.step) for p in TRICKY]
        )
    history, latest = _snapshot(client, ours)
    assert (history, latest) == _snapshot(client, theirs)
    assert len(history["loss"]) == 4  # the exact duplicate is stored once
    assert latest == {"loss": "nan", "acc": 0.9, "lr": 1e-4}  # greatest (step, time, value)


def test_bulk_updates_latest_metrics_across_batches(store_uri: str) -> None:
    client = MlflowClient(store_uri)
    bulk = BulkMetricWriter.for_client(client)
    assert bulk is not None
    run_id = _new_run(client)
    bulk.write(run_id, [Point("loss", 0.9, 10, 5_000)])
    bulk.write(run_id, [Point("loss", 0.1, 9, 6_000)])  # older step: latest stays at step 10
    assert client.get_run(run_id).data.metrics["loss"] == 0.9
    bulk.write(run_id, [Point("loss", 0.2, 11, 4_000)])
    assert client.get_run(run_id).data.metrics["loss"] == 0.2
    assert len(client.get_metric_history(run_id, "loss")) == 3


def test_bulk_refuses_what_log_batch_refuses(sqlite_store: str) -> None:
    client = MlflowClient(sqlite_store)
    bulk = BulkMetricWriter.for_client(client)
    assert bulk is not None
    run_id = _new_run(client)
    with pytest.raises(MlflowException):
        bulk.write(run_id, [Point("bad key!", 1.0, 1, 1)])
    deleted = _new_run(client)
    client.delete_run(deleted)
    with pytest.raises(MlflowException, match="deleted"):
        bulk.write(deleted, [Point("loss", 1.0, 1, 1)])
    assert client.get_metric_history(run_id, "bad key!") == []


def test_no_bulk_path_for_file_and_http_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert BulkMetricWriter.for_client(MlflowClient(f"file://{tmp_path}/mlruns")) is None
    assert BulkMetricWriter.for_client(MlflowClient("http://127.0.0.1:9")) is None


def test_writer_falls_back_to_log_batch_and_stops_trying_a_broken_bulk_path(
    sqlite_store: str, tmp_path: Path
) -> None:
    client = MlflowClient(sqlite_store)
    run_id = _new_run(client)
    writer = Writer(sqlite_store, tmp_path / "journal", out=None, session="t", owner_pid=0)
    bulk = writer.bulk
    assert bulk is not None
    # A real SQL failure inside the bulk path: its INSERT now names a missing table.
    import sqlalchemy as sa

    missing = sa.table("no_such_table", sa.column("key"))
    bulk.insert_points = sa.insert(missing)
    for step in range(BULK_FAILURES_TO_DISABLE):
        assert writer.try_write(run_id, [Point("loss", 0.5, step, 1_000 + step)])
        assert (writer.bulk is None) == (step == BULK_FAILURES_TO_DISABLE - 1)
    assert writer.try_write(run_id, [Point("loss", 0.5, 99, 9_999)])
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [*range(BULK_FAILURES_TO_DISABLE), 99]
    assert writer.written == BULK_FAILURES_TO_DISABLE + 1


@pytest.mark.parametrize(("shipments", "size", "calls"), [(10, 60, 1), (10, 150, 2), (2, 1500, 4)])
def test_the_writer_packs_shipments_into_store_calls_of_at_most_1000_points(
    sqlite_store: str, tmp_path: Path, shipments: int, size: int, calls: int
) -> None:
    """A tracking server pays ~15 ms per request: ten half-second shipments are one call."""
    from psy_agents_noaug.tracking.messages import Points

    client = MlflowClient(sqlite_store)
    run_id = _new_run(client)
    writer = Writer(sqlite_store, tmp_path / "journal", out=None, session="t", owner_pid=0)
    stored: list[int] = []
    store_points = writer.store_points

    def counting(run: str, points: list[Point]) -> None:
        stored.append(len(points))
        store_points(run, points)

    writer.store_points = counting  # type: ignore[method-assign]
    for seq in range(shipments):
        rows = [(run_id, "loss", 0.5, seq * size + i, 1_000) for i in range(size)]
        writer.on_points(Points(seq, rows))
    writer.write_pending()
    assert len(stored) == calls and max(stored) <= 1000
    assert len(client.get_metric_history(run_id, "loss")) == shipments * size == sum(stored)
