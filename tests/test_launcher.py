"""The metric-writer launcher: writers forked from one warm process, whatever happens to it."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from psy_agents_noaug.tracking import get_sink, launcher
from psy_agents_noaug.tracking.sink import connection_for


def _store(tmp_path: Path, template: Path, name: str) -> str:
    shutil.copyfile(template, tmp_path / f"{name}.db")
    return f"sqlite:///{tmp_path / name}.db"


def _log_and_read_back(uri: str, journal: Path) -> tuple[int, int]:
    """One point through a fresh writer for ``uri``; (the writer's parent, points read)."""
    run_id = MlflowClient(uri).create_run("0").info.run_id
    sink = get_sink(run_id, tracking_uri=uri, journal_dir=journal)
    sink.log("m", 1.0, step=1)
    assert sink.flush()
    assert sink.connection.writer_pid is not None
    parent = psutil.Process(sink.connection.writer_pid).ppid()
    sink.connection.close()
    return parent, len(MlflowClient(uri).get_metric_history(run_id, "m"))


def test_writers_of_several_stores_are_forked_from_one_launcher(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results = [_log_and_read_back(_store(tmp_path, empty_mlflow_db, name), tmp_path / "j")
               for name in ("a", "b", "c")]  # fmt: skip
    assert launcher._process is not None
    assert results == [(launcher._process.pid, 1)] * 3
    assert "tracking.launcher" in " ".join(psutil.Process(launcher._process.pid).cmdline())


def test_a_relative_sqlite_uri_is_the_callers_folder_not_the_launchers(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher.ensure_running()  # started elsewhere, before this test's folder existed
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_mlflow_db, tmp_path / "here.db")
    _, points = _log_and_read_back("sqlite:///here.db", tmp_path / "journal")
    assert points == 1


def test_a_killed_launcher_is_replaced_and_nothing_is_lost(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    launcher.ensure_running()
    assert launcher._process is not None
    old = launcher._process.pid
    os.kill(old, signal.SIGKILL)
    launcher._process.wait(30)
    parent, points = _log_and_read_back(_store(tmp_path, empty_mlflow_db, "after"), tmp_path / "j")
    assert points == 1
    assert launcher._process is not None and parent == launcher._process.pid != old


def test_the_writers_messages_reach_the_callers_stderr_of_the_moment(
    tmp_path: Path, empty_mlflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The launcher may have been started under another test's captured stderr; each
    writer takes its caller's stderr as it is when the writer starts."""
    launcher.ensure_running()
    uri = "sqlite:////proc/psy-agents-no-such-dir/mlflow.db"
    sink = get_sink("r" * 32, tracking_uri=uri, journal_dir=tmp_path / "journal")
    sink.log("m", 1.0, step=1)
    assert not sink.flush()
    connection_for(uri, tmp_path / "journal").close()
    assert "journaling" in capfd.readouterr().err


def test_launcher_switched_off_starts_the_writer_as_this_processs_child(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(launcher.LAUNCHER_ENV, "0")
    parent, points = _log_and_read_back(_store(tmp_path, empty_mlflow_db, "off"), tmp_path / "j")
    assert (parent, points) == (os.getpid(), 1)
