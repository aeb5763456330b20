"""The metric writer stays out of training's way: idle CPU in the caller's session, and
normal priority only while someone waits on it or it has fallen behind."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.tracking import get_sink, launcher
from psy_agents_noaug.tracking.messages import Points


def _store(tmp_path: Path, template: Path, name: str) -> str:
    shutil.copyfile(template, tmp_path / f"{name}.db")
    return f"sqlite:///{tmp_path / name}.db"


def _policies(pid: int) -> set[int]:
    """The scheduling policies of ``pid``'s threads (Linux schedules threads), less the one
    that always keeps normal priority: the writer's watchdog."""
    policies = [os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]
    assert policies.count(os.SCHED_OTHER) >= 1  # the watchdog
    policies.remove(os.SCHED_OTHER)
    return set(policies)


@pytest.mark.parametrize("launcher_on", ["1", "0"], ids=["forked", "fresh"])
def test_the_writer_is_idle_work_in_the_callers_session_outside_its_process_group(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch, launcher_on: str
) -> None:
    """Its own process group: a Ctrl-C in the terminal reaches training only. The caller's
    session: where the kernel shares CPU between sessions (autogroup), a writer in a session
    of its own would get an equal share whatever its policy; in ours SCHED_IDLE holds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(launcher.LAUNCHER_ENV, launcher_on)
    uri = _store(tmp_path, empty_mlflow_db, f"session{launcher_on}")
    sink = get_sink(MlflowClient(uri).create_run("0").info.run_id, tracking_uri=uri,
                    journal_dir=tmp_path / "j")  # fmt: skip
    sink.log("m", 1.0, step=1)
    assert sink.flush()
    pid = sink.connection.writer_pid
    assert pid is not None
    try:
        assert os.getsid(pid) == os.getsid(0)
        assert os.getpgid(pid) == pid != os.getpgid(0)
        # A closed terminal (SIGHUP) or a `stty tostop` warning (SIGTTOU) must not stop it.
        for terminal_signal in (signal.SIGHUP, signal.SIGTTOU, signal.SIGINT):
            os.kill(pid, terminal_signal)
        sink.log("m", 2.0, step=2)
        assert sink.flush()
        assert sink.connection.writer_pid == pid
        assert len(MlflowClient(uri).get_metric_history(sink.run_id, "m")) == 2
        # Idle once it keeps up (a writer still importing when the first points came is
        # behind at first, and catches up at normal priority).
        assert _policies(pid) == {os.SCHED_IDLE}
    finally:
        sink.connection.close()


def test_a_writer_starved_of_idle_cpu_takes_normal_priority_until_it_has_caught_up(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training that keeps every core busy leaves an idle writer no CPU: points it handles
    long after they were shipped raise it to normal priority, until it keeps up again."""
    monkeypatch.chdir(tmp_path)
    uri = _store(tmp_path, empty_mlflow_db, "pace")
    run_id = MlflowClient(uri).create_run("0").info.run_id
    sink = get_sink(run_id, tracking_uri=uri, journal_dir=tmp_path / "j")
    connection = sink.connection
    try:
        for step in (0, 1):  # the second is handled at once: the writer keeps up
            sink.log("m", 1.0, step=step)
            assert sink.flush()
        pid = connection.writer_pid
        assert pid is not None and _policies(pid) == {os.SCHED_IDLE}
        shipped_long_ago = time.monotonic() - 10
        connection.submit(lambda seq: Points(seq, [(run_id, "m", 2.0, 2, 1)], shipped_long_ago))
        assert sink.flush()
        assert _policies(pid) == {os.SCHED_OTHER}
        connection.submit(lambda seq: Points(seq, [(run_id, "m", 3.0, 3, 1)]))
        assert sink.flush()
        assert _policies(pid) == {os.SCHED_IDLE}
        assert len(MlflowClient(uri).get_metric_history(run_id, "m")) == 4
    finally:
        connection.close()
