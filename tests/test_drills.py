"""Failure drills: each kills or breaks something real, then checks nothing is lost.

* the tracking server (PostgreSQL backend, started by `scripts/tracking_server.sh`) is
  SIGKILLed and restarted while `psy-agents train` runs, and while two `psy-agents hpo`
  workers share one study;
* an HPO worker is SIGKILLed mid-trial: its trial fails by heartbeat and is retried;
* the training process is SIGKILLed: alone (its metric writer ends the run KILLED), and
  together with its writer (the run stays RUNNING until `psy-agents doctor`, or the next
  `psy-agents train` in that experiment, ends it FAILED once its heartbeat lapses);
* the artifact location fills up or turns read-only in the middle of training.

The end of ``train`` (Ctrl-C at ten moments, a server gone for good) is drilled in
``tests/test_drills_end.py``; what both share is in ``tests/drills.py``. Processes are real
(see ``tests/warm_cli.py``); every wait polls the store (PostgreSQL or sqlite, read
directly, so it works while the server is down) with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from psy_agents_noaug.tracking import orphans as doctor
from psy_agents_noaug.tracking import tags
from tests.drills import (
    EXPERIMENT,
    HPO_EXPERIMENT,
    Cli,
    assert_complete_history,
    assert_whole_model,
    config_logged,
    contiguous_from_1,
    epoch_began,
    history_timestamps,
    hpo_args,
    leftover_journals,
    needs_postgres,
    runs_named,
    steps_of,
    train_args,
    wait_for,
)
from tests.mlflow_server import MlflowServer, postgres_available, postgres_database


# ------------------------------------------------------------------------------ server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, str]]:
    """The script's tracking server on PostgreSQL, and the database URL to read it directly."""
    if postgres_available() is not None:
        pytest.skip(str(postgres_available()))
    workdir = tmp_path_factory.mktemp("drill_server")
    with postgres_database("psy_drill", create=False) as db_url:
        srv = MlflowServer(db_url, workdir, via_script=True)
        try:
            yield srv.start(), db_url
        finally:
            srv.kill()


def _outage_across_an_epoch(
    srv: MlflowServer, clis: list[Cli], epoch_ended: Callable[[], Any]
) -> tuple[float, float]:
    """Kill the server, keep it down until ``epoch_ended`` (an epoch that began when the
    caller called ended: a mark the training process leaves itself, not through the
    server), then hold the trainings still while the server comes back, so none of them
    ends during the outage however slow the machine. The caller calls this as an epoch of
    several steps begins, seen without the server or the metric writer (which on a busy
    machine runs idle and may report seconds late).
    Returns (killed_at, back_at)."""

    def hold(signum: int) -> None:
        for cli in clis:
            if cli.proc.poll() is None:
                cli.proc.send_signal(signum)

    hold(signal.SIGSTOP)  # the kill lands at the moment that was detected
    killed_at = time.time()
    srv.kill()
    hold(signal.SIGCONT)
    try:
        wait_for("an epoch trained while the server is down", epoch_ended, 240, tuple(clis))
        hold(signal.SIGSTOP)
    finally:  # whatever happened, the next drill gets a server
        try:
            srv.start()
        finally:
            back_at = time.time()
            hold(signal.SIGCONT)
    return killed_at, back_at


def _journal_report(folder: Path) -> str:
    """What journals were left behind, and the CLIs' logs, for a failure message."""
    parts = [f"{p}:\n{p.read_text(errors='replace')[-1500:]}" for p in leftover_journals(folder)]
    parts += [f"{log}:\n{log.read_text(errors='replace')[-1500:]}" for log in folder.glob("*.log")]
    return "\n".join(parts)


