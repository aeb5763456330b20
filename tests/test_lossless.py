"""Lossless under every failure: a dead writer, simultaneous first starts, torn journals.

Each drill uses real processes (the writer, `psy-agents`, scripts started together) and
counts what the store holds afterwards, exactly.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from psy_agents_noaug.tracking import get_sink, tags
from psy_agents_noaug.tracking import journal as jr
from psy_agents_noaug.tracking.messages import Flush
from psy_agents_noaug.tracking.sync import sync_journal

REPO = Path(__file__).resolve().parents[1]


def _count(uri: str, run_id: str, key: str) -> int:
    return len(MlflowClient(uri).get_metric_history(run_id, key))


def _steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


# ------------------------------------------------------------------ 1. the writer dies
def _kill_writer(sink) -> int:  # type: ignore[no-untyped-def]
    pid = sink.connection.writer_pid
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("moment", ["before_any_write", "mid_stream", "during_flush", "twice"])
def test_writer_sigkilled_loses_nothing_and_a_new_one_takes_over(
    sqlite_store: str, moment: str, capfd: pytest.CaptureFixture[str]
) -> None:
    mlflow.set_experiment(f"writer_death_{moment}")
    with mlflow.start_run() as run:
        sink = get_sink()
        sink.own_run()
        first = sink.connection.writer_pid
        if moment == "before_any_write":
            _kill_writer(sink)
        for step in range(6000):
            sink.log_dict({"a": float(step), "b": step * 0.5}, step=step)
            if step == 3000 and moment in ("mid_stream", "twice"):
                sink.connection.ship()
                _kill_writer(sink)
            if step == 4500 and moment == "twice":
                sink.connection.ship()
                _kill_writer(sink)
        if moment == "during_flush":
            # The writer has the flush request (and everything before it) and is writing.
            sink.connection.ship()
            sink.connection.submit(Flush)
            _kill_writer(sink)
        result = sink.flush()
        assert result.stored, result
        assert sink.connection.writer_pid != first
    for key in ("a", "b"):
        assert _steps(sqlite_store, run.info.run_id, key) == list(range(6000))
    assert MlflowClient(sqlite_store).get_run(run.info.run_id).info.status == "FINISHED"
    err = capfd.readouterr().err
    assert "died" in err and "takes over" in err, err[-2000:]
    assert "Traceback" not in err


def test_a_writer_that_keeps_dying_leaves_the_journal_to_this_process(
    sqlite_store: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from psy_agents_noaug.tracking.sink import MAX_WRITER_DEATHS

    client = MlflowClient(sqlite_store)
    run_id = client.create_run(client.create_experiment("dying")).info.run_id
    sink = get_sink(run_id)
    for death in range(MAX_WRITER_DEATHS + 1):
        for step in range(death * 100, death * 100 + 100):
            sink.log("m", float(step), step=step)
        sink.connection.ship()
        pid = sink.connection.writer_pid
        if pid is None:
            break
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sink.connection.writer_pid == pid and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the replacement, with a deadline
    sink.end_run("FINISHED")
    result = sink.flush()
    assert not result.stored and len(result.journals) == 1
    assert "journals the metrics itself" in capfd.readouterr().err
    report = sync_journal(result.journals[0])
    assert report.exit_code == 0, str(report)
    # What the writers confirmed is in the store; the rest came from the journal: all once.
    assert _steps(sqlite_store, run_id, "m") == list(range((MAX_WRITER_DEATHS + 1) * 100))
    assert client.get_run(run_id).info.status == "FINISHED"


def test_closing_reads_the_writers_last_acknowledgements_before_journaling_anything(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages sent just before the writer closes are acknowledged on its way out, and on a
    busy machine those acknowledgements can still sit in the pipe when the process has
    exited. Closing must read them before journaling what looks unconfirmed: else the
    points go to a journal nobody replays (an HPO worker left one so, and exited 0)."""
    from psy_agents_noaug.tracking import sink as sink_module
    from psy_agents_noaug.tracking.messages import Ack

    read_frame = sink_module.read_frame
    closing = sink_module.ConnectionState.CLOSING
    watched: list = []  # the connection, once made

    def starved_reader(stream):  # type: ignore[no-untyped-def]
        message = read_frame(stream)
        connection = watched[0] if watched else None
        if isinstance(message, Ack) and connection is not None and connection.state == closing:
            connection.proc.wait()  # the writer has exited before its last ack is read,
            deadline = time.monotonic() + 1.5  # and the closing side gets there first
            while connection.state == closing and time.monotonic() < deadline:
                time.sleep(0.01)
        return message

    monkeypatch.setattr(sink_module, "read_frame", starved_reader)  # before the writer starts
    client = MlflowClient(sqlite_store)
    run_id = client.create_run(client.create_experiment("closing")).info.run_id
    sink = get_sink(run_id)
    connection = sink.connection
    watched.append(connection)
    for step in range(50):
        sink.log("m", float(step), step=step)
    sink.set_tags({"last": "word"})
    sink.end_run("FINISHED")  # no flush: the writer confirms all this as it exits
    connection.close()
    assert not list(Path("journal").glob(f"*{jr.SUFFIX}"))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["last"] == "word"
    assert _steps(sqlite_store, run_id, "m") == list(range(50))


# ------------------------------------------------------------------ 2. first starts
FIRST_START = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    uri, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    from psy_agents_noaug.tracking import TrackedRun, prepare_store, setup_experiment
    (go.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # all start together once every process has imported
    prepare_store(uri)
    experiment_id = setup_experiment(uri, "first_start")
    with TrackedRun.start(uri, experiment_id, run_name=name) as run:
        for step in range(100):
            run.sink.log("m", float(step), step=step)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5])
