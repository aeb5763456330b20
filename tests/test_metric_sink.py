"""The metric sink: exact counts, tensors, unreachable stores, journals and `sync`."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from psy_agents_noaug.cli import main as cli_main
from psy_agents_noaug.tracking import get_sink
from psy_agents_noaug.tracking.sync import sync_journal

BROKEN_URI = "sqlite:////proc/psy-agents-no-such-dir/mlflow.db"


def _history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key)]


def test_every_point_logged_is_read_back_exactly(tracking_uri: str) -> None:
    with mlflow.start_run() as run:
        sink = get_sink()
        for step in range(3000):
            sink.log_dict({"a": torch.tensor(float(step)), "b": step, "c": 0.25}, step=step)
        result = sink.flush()
    assert result.stored and result.journaled == 0
    for key in ("a", "b", "c"):
        history = _history(tracking_uri, run.info.run_id, key)
        assert len(history) == 3000
    assert sorted(_history(tracking_uri, run.info.run_id, "a"))[-1] == (2999, 2999.0)


def test_nan_values_are_kept(tracking_uri: str) -> None:
    with mlflow.start_run() as run:
        sink = get_sink()
        sink.log("loss", float("nan"), step=1)
        sink.log("loss", torch.tensor(float("inf")), step=2)
        assert sink.flush()
    values = dict(_history(tracking_uri, run.info.run_id, "loss"))
    assert math.isnan(values[1])
    assert values[2] > 1e308  # MLflow stores +inf as the largest float


def test_unreachable_store_journals_then_sync_uploads_exactly_once(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment("sync"))
    run_id = run.info.run_id
    sink = get_sink(run_id, tracking_uri=BROKEN_URI)
    for step in range(2500):
        sink.log("train/loss_step", torch.tensor(1.0 / (step + 1)), step=step)
    sink.end_run("FINISHED")
    result = sink.flush()
    assert not result.stored
    assert len(result.journals) == 1
    journal = Path(result.journals[0])
    assert journal.exists()

    assert cli_main(["sync", str(journal), f"tracking_uri={tracking_uri}"]) == 0
    assert len(_history(tracking_uri, run_id, "train/loss_step")) == 2500
    assert client.get_run(run_id).info.status == "FINISHED"
    # A second sync is a no-op: nothing is doubled.
    assert "already synced" in str(sync_journal(journal, tracking_uri=tracking_uri))
    assert len(_history(tracking_uri, run_id, "train/loss_step")) == 2500


def test_interrupted_sync_resumes_without_doubling(tracking_uri: str) -> None:
    from psy_agents_noaug.tracking import journal as jr

    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("resume")).info.run_id
    path = jr.journal_path(Path("journal"), run_id)
    points = [jr.Point("m", float(i), i, 1_700_000_000_000 + i) for i in range(2500)]
    records = [jr.PointsRecord(f"s:{i}:0", points[i : i + 500]) for i in range(0, 2500, 500)]
    jr.append(path, run_id, tracking_uri, records, owner_pid=0)
    journal = jr.Journal.read(path)
    first_end, first_chunk, _ = next(journal.chunks(0))
    client.log_batch(
        run_id,
        metrics=[
            mlflow.entities.Metric(p.key, p.value, p.timestamp_ms, p.step) for p in first_chunk
        ],
    )
    journal.mark_uploaded(first_end)  # as if the previous sync died after one batch
    sync_journal(path, tracking_uri=tracking_uri)
    assert len(_history(tracking_uri, run_id, "m")) == 2500


def test_a_journal_finished_by_another_writer_leaves_no_progress_for_the_next_one(
    tracking_uri: str,
) -> None:
    """Two writers replay one run's journal (two HPO workers journaled its parent run): one
    finishes it while the other is mid-upload. The slower one's progress must not outlive
    the file, or a journal made anew for the run would start from that old line count."""
    from psy_agents_noaug.tracking import journal as jr

    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("two_writers")).info.run_id
    path = jr.journal_path(Path("journal"), run_id)

    def points(first: int) -> list[jr.PointsRecord]:
        return [jr.PointsRecord(f"s:{first + i}:0", [jr.Point("m", float(first + i),
                first + i, 1_700_000_000_000 + first + i)]) for i in range(3)]  # fmt: skip

    jr.append(path, run_id, tracking_uri, points(0), owner_pid=0)
    slow = jr.Journal.read(path)
    fast = jr.Journal.read(path)
    assert jr.finish(fast) is not None  # the fast writer uploaded and finished it
    slow.mark_uploaded(4)  # the slow one records its progress too late
    assert not slow.progress_path().exists()
    jr.append(path, run_id, tracking_uri, points(10), owner_pid=0)  # the run journals again
    fresh = jr.Journal.read(path)
    assert fresh.uploaded() == 0
    fresh.progress_path().write_text("4")  # a progress file of format 1 (lines only)
    assert fresh.uploaded() == 0
    sync_journal(path, tracking_uri=tracking_uri)
    assert sorted(s for s, _ in _history(tracking_uri, run_id, "m")) == [10, 11, 12]


def test_sync_of_a_missing_journal_is_a_clear_error(tracking_uri: str, capsys) -> None:
    assert cli_main(["sync", "nope.journal.jsonl"]) == 2
    assert "journal not found" in capsys.readouterr().err


@pytest.mark.slow
def test_server_down_for_good_journal_then_sync_uploads_exactly_once(tmp_path: Path) -> None:
    """A real `mlflow server`: stopped mid-run and not restarted before the run ends."""
    from psy_agents_noaug.tracking import sink as metric_sink
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(f"sqlite:///{tmp_path}/server.db", tmp_path).start()
    try:
        client = MlflowClient(server.url)
        run_id = client.create_run(client.create_experiment("outage")).info.run_id
        sink = get_sink(run_id, tracking_uri=server.url, journal_dir=tmp_path / "journal")
        for step in range(1, 501):
            sink.log("train/loss_step", 1.0 / step, step=step)
        assert sink.flush().stored
        server.stop()
        for step in range(501, 1201):
            sink.log("train/loss_step", 1.0 / step, step=step)
        sink.end_run("FINISHED")
        result = sink.flush(timeout=120)
        assert not result.stored and len(result.journals) == 1
        metric_sink.shutdown()  # the training process exits with the server still down
        journal = Path(result.journals[0])
        assert journal.exists()

        server.start()
        assert cli_main(["sync", str(journal)]) == 0
        assert cli_main(["sync", str(journal)]) == 0  # twice: nothing doubles
        history = _history(server.url, run_id, "train/loss_step")
        assert sorted(step for step, _ in history) == list(range(1, 1201))
        assert MlflowClient(server.url).get_run(run_id).info.status == "FINISHED"
    finally:
        server.stop()


@pytest.mark.slow
def test_an_artifact_journaled_in_a_short_outage_is_uploaded_when_the_server_is_back(
    tmp_path: Path,
) -> None:
    """Only an artifact met the outage (the points before and after found the server): the
    writer still replays its journal, so the file reaches the run and no journal is left."""
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(f"sqlite:///{tmp_path}/server.db", tmp_path).start()
    try:
        client = MlflowClient(server.url)
        run_id = client.create_run(client.create_experiment("blip")).info.run_id
        sink = get_sink(run_id, tracking_uri=server.url, journal_dir=tmp_path / "journal")
        sink.log("m", 1.0, step=1)
        assert sink.flush().stored
        server.kill()
        (tmp_path / "config.yaml").write_text("seed: 1\n")
        sink.log_artifact(tmp_path / "config.yaml")
        assert not sink.flush(timeout=60).stored  # journaled while the server is down
        server.start()
        sink.log("m", 2.0, step=2)
        sink.end_run("FINISHED")
        result = sink.flush(timeout=60)
        assert result.stored and not result.journals, result
        assert [f.path for f in client.list_artifacts(run_id)] == ["config.yaml"]
        assert sorted(step for step, _ in _history(server.url, run_id, "m")) == [1, 2]
        assert client.get_run(run_id).info.status == "FINISHED"
        assert not list((tmp_path / "journal").glob("*.journal.jsonl"))
    finally:
        server.stop()


def test_a_value_that_is_not_a_number_is_named_and_the_rest_still_arrives(
    tracking_uri: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with mlflow.start_run() as run:
        sink = get_sink()
        sink.log_dict({"good": 1.0, "text": "high", "pair": torch.tensor([1.0, 2.0])}, step=1)
        assert sink.flush()
        sink.log("good", torch.tensor(2.0), step=2)  # shipping goes on after the bad batch
        assert sink.flush()
    assert sorted(_history(tracking_uri, run.info.run_id, "good")) == [(1, 1.0), (2, 2.0)]
    assert set(MlflowClient(tracking_uri).get_run(run.info.run_id).data.metrics) == {"good"}
    err = capfd.readouterr().err
    assert "metric 'text' skipped" in err and "metric 'pair' skipped" in err
