"""Several worker processes share one study and one parent run (journal file, PostgreSQL).

The workers are this file run as a script (``python tests/test_hpo_workers.py …``) with a
pure, fast objective; the tests start them as subprocesses, wait with a deadline, and read
the study and the MLflow store back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve()
N_TRIALS = 12
EXPERIMENT = "hpo_workers"
STUDY = "workers_study"
PG_ADMIN_USERS = ("postgres", "root")
SEARCH_SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "y": {"type": "int", "low": 0, "high": 9},
}


# ------------------------------------------------------------------------ the worker
def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--hang-marker", default=None)
    parser.add_argument("--no-sink", action="store_true", help="log no training points")
    args = parser.parse_args(argv)

    import optuna

    from psy_agents_noaug.hpo import OptunaRunner
    from psy_agents_noaug.tracking import get_sink

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hung = threading.Event()

    def objective(trial: optuna.Trial, params: dict) -> float:
        value = -((params["x"] - 1.0) ** 2) + 0.01 * params["y"]
        if not args.no_sink:
            sink = get_sink()  # the trial's child run is the active run of this thread
            for step in range(3):
                sink.log("train/loss_step", (params["x"] - step) ** 2, step)
            sink.log_dict({"epoch/val_f1_macro": value}, step=1)
        if args.hang_marker and not hung.is_set():
            hung.set()
            Path(args.hang_marker).write_text(str(trial.number))
            threading.Event().wait(300)  # stands for a long trial; the test kills us here
        return value

    runner = OptunaRunner(
        STUDY,
        "maximize",
        "val_f1_macro",
        storage=args.storage,
        sampler="random",
        pruner="none",
        heartbeat_interval=1,
        grace_period=2,
        plot_interval_s=None,  # figures cost seconds of CPU and are tested elsewhere
    )
    runner.optimize(
        objective,
        N_TRIALS,
        SEARCH_SPACE,
        mlflow_tracking_uri=args.tracking_uri,
        mlflow_experiment_name=EXPERIMENT,
        show_progress_bar=False,
        print_summary=False,
    )
    return 0


# ------------------------------------------------------------------------ helpers
def _start_worker(storage: str, tracking_uri: str, cwd: Path, log: Path, *extra: str):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PSY_AGENTS_JOURNAL_DIR": str(cwd / "journal")}
    with open(log, "wb") as out:
        cmd = [sys.executable, str(WORKER), "--storage", storage, "--tracking-uri", tracking_uri]
        return subprocess.Popen(
            [*cmd, *extra],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_all(procs: list[subprocess.Popen], deadline_s: float) -> list[int]:
    end = time.monotonic() + deadline_s
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(0.1, end - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            pytest.fail(f"workers did not finish within {deadline_s} s")
    return codes


def _read_back(storage: str, tracking_uri: str):
    import optuna
    from mlflow.tracking import MlflowClient

    from psy_agents_noaug.hpo.storage import open_storage

    study = optuna.load_study(
        study_name=STUDY, storage=open_storage(storage, STUDY, heartbeat_interval=None).storage
    )
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlflow.runName", "").startswith("HPO_")]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return study, client, parents, children


def _assert_shared_study(
    logs: list[Path], storage: str, tracking_uri: str, *, failed: int = 0, history: bool = True
):
    from optuna.trial import TrialState

    for log in logs:
        text = log.read_text(errors="replace")
        assert "database is locked" not in text, text[-2000:]
    study, client, parents, children = _read_back(storage, tracking_uri)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == N_TRIALS
    assert states.count(TrialState.FAIL) == failed
    assert len(states) == N_TRIALS + failed
    assert len(parents) == 1, [p.info.run_id for p in parents]
    parent = parents[0]
    assert parent.data.tags["mlflow.runName"] == f"HPO_{STUDY}"
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert len(children) == N_TRIALS + failed
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    names = sorted(c.data.tags["mlflow.runName"] for c in children)
    assert names == [f"trial_{n:04d}" for n in range(N_TRIALS + failed)]
    metrics = parent.data.metrics
    assert metrics["total_trials"] == len(states)
    assert metrics["completed_trials"] == N_TRIALS
    assert metrics["failed_trials"] == failed
    assert metrics["pruned_trials"] == 0
    assert parent.info.status == "FINISHED"
    # every child holds its own training history
    for child in children if history else []:
        if child.data.tags.get("hpo.state") == "COMPLETE":
            history = client.get_metric_history(child.info.run_id, "train/loss_step")
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    return study, client, parent, children


# ------------------------------------------------------------------------ fixtures
@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "journal").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite file with its schema, made once (migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _tracking_copy(empty_db: Path, workdir: Path) -> str:
    shutil.copyfile(empty_db, workdir / "mlflow.db")
    return f"sqlite:///{workdir / 'mlflow.db'}"


@pytest.fixture()
def pg_url() -> Iterator[str]:
    psycopg2 = pytest.importorskip("psycopg2")
    conn = None
    user = None
    errors = []
    for user in PG_ADMIN_USERS:
        try:
            conn = psycopg2.connect(
                host="127.0.0.1", port=5432, user=user, dbname="postgres", connect_timeout=3
            )
            break
        except psycopg2.OperationalError as exc:
            errors.append(str(exc).strip())
    if conn is None:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {errors[-1]}")
    conn.autocommit = True
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@127.0.0.1:5432/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


# ------------------------------------------------------------------------ tests
def test_three_workers_share_journal_study(workdir: Path) -> None:
    """Also starts from an empty MLflow file: its schema must be created exactly once."""
    storage = f"journal:{workdir / 'study.journal'}"
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    logs = [workdir / f"worker{i}.log" for i in range(3)]
    procs = [_start_worker(storage, tracking, workdir, log) for log in logs]
    codes = _wait_all(procs, deadline_s=150)
    assert codes == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
    _assert_shared_study(logs, storage, tracking)


@pytest.mark.postgres
def test_three_workers_share_postgres_study(workdir: Path, pg_url: str, empty_db: Path) -> None:
    tracking = _tracking_copy(empty_db, workdir)
    logs = [workdir / f"worker{i}.log" for i in range(3)]
    procs = [_start_worker(pg_url, tracking, workdir, log, "--no-sink") for log in logs]
    codes = _wait_all(procs, deadline_s=150)
    assert codes == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
    _assert_shared_study(logs, pg_url, tracking, history=False)


def _wait_for_file(path: Path, procs: list[subprocess.Popen], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while not path.exists():
        if time.monotonic() > end or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            pytest.fail(f"{path.name} did not appear within {deadline_s} s")
        threading.Event().wait(0.05)


@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_killed_worker_trial_fails_by_heartbeat_and_is_retried(
    workdir: Path, backend: str, request: pytest.FixtureRequest, empty_db: Path
) -> None:
    storage = (
        f"journal:{workdir / 'study.journal'}"
        if backend == "journal"
        else request.getfixturevalue("pg_url")
    )
    tracking = _tracking_copy(empty_db, workdir)
    marker = workdir / "victim_started"
    logs = [workdir / f"worker{i}.log" for i in range(2)]  # the victim and one survivor
    hang = ("--no-sink", "--hang-marker", str(marker))
    victim = _start_worker(storage, tracking, workdir, logs[0], *hang)
    others = [_start_worker(storage, tracking, workdir, log, "--no-sink") for log in logs[1:]]
    _wait_for_file(marker, [victim], deadline_s=60)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    codes = _wait_all(others, deadline_s=150)
    assert codes == [0], logs[1].read_text()[-2000:]

    from optuna.trial import TrialState

    study, client, _, children = _assert_shared_study(
        logs[1:], storage, tracking, failed=1, history=False
    )
    lost_number = int(marker.read_text())
    lost = study.trials[lost_number]
    assert lost.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == lost_number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == lost.params
    by_name = {c.data.tags["mlflow.runName"]: c for c in children}
    lost_run = client.get_run(by_name[f"trial_{lost_number:04d}"].info.run_id)
    assert lost_run.info.status == "FAILED"
    assert lost_run.data.tags["hpo.state"] == "FAIL"
    assert "heartbeat" in lost_run.data.tags["hpo.error"]
    retry_run = by_name[f"trial_{retries[0].number:04d}"]
    assert retry_run.data.tags["hpo.retry_of"] == str(lost_number)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