def test_simultaneous_first_starts_on_a_new_sqlite_file_all_succeed(tmp_path: Path, n: int) -> None:
    script = tmp_path / "first_start.py"
    script.write_text(FIRST_START)
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), uri, f"p{i}", str(go)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(tmp_path.glob("ready-*"))) < n:
        time.sleep(0.05)  # polling until each has imported, with a deadline
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "alembic" not in err.lower(), err[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("first_start")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"p{i}" for i in range(n)]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert _count(uri, run.info.run_id, "m") == 100
    with sqlite3.connect(tmp_path / "new.db") as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert not [t for t in names if t.startswith("_alembic_tmp_")]


def test_a_half_migrated_store_is_refused_with_one_line(
    tmp_path: Path, tiny_overrides: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "half.db"
    uri = f"sqlite:///{db}"
    MlflowClient(uri).search_experiments()  # a complete schema …
    with sqlite3.connect(db) as conn:  # … that an interrupted upgrade left like this
        conn.execute("CREATE TABLE _alembic_tmp_latest_metrics (key VARCHAR(250))")
    overrides = [o for o in tiny_overrides if not o.startswith("mlflow.tracking_uri")]
    capfd.readouterr()  # the set-up's own MLflow output
    assert main(["train", *overrides, f"mlflow.tracking_uri={uri}"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "half-migrated" in err[0] and "_alembic_tmp_latest_metrics" in err[0]
    assert "mlflow db upgrade" in err[0]


# ------------------------------------------------------------------ 4. torn journals
def _journal(tmp_path: Path, uri: str, *, points: int = 3000) -> tuple[str, Path]:
    """A real run and a journal with its points in 30 records and its end (as a writer)."""
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment(f"torn_{tmp_path.name}")).info.run_id
    path = jr.journal_path(tmp_path / "journal", run_id)
    records: list[jr.Record] = []
    for seq, start in enumerate(range(0, points, 100), start=1):
        batch = [
            jr.Point("m", float(s), s, 1_700_000_000_000 + s) for s in range(start, start + 100)
        ]
        records.append(jr.PointsRecord(f"sess:{seq}:0", batch))
    records.append(jr.EndRecord("sess:999:end", "FINISHED"))
    jr.append(path, run_id, uri, records, owner_pid=_dead_pid())
    return run_id, path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _tear(path: Path, line: int, keep: int = 25) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line] = lines[line][:keep]
    path.write_bytes(b"\n".join(lines))


def test_a_journal_torn_at_the_start_syncs_every_point_given_the_store(
    tmp_path: Path, sqlite_store: str
) -> None:
    run_id, path = _journal(tmp_path, sqlite_store)
    _tear(path, 0, keep=10)  # the header: the store must be named
    assert main(["sync", str(path)]) == 2
    assert main(["sync", str(path), f"tracking_uri={sqlite_store}"]) == 0
    assert _steps(sqlite_store, run_id, "m") == list(range(3000))
    assert MlflowClient(sqlite_store).get_run(run_id).info.status == "FINISHED"


def test_a_torn_middle_record_that_was_resent_loses_nothing(
    tmp_path: Path, sqlite_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, path = _journal(tmp_path, sqlite_store)
    whole = path.read_bytes().split(b"\n")[10]  # record 10, as the next writer resends it
    _tear(path, 10, keep=40)  # torn after its id
    with open(path, "ab") as fh:
        fh.write(whole + b"\n")
    assert main(["sync", str(path)]) == 0
    assert "nothing lost" in capsys.readouterr().out
    assert _steps(sqlite_store, run_id, "m") == list(range(3000))


def test_a_torn_middle_record_that_nobody_resent_is_named_and_the_rest_arrives(
    tmp_path: Path, sqlite_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, path = _journal(tmp_path, sqlite_store)
    _tear(path, 10)  # points 900-999
    assert main(["sync", str(path)]) == 1
    out = capsys.readouterr().out
    assert "could not read 1 damaged line" in out and "line 11" in out
    assert _steps(sqlite_store, run_id, "m") == [s for s in range(3000) if not 900 <= s < 1000]
    assert MlflowClient(sqlite_store).get_run(run_id).info.status == "FINISHED"


def test_a_torn_end_record_does_not_strand_the_run_running(
    tmp_path: Path, sqlite_store: str
) -> None:
    run_id, path = _journal(tmp_path, sqlite_store)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:-2]) + b"\n" + lines[-2][:20])  # the end, half written
    assert main(["sync", str(path)]) == 1  # the torn end itself could not be read
    run = MlflowClient(sqlite_store).get_run(run_id)
    assert _count(sqlite_store, run_id, "m") == 3000
    assert run.info.status == "FAILED"
    assert "holds no end status" in run.data.tags[tags.END_REASON]


def test_the_writer_replays_around_a_torn_record_instead_of_waiting_for_ever(
    tmp_path: Path, sqlite_store: str
) -> None:
    run_id, path = _journal(tmp_path, sqlite_store)
    _tear(path, 5)
    journal_dir = path.parent
    sink = get_sink(run_id, journal_dir=journal_dir)  # a new writer finds the journal …
    sink.log("later", 1.0, step=1)
    assert sink.flush().stored  # … replays it whole but the torn record, and is done
    assert _count(sqlite_store, run_id, "m") == 2900
    assert _count(sqlite_store, run_id, "later") == 1
    assert not path.exists() and path.with_name(path.name + jr.SYNCED_SUFFIX).exists()