@pytest.mark.slow
@needs_postgres
@pytest.mark.postgres
def test_server_killed_and_restarted_during_training_loses_nothing(
    server: tuple[MlflowServer, str], small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    srv, db_url = server
    store = MlflowClient(db_url)  # reads PostgreSQL directly: works while the server is down
    save_dir = tmp_path / "checkpoints"
    cli = Cli(train_args(small_data, srv.url, "training.num_epochs=3",
                          f"training.save_dir={save_dir}", "mlflow.run_name=drill_server_kill",
                          batch_size=1, progress=True), tmp_path, "train")  # fmt: skip
    clis.append(cli)

    wait_for("training to start", lambda: epoch_began(cli), 180, (cli,), poll_s=0.02)
    checkpoint = save_dir / "best_checkpoint.pt"  # the first epoch's end always writes it
    killed_at, back_at = _outage_across_an_epoch(srv, [cli], checkpoint.exists)
    assert cli.wait(300) == 0, _journal_report(tmp_path)

    (run,) = runs_named(store, EXPERIMENT, **{"mlflow.runName": "drill_server_kill"})
    assert run.info.status == "FINISHED"
    assert_complete_history(store, run)
    during = [t for t in history_timestamps(store, run.info.run_id, "train/loss_step")
              if killed_at < t < back_at]  # fmt: skip
    assert during, "no step was logged while the server was down: the drill proved nothing"
    assert not leftover_journals(tmp_path), _journal_report(tmp_path)
    via_server = MlflowClient(srv.url)  # artifacts are served by the server
    top = {f.path for f in via_server.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints"} <= top
    assert_whole_model(via_server, run)


def _epochs_reported(study: Any, more_than: dict[int, int] | None = None) -> dict[int, int]:
    """Running trials and how many epochs each reported; with ``more_than``, only those of
    its trials that reported more since."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    reported = {t.number: len(t.intermediate_values) for t in trials}
    if more_than is None:
        return {n: k for n, k in reported.items() if k}
    return {n: k for n, k in reported.items() if n in more_than and k > more_than[n]}


def _created_study(storage: str, workers: list[Cli]) -> Any:
    """The study, once a worker created it."""

    def load() -> Any:
        with contextlib.suppress(KeyError):  # not created yet
            return _study(storage)
        return None

    return wait_for("the study", load, 240, tuple(workers))


def _study(storage: str, name: str = "criteria_stage0") -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def _assert_hpo_tree(store: MlflowClient, storage: str, n_trials: int, failed: int) -> list[Any]:
    from optuna.trial import TrialState

    study = _study(storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == n_trials, states
    assert states.count(TrialState.FAIL) == failed, states
    (parent,) = [r for r in runs_named(store, HPO_EXPERIMENT)
                 if r.data.tags.get("mlflow.runName") == "HPO_criteria_stage0"]  # fmt: skip
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["completed_trials"] == n_trials
    assert parent.data.metrics["failed_trials"] == failed
    children = runs_named(store, HPO_EXPERIMENT, **{"mlflow.parentRunId": parent.info.run_id})
    assert len(children) == n_trials + failed
    for child in children:
        if child.data.tags.get("hpo.state") == "COMPLETE":
            assert child.info.status == "FINISHED"
            assert_complete_history(store, child)
    return children


@pytest.mark.slow
@needs_postgres
@pytest.mark.postgres
def test_server_killed_during_hpo_with_two_workers_loses_nothing(
    server: tuple[MlflowServer, str], small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    srv, db_url = server
    store = MlflowClient(db_url)
    with postgres_database("psy_drill_study") as storage:
        args = hpo_args(small_data, srv.url, storage, "stage.n_trials=2", "stage.num_epochs=3",
                        batch_size=1)  # fmt: skip
        workers = [Cli(args, tmp_path, f"worker{i}") for i in range(2)]
        clis.extend(workers)

        # A trial reports each epoch's value to the study (PostgreSQL, not via the server) as
        # the epoch ends: the outage begins as a trial's second epoch does, and lasts until
        # that epoch's report.
        study = _created_study(storage, workers)
        began = wait_for("a trial's first epoch", lambda: _epochs_reported(study), 240,
                         tuple(workers), poll_s=0.02)  # fmt: skip
        killed_at, back_at = _outage_across_an_epoch(
            srv, workers, lambda: _epochs_reported(study, more_than=began)
        )
        codes = [w.wait(400) for w in workers]
        assert codes == [0, 0], _journal_report(tmp_path)
        children = _assert_hpo_tree(store, storage, n_trials=2, failed=0)
        during = [t for c in children
                  for t in history_timestamps(store, c.info.run_id, "train/loss_step")
                  if killed_at < t < back_at]  # fmt: skip
        assert during, "no step was logged while the server was down"
    assert not leftover_journals(tmp_path), _journal_report(tmp_path)


@pytest.mark.slow
@needs_postgres
@pytest.mark.postgres
def test_killed_hpo_worker_trial_fails_by_heartbeat_and_is_retried(
    server: tuple[MlflowServer, str], small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    from optuna.trial import TrialState

    srv, db_url = server
    store = MlflowClient(db_url)
    experiment = "hpo_worker_kill"
    with postgres_database("psy_drill_study") as storage:
        args = hpo_args(small_data, srv.url, storage, "stage.n_trials=2",
                         "stage.num_epochs=2", "stage.heartbeat_interval=1",
                         "stage.grace_period=3",
                         f"mlflow.experiment_name={experiment}")  # fmt: skip
        victim = Cli(args, tmp_path, "victim")
        clis.append(victim)

        def victim_mid_trial() -> Any:
            for child in runs_named(store, experiment, **{"hpo.state": "RUNNING"}):
                if config_logged(srv.artifacts, child.info.run_id):
                    return child
            return None

        lost_run = wait_for("the victim's trial to train", victim_mid_trial, 240, (victim,))
        survivor = Cli(args, tmp_path, "survivor")
        clis.append(survivor)
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.proc.wait(30) == -signal.SIGKILL
        assert survivor.wait(400) == 0, survivor.text()[-3000:]

        study = _study(storage)
        lost_number = int(lost_run.data.tags["hpo.trial_number"])
        lost = study.trials[lost_number]
        assert lost.state == TrialState.FAIL
        (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == lost_number]
        assert retry.state == TrialState.COMPLETE and retry.params == lost.params
        assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 2
        lost_run = store.get_run(lost_run.info.run_id)
        assert lost_run.info.status == "FAILED"
        assert lost_run.data.tags["hpo.state"] == "FAIL"
        assert "heartbeat" in lost_run.data.tags["hpo.error"]
        # What the victim logged before it died (if anything) is kept, without gaps.
        logged = steps_of(store, lost_run.info.run_id, "train/loss_step")
        assert logged == list(range(1, len(logged) + 1))
        (retry_run,) = runs_named(store, experiment, **{"hpo.retry_of": str(lost_number)})
        assert retry_run.info.status == "FINISHED"
        assert_complete_history(store, retry_run)


# ------------------------------------------------------------------------------ SIGKILL
def _wait_heartbeat_and_points(store: MlflowClient, name: str, cli: Cli) -> Any:
    def ready() -> Any:
        runs = runs_named(store, EXPERIMENT, **{"mlflow.runName": name})
        if not runs or tags.HEARTBEAT not in runs[0].data.tags:
            return None
        steps = steps_of(store, runs[0].info.run_id, "train/loss_step")
        return runs[0] if len(steps) >= 3 else None

    return wait_for(f"{name}: a heartbeat and three steps", ready, 180, (cli,))


@pytest.mark.slow
def test_sigkilled_training_is_ended_by_its_writer_or_repaired_by_doctor(
    small_data, tmp_path: Path, clis: list[Cli], tracking_uri: str, capsys
) -> None:
    """A: only the training process dies -> its writer ends the run KILLED.
    B: the process and its writer die together -> RUNNING, until the heartbeat lapses and
    `psy-agents doctor` (dry run) lists it and the next `psy-agents train` ends it FAILED."""
    store = MlflowClient(tracking_uri)
    long_run = "training.num_epochs=50"
    a = Cli(train_args(small_data, tracking_uri, long_run, "mlflow.run_name=drill_a"),
            tmp_path, "train_a")  # fmt: skip
    b = Cli(train_args(small_data, tracking_uri, long_run, "mlflow.run_name=drill_b"),
            tmp_path, "train_b")  # fmt: skip
    clis.extend([a, b])
    run_a = _wait_heartbeat_and_points(store, "drill_a", a)
    run_b = _wait_heartbeat_and_points(store, "drill_b", b)

    # A: SIGKILL the training process only.
    a.proc.kill()
    a.proc.wait(30)
    wait_for("A's writer to end the run", lambda: store.get_run(run_a.info.run_id).info.status
             == "KILLED", 60)  # fmt: skip
    run_a = store.get_run(run_a.info.run_id)
    assert run_a.data.tags[tags.END_REASON] == "the training process died"
    assert contiguous_from_1(steps_of(store, run_a.info.run_id, "train/loss_step"))

    # B: freeze the writer so it cannot react, kill the process, then the writer.
    writers = b.writer_pids()
    for pid in writers:
        os.kill(pid, signal.SIGSTOP)
    b.proc.kill()
    b.proc.wait(30)
    for pid in writers:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    run_b = store.get_run(run_b.info.run_id)
    assert run_b.info.status == "RUNNING"
    assert contiguous_from_1(steps_of(store, run_b.info.run_id, "train/loss_step"))
    last_beat = doctor.heartbeat_seconds(run_b.data.tags[tags.HEARTBEAT])
    assert last_beat is not None
    last_beat_ms = round(last_beat * 1000)
    assert 0 <= killed_at - last_beat_ms / 1000 < 60
    # A fresh heartbeat is not an orphan; a lapsed one is.
    assert doctor.find_orphans(tracking_uri, [EXPERIMENT], stale_after_s=120) == []
    (orphan,) = wait_for(
        "B's heartbeat to lapse",
        lambda: doctor.find_orphans(tracking_uri, [EXPERIMENT], stale_after_s=2),
        30,
    )
    assert orphan.run_id == run_b.info.run_id
    assert round(orphan.last_heartbeat * 1000) == last_beat_ms

    assert main(["doctor", f"tracking_uri={tracking_uri}", "stale_after_s=2",
                 "dry_run=true"]) == 0  # fmt: skip
    assert run_b.info.run_id in capsys.readouterr().out
    assert store.get_run(run_b.info.run_id).info.status == "RUNNING"

    # The next `psy-agents train` in that experiment ends the orphan before it starts.
    assert main(train_args(small_data, tracking_uri, "training.num_epochs=1",
                            "mlflow.orphan_after_s=2", "mlflow.run_name=next")) == 0  # fmt: skip
    run_b = store.get_run(run_b.info.run_id)
    assert run_b.info.status == "FAILED"
    assert "no heartbeat" in run_b.data.tags[tags.END_REASON]
    assert run_b.info.end_time == last_beat_ms  # it ended at its last sign of life
    assert store.get_run(run_a.info.run_id).info.status == "KILLED"  # not touched
    (nxt,) = runs_named(store, EXPERIMENT, **{"mlflow.runName": "next"})
    assert nxt.info.status == "FINISHED"


def test_doctor_repairs_only_lapsed_runs_it_owns(tracking_uri: str, capsys) -> None:
    """Synthetic runs: stale, fresh, tag-less, finished; CLI and function agree."""
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("doctor_exp")
    other = client.create_experiment("other_exp")
    now = time.time()

    def make(experiment: str, beat: float | None, status: str = "RUNNING") -> str:
        # Old runs carry milliseconds, new ones ISO time: doctor reads both.
        value = str(int(beat * 1000)) if beat is not None and beat < now - 500 else None
        if beat is not None and value is None:
            value = tags.heartbeat_value(beat)
        run_tags = {} if value is None else {tags.HEARTBEAT: value}
        run_id = client.create_run(experiment, tags=run_tags).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        return run_id

    stale = make(exp, now - 600)
    stale_other = make(other, now - 900)
    fresh = make(exp, now - 5)
    untagged = make(exp, None)
    finished = make(exp, now - 600, "FINISHED")

    found = doctor.find_orphans(tracking_uri, stale_after_s=300)
    assert [o.run_id for o in found] == [stale_other, stale]  # oldest heartbeat first
    assert (
        doctor.find_orphans(tracking_uri, ["doctor_exp", "missing"], stale_after_s=300)[0].run_id
        == stale
    )
    assert main(["doctor", f"tracking_uri={tracking_uri}", "experiment=doctor_exp"]) == 0
    out = capsys.readouterr().out
    assert stale in out and "1 orphaned run(s) marked FAILED" in out
    assert doctor.repair_orphans(tracking_uri, stale_after_s=300) == [stale_other]
    assert doctor.repair_orphans(tracking_uri, stale_after_s=300) == []
    statuses = {r: client.get_run(r).info.status for r in (stale, stale_other, fresh, untagged,
                                                          finished)}  # fmt: skip
    assert statuses == {stale: "FAILED", stale_other: "FAILED", fresh: "RUNNING",
                        untagged: "RUNNING", finished: "FINISHED"}  # fmt: skip
    assert client.get_run(stale).info.end_time == int((now - 600) * 1000)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "300"])
def test_doctor_rejects_bad_stale_after(bad: Any, tracking_uri: str) -> None:
    with pytest.raises(ValueError, match="stale_after_s"):
        doctor.find_orphans(tracking_uri, stale_after_s=bad)


def test_doctor_unreachable_store_is_one_line(capsys) -> None:
    assert main(["doctor", "tracking_uri=http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the tracking server") and "\n" not in err


# ------------------------------------------------------------------------------ disk
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of our own (root only; room for a tiny run until the drill breaks it)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write until the file system says it is full (unbuffered: nothing left to flush)."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * (256 * 1024))


@pytest.mark.parametrize("failure", ["disk_full", "read_only"])
def test_artifact_store_full_or_read_only_mid_training_keeps_the_training_state(
    failure: str, small_fs: Path, small_data, tracking_uri: str, tmp_path: Path, capsys
) -> None:
    client = MlflowClient(tracking_uri)
    client.create_experiment(EXPERIMENT, artifact_location=str(small_fs / "artifacts"))
    broken = threading.Event()

    def break_it_once_training_starts() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if any((small_fs / "artifacts").glob("*/artifacts/config.yaml")):
                if failure == "disk_full":
                    _fill(small_fs)
                else:
                    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
                broken.set()
                return
            threading.Event().wait(0.1)

    saboteur = threading.Thread(target=break_it_once_training_starts, daemon=True)
    saboteur.start()
    save_dir = tmp_path / "ckpt"
    code = main(train_args(small_data, tracking_uri, "training.num_epochs=2",
                            f"training.save_dir={save_dir}"))  # fmt: skip
    saboteur.join(5)
    assert broken.is_set(), "the artifact store was never broken: the drill proved nothing"
    err = capsys.readouterr().err.strip().splitlines()
    reason = "No space left on device" if failure == "disk_full" else "Read-only file system"
    assert code == 2
    assert err[-1].startswith("error: ") and reason in err[-1], err
    assert str(save_dir / "best_checkpoint.pt") in err[-1]
    (run,) = runs_named(client, EXPERIMENT)
    assert run.info.status == "FAILED"
    assert reason in run.data.tags["psy_agents.end_reason"]
    assert_complete_history(client, run)
    import torch

    state = torch.load(save_dir / "best_checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["global_step"] > 0 and state["model_state_dict"]
