"""Failure drills: each kills or breaks something real, then checks nothing is lost.

* the tracking server (PostgreSQL backend, started by `scripts/tracking_server.sh`) is
  SIGKILLed and restarted while `psy-agents train` runs, and while two `psy-agents hpo`
  workers share one study;
* an HPO worker is SIGKILLed mid-trial: its trial fails by heartbeat and is retried;
* the training process is SIGKILLed: alone (its metric writer ends the run KILLED), and
  together with its writer (the run stays RUNNING until `psy-agents doctor`, or the next
  `psy-agents train` in that experiment, ends it FAILED once its heartbeat lapses);
* the artifact location fills up or turns read-only in the middle of training.

Processes are real subprocesses; every wait polls the store (PostgreSQL or sqlite, read
directly, so it works while the server is down) with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
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
from tests.mlflow_server import MlflowServer, postgres_available, postgres_database

EXPERIMENT = "training_criteria"
HPO_EXPERIMENT = "hpo_criteria"
TRAIN_KEYS = ("train/loss_step", "train/accuracy_step", "train/learning_rate")
SYSTEM_INTERVAL = 5
#: Posts per step (a batch is whole posts): the small data's 28 training posts make 14
#: steps an epoch, so a drill's training (or HPO trial) outlasts a server restart and logs
#: system metrics.
BATCH_SIZE = 2
needs_postgres = pytest.mark.skipif(
    postgres_available() is not None, reason=str(postgres_available())
)


# ------------------------------------------------------------------------------ helpers
def _train_args(small_data: tuple[Path, Path], uri: str, *extra: str) -> list[str]:
    posts, ann = small_data
    return ["train", "model=tiny", "model.max_length=64", f"training.batch_size={BATCH_SIZE}",
            "training.logging_steps=1",
            f"training.system_metrics_interval={SYSTEM_INTERVAL}",
            "training.early_stopping.patience=0", f"data.posts_path={posts}",
            f"data.annotations_path={ann}", f"mlflow.tracking_uri={uri}", "progress=false",
            *extra]  # fmt: skip


def _hpo_args(small_data: tuple[Path, Path], uri: str, storage: str, *extra: str) -> list[str]:
    posts, ann = small_data
    return ["hpo", "stage=stage0", "model=tiny", "model.max_length=64",
            f"stage.search_space.batch_size.choices=[{BATCH_SIZE}]",
            "training.logging_steps=1", f"training.system_metrics_interval={SYSTEM_INTERVAL}",
            f"data.posts_path={posts}", f"data.annotations_path={ann}",
            f"mlflow.tracking_uri={uri}", f"stage.storage={storage}", "stage.sampler=random",
            "progress=false", *extra]  # fmt: skip


class Cli:
    """`python -m psy_agents_noaug.cli …` as a subprocess with its output in a log file."""

    def __init__(self, args: list[str], cwd: Path, name: str, **env: str) -> None:
        self.log = cwd / f"{name}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PSY_AGENTS_JOURNAL_DIR": str(cwd / "journal"), **env}  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "psy_agents_noaug.cli", *args],
                cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"{self.log.name} still running after {timeout_s} s:\n{self.text()[-3000:]}"
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def writer_pids(self) -> list[int]:
        """The metric writer processes this CLI started (own sessions, children of ours)."""
        import psutil

        children = psutil.Process(self.proc.pid).children()
        pids = [c.pid for c in children if "tracking.writer" in " ".join(c.cmdline())]
        assert pids, children
        return pids


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    """Every CLI a test starts; any still running at the end is killed (by its own pid)."""
    started: list[Cli] = []
    yield started
    for cli in started:
        cli.kill()


def wait_for(
    what: str, predicate: Callable[[], Any], timeout_s: float, watch: tuple[Cli, ...] = ()
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail early if a CLI died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for cli in watch:
            if cli.proc.poll() is not None:
                pytest.fail(f"{cli.log.name} exited ({cli.proc.returncode}) before {what}:\n"
                            f"{cli.text()[-3000:]}")  # fmt: skip
        threading.Event().wait(0.25)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def _runs(client: MlflowClient, experiment: str, **tags: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=500)
    return [r for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _history_timestamps(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.timestamp / 1000 for m in client.get_metric_history(run_id, key)]


def assert_complete_history(client: MlflowClient, run: Any) -> None:
    """Every step-, epoch- and system-indexed point of a finished run is there, once."""
    run_id = run.info.run_id
    run = client.get_run(run_id)
    total = int(run.data.metrics["final/total_steps"])
    epochs = int(run.data.metrics["final/total_epochs"])
    assert total > 0 and epochs > 0
    for key in TRAIN_KEYS:
        assert _steps(client, run_id, key) == list(range(1, total + 1)), key
    for key in ("epoch/train_loss", "epoch/val_f1_macro", "epoch/val_f1_A.9",
                "epoch/val_auprc_macro", "epoch/duration_seconds"):  # fmt: skip
        assert _steps(client, run_id, key) == list(range(1, epochs + 1)), key
    expected = list(range(SYSTEM_INTERVAL, total + 1, SYSTEM_INTERVAL))
    assert _steps(client, run_id, "system/cpu_percent") == expected


def _models(client: MlflowClient, run: Any) -> dict[str, Any]:
    """The models a run shows: its MLflow logged models by id, and ``runs:/…/model`` when
    the store could not take one at the end (the journal's copy, uploaded by sync)."""
    found: dict[str, Any] = {
        m.model_id: m
        for m in client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
    }
    if "model" in {f.path for f in client.list_artifacts(run.info.run_id)}:
        found["model/"] = f"{run.info.artifact_uri}/model"
    return found


def assert_whole_model(client: MlflowClient, run: Any) -> None:
    """The run has a model, and it is complete (a logged model READY, or the run's model/)."""
    from mlflow.entities import LoggedModelStatus

    models = _models(client, run)
    assert models, f"run {run.info.run_id} has no model"
    for model in models.values():
        assert isinstance(model, str) or model.status == LoggedModelStatus.READY, model


def _contiguous_from_1(steps: list[int]) -> bool:
    return bool(steps) and steps == list(range(1, len(steps) + 1))


def _leftover_journals(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.journal.jsonl"))


def _training_started(artifacts: Path, run_id: str) -> bool:
    """config.yaml is the last thing a run logs before its first step (as on a fast machine,
    where waiting for steps could mean waiting for the end)."""
    return (artifacts / run_id / "artifacts" / "config.yaml").exists() or any(
        artifacts.glob(f"*/{run_id}/artifacts/config.yaml")
    )


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


@needs_postgres
@pytest.mark.postgres
def test_server_killed_and_restarted_during_training_loses_nothing(
    server: tuple[MlflowServer, str], small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    srv, db_url = server
    store = MlflowClient(db_url)  # reads PostgreSQL directly: works while the server is down
    cli = Cli(_train_args(small_data, srv.url, "training.num_epochs=2",
                          "mlflow.run_name=drill_server_kill"), tmp_path, "train")  # fmt: skip
    clis.append(cli)

    def training_started() -> Any:
        runs = _runs(store, EXPERIMENT, **{"mlflow.runName": "drill_server_kill"})
        if runs and _training_started(srv.artifacts, runs[0].info.run_id):
            return runs[0]
        return None

    run = wait_for("training to start", training_started, 180, (cli,))
    killed_at = time.time()
    srv.kill()
    assert cli.proc.poll() is None, "training must outlive the server"
    srv.start()
    back_at = time.time()
    assert cli.wait(300) == 0, cli.text()[-3000:]

    run = store.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert_complete_history(store, run)
    during = [t for t in _history_timestamps(store, run.info.run_id, "train/loss_step")
              if killed_at < t < back_at]  # fmt: skip
    assert during, "no step was logged while the server was down: the drill proved nothing"
    assert not _leftover_journals(tmp_path)
    via_server = MlflowClient(srv.url)  # artifacts are served by the server
    top = {f.path for f in via_server.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints"} <= top
    assert_whole_model(via_server, run)


def _study(storage: str, name: str = "criteria_stage0") -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def _assert_hpo_tree(store: MlflowClient, storage: str, n_trials: int, failed: int) -> list[Any]:
    from optuna.trial import TrialState

    study = _study(storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == n_trials, states
    assert states.count(TrialState.FAIL) == failed, states
    (parent,) = [r for r in _runs(store, HPO_EXPERIMENT)
                 if r.data.tags.get("mlflow.runName") == "HPO_criteria_stage0"]  # fmt: skip
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["completed_trials"] == n_trials
    assert parent.data.metrics["failed_trials"] == failed
    children = _runs(store, HPO_EXPERIMENT, **{"mlflow.parentRunId": parent.info.run_id})
    assert len(children) == n_trials + failed
    for child in children:
        if child.data.tags.get("hpo.state") == "COMPLETE":
            assert child.info.status == "FINISHED"
            assert_complete_history(store, child)
    return children


@needs_postgres
@pytest.mark.postgres
def test_server_killed_during_hpo_with_two_workers_loses_nothing(
    server: tuple[MlflowServer, str], small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    srv, db_url = server
    store = MlflowClient(db_url)
    with postgres_database("psy_drill_study") as storage:
        args = _hpo_args(small_data, srv.url, storage, "stage.n_trials=2")
        workers = [Cli(args, tmp_path, f"worker{i}") for i in range(2)]
        clis.extend(workers)

        def trial_training() -> bool:
            children = _runs(store, HPO_EXPERIMENT, **{"hpo.state": "RUNNING"})
            return any(_training_started(srv.artifacts, c.info.run_id) for c in children)

        wait_for("a trial to start training", trial_training, 240, tuple(workers))
        killed_at = time.time()
        srv.kill()
        srv.start()
        back_at = time.time()
        codes = [w.wait(400) for w in workers]
        assert codes == [0, 0], [w.text()[-2000:] for w in workers]
        children = _assert_hpo_tree(store, storage, n_trials=2, failed=0)
        during = [t for c in children
                  for t in _history_timestamps(store, c.info.run_id, "train/loss_step")
                  if killed_at < t < back_at]  # fmt: skip
        assert during, "no step was logged while the server was down"
    assert not _leftover_journals(tmp_path)


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
        args = _hpo_args(small_data, srv.url, storage, "stage.n_trials=2",
                         "stage.num_epochs=2", "stage.heartbeat_interval=1",
                         "stage.grace_period=3",
                         f"mlflow.experiment_name={experiment}")  # fmt: skip
        victim = Cli(args, tmp_path, "victim")
        clis.append(victim)

        def victim_mid_trial() -> Any:
            for child in _runs(store, experiment, **{"hpo.state": "RUNNING"}):
                if _training_started(srv.artifacts, child.info.run_id):
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
        logged = _steps(store, lost_run.info.run_id, "train/loss_step")
        assert logged == list(range(1, len(logged) + 1))
        (retry_run,) = _runs(store, experiment, **{"hpo.retry_of": str(lost_number)})
        assert retry_run.info.status == "FINISHED"
        assert_complete_history(store, retry_run)


# ------------------------------------------------------------------------------ SIGKILL
def _wait_heartbeat_and_points(store: MlflowClient, name: str, cli: Cli) -> Any:
    def ready() -> Any:
        runs = _runs(store, EXPERIMENT, **{"mlflow.runName": name})
        if not runs or tags.HEARTBEAT not in runs[0].data.tags:
            return None
        return runs[0] if len(_steps(store, runs[0].info.run_id, "train/loss_step")) >= 3 else None

    return wait_for(f"{name}: a heartbeat and three steps", ready, 180, (cli,))


def test_sigkilled_training_is_ended_by_its_writer_or_repaired_by_doctor(
    small_data, tmp_path: Path, clis: list[Cli], tracking_uri: str, capsys
) -> None:
    """A: only the training process dies -> its writer ends the run KILLED.
    B: the process and its writer die together -> RUNNING, until the heartbeat lapses and
    `psy-agents doctor` (dry run) lists it and the next `psy-agents train` ends it FAILED."""
    store = MlflowClient(tracking_uri)
    long_run = "training.num_epochs=50"
    a = Cli(_train_args(small_data, tracking_uri, long_run, "mlflow.run_name=drill_a"),
            tmp_path, "train_a")  # fmt: skip
    b = Cli(_train_args(small_data, tracking_uri, long_run, "mlflow.run_name=drill_b"),
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
    assert _contiguous_from_1(_steps(store, run_a.info.run_id, "train/loss_step"))

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
    assert _contiguous_from_1(_steps(store, run_b.info.run_id, "train/loss_step"))
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
    assert main(_train_args(small_data, tracking_uri, "training.num_epochs=1",
                            "mlflow.orphan_after_s=2", "mlflow.run_name=next")) == 0  # fmt: skip
    run_b = store.get_run(run_b.info.run_id)
    assert run_b.info.status == "FAILED"
    assert "no heartbeat" in run_b.data.tags[tags.END_REASON]
    assert run_b.info.end_time == last_beat_ms  # it ended at its last sign of life
    assert store.get_run(run_a.info.run_id).info.status == "KILLED"  # not touched
    (nxt,) = _runs(store, EXPERIMENT, **{"mlflow.runName": "next"})
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
    code = main(_train_args(small_data, tracking_uri, "training.num_epochs=2",
                            f"training.save_dir={save_dir}"))  # fmt: skip
    saboteur.join(5)
    assert broken.is_set(), "the artifact store was never broken: the drill proved nothing"
    err = capsys.readouterr().err.strip().splitlines()
    reason = "No space left on device" if failure == "disk_full" else "Read-only file system"
    assert code == 2
    assert err[-1].startswith("error: ") and reason in err[-1], err
    assert str(save_dir / "best_checkpoint.pt") in err[-1]
    (run,) = _runs(client, EXPERIMENT)
    assert run.info.status == "FAILED"
    assert reason in run.data.tags["psy_agents.end_reason"]
    assert_complete_history(client, run)
    import torch

    state = torch.load(save_dir / "best_checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["global_step"] > 0 and state["model_state_dict"]


# ------------------------------------------------------------------------------ the end
def test_server_dead_for_good_train_exits_in_seconds_and_sync_completes_the_run(
    small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    """The server dies after epoch 1 and stays down: the process finishes training, journals,
    says where and how to sync, and exits 3 within 30 s of its last step; sync completes it."""
    srv = MlflowServer(f"sqlite:///{tmp_path}/server.db", tmp_path).start()
    try:
        cli = Cli(_train_args(small_data, srv.url, "training.num_epochs=3",
                              "mlflow.run_name=dies_for_good"), tmp_path, "train")  # fmt: skip
        clis.append(cli)
        client = MlflowClient(srv.url)

        def first_epoch_in() -> Any:
            runs = _runs(client, EXPERIMENT, **{"mlflow.runName": "dies_for_good"})
            if runs and client.get_metric_history(runs[0].info.run_id, "epoch/val_f1_macro"):
                return runs[0]
            return None

        run = wait_for("epoch 1 in the store", first_epoch_in, 240, (cli,))
        srv.kill()
        code = cli.proc.wait(240)
        exited_at = time.time()
        out = cli.text()
        assert code == 3, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        journal = _leftover_journals(tmp_path)
        assert [j.name for j in journal] == [f"{run.info.run_id}.journal.jsonl"]
        assert f"psy-agents sync {journal[0]}" in out

        srv.start()
        assert main(["sync", str(journal[0])]) == 0
        run = client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert_complete_history(client, run)
        last_step = max(_history_timestamps(client, run.info.run_id, "train/loss_step"))
        after = exited_at - last_step
        assert after < 30, f"exited {after:.1f} s after its last step"
        top = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "checkpoints"} <= top
        assert_whole_model(client, run)
    finally:
        srv.stop()


def _end_phase_started(client: MlflowClient, name: str, epochs: int) -> Any:
    runs = _runs(client, EXPERIMENT, **{"mlflow.runName": name})
    if not runs:
        return None
    history = client.get_metric_history(runs[0].info.run_id, "epoch/val_f1_macro")
    return runs[0] if len(history) >= epochs else None


def test_sigint_at_ten_moments_across_the_end_of_train_never_leaves_half_a_model(
    small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    """Ten trainings, five at a time; each gets Ctrl-C at its own moment after its last
    epoch: checkpoint upload, model, the run's end, the summary, the exit."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    client.search_experiments()  # the schema once, before ten processes race for nothing
    outcomes = []
    for batch in (range(0, 5), range(5, 10)):
        started = {}
        for moment in batch:
            name = f"interrupted_{moment}"
            args = _train_args(small_data, uri, "training.num_epochs=1", f"mlflow.run_name={name}")
            started[moment] = Cli(args, tmp_path, name)
        clis.extend(started.values())
        due: dict[int, float] = {}
        runs: dict[int, Any] = {}
        deadline = time.monotonic() + 300
        while len(runs) < len(started) or any(
            started[m].proc.poll() is None and m not in due for m in started
        ):
            assert time.monotonic() < deadline, "the trainings did not reach their end"
            for moment, cli in started.items():
                if moment in runs:
                    continue
                run = _end_phase_started(client, f"interrupted_{moment}", 1)
                if run is not None:
                    runs[moment] = run
                    due[moment] = time.monotonic() + 0.15 * moment % 1.5
                elif cli.proc.poll() is not None:
                    pytest.fail(f"{cli.log.name} exited early:\n{cli.text()[-3000:]}")
            for moment, at in list(due.items()):
                if time.monotonic() >= at:
                    if started[moment].proc.poll() is None:
                        started[moment].proc.send_signal(signal.SIGINT)
                    del due[moment]
            threading.Event().wait(0.05)
        for moment, cli in started.items():
            code = cli.proc.wait(120)
            out = cli.text()
            # 130: interrupted, the run ended KILLED. -SIGINT: the signal came while Python was
            # already finalizing after the run had ended (a shell shows both as 130).
            assert code in (0, 130, -signal.SIGINT), out[-3000:]
            assert "Traceback" not in out, out[-3000:]
            finished = client.get_run(runs[moment].info.run_id)
            assert finished.info.status == ("KILLED" if code == 130 else "FINISHED"), out[-2000:]
            assert_complete_history(client, finished)
            top = {f.path for f in client.list_artifacts(finished.info.run_id)}
            whole = []
            for model in _models(client, finished).values():  # a model shown READY is whole
                if isinstance(model, str):
                    whole.append(mlflow.pyfunc.load_model(model))
                elif model.status == LoggedModelStatus.READY:
                    whole.append(mlflow.pyfunc.load_model(model.artifact_location))
                else:  # an interrupted upload is marked so, never left looking whole
                    assert model.status == LoggedModelStatus.FAILED, model
            assert not [p for p in top if "staged" in p]
            outcomes.append((moment, code, bool(whole)))
    codes = {code for _, code, _ in outcomes}
    assert 130 in codes and codes - {130}, outcomes  # the moments did span the end
