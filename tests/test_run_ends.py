"""Reads that see every point: however a run ends, its points are in the store when that returns.

Each route MLflow offers to end a run (leaving ``with mlflow.start_run()``,
``mlflow.end_run()``, ``MlflowClient().set_terminated``, interpreter exit) and each run
psy-agents drives (a Trainer inside the user's run, OptunaRunner's parent and trials) is
read back *immediately* after the end, on sqlite and on a real ``mlflow server``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from psy_agents_noaug.tracking import get_sink, tags
from tests.mlflow_server import MlflowServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    workdir = tmp_path_factory.mktemp("run_ends_server")
    with MlflowServer(f"sqlite:///{workdir}/server.db", workdir) as srv:
        yield srv


@pytest.fixture(params=["sqlite", "server"])
def store(request: pytest.FixtureRequest, sqlite_store: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_store
        return
    srv: MlflowServer = request.getfixturevalue("server")
    mlflow.set_tracking_uri(srv.url)
    yield srv.url
    mlflow.set_tracking_uri(None)


def _count(uri: str, run_id: str, key: str) -> int:
    return len(MlflowClient(uri).get_metric_history(run_id, key))


def test_example_4_verbatim_is_complete_right_after_the_with_block(store: str) -> None:
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    mlflow.set_experiment(f"example4_{store[:6]}")
    system_logger = SystemMetricsLogger(
        log_cpu=True,
        log_gpu=True,
        log_disk=True,
        log_network=True,
    )

    with mlflow.start_run() as run:
        for step in range(1000):
            # Training code...

            if step % 10 == 0:
                system_logger.log_metrics(step=step)

    finished = MlflowClient().get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert "system/cpu_percent" in finished.data.metrics
    assert _count(store, run.info.run_id, "system/cpu_percent") == 100
    assert _count(store, run.info.run_id, "system/disk_read_mb_s") == 100
    system_logger.close()


@pytest.mark.parametrize("route", ["end_run", "set_terminated"])
def test_every_route_to_the_end_waits_for_the_points(store: str, route: str) -> None:
    experiment = mlflow.set_experiment(f"routes_{store[:6]}")
    if route == "end_run":
        run = mlflow.start_run()
    else:  # a run the user drives with the client alone
        run = MlflowClient(store).create_run(experiment.experiment_id)
    sink = get_sink(run.info.run_id)
    for step in range(2000):
        sink.log("train/loss_step", 1.0 / (step + 1), step=step)
    if route == "end_run":
        mlflow.end_run()
    else:
        MlflowClient(store).set_terminated(run.info.run_id, status="KILLED")
    info = MlflowClient(store).get_run(run.info.run_id).info
    assert info.status == ("FINISHED" if route == "end_run" else "KILLED")
    assert _count(store, run.info.run_id, "train/loss_step") == 2000


def test_interpreter_exit_ends_the_run_after_its_points(store: str, tmp_path: Path) -> None:
    script = tmp_path / "leave_it_open.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import mlflow
            from psy_agents_noaug.tracking import get_sink
            mlflow.set_tracking_uri({store!r})
            mlflow.set_experiment("exit_route")
            run = mlflow.start_run()
            print(run.info.run_id, flush=True)
            sink = get_sink()
            for step in range(1500):
                sink.log("m", float(step), step=step)
            # no end_run: the interpreter's exit ends it
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run_id = out.stdout.split()[0]
    assert MlflowClient(store).get_run(run_id).info.status == "FINISHED"
    assert _count(store, run_id, "m") == 1500


def test_trainer_inside_the_users_run_is_complete_right_after_it(store: str) -> None:
    from psy_agents_noaug.training.train_loop import Trainer
    from tests.toy import toy_setup

    mlflow.set_experiment(f"trainer_in_user_run_{store[:6]}")
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        "cpu",
        num_epochs=2,
        logging_steps=1,
        log_system_metrics=True,
        system_metrics_interval=2,
    )
    with mlflow.start_run() as run:
        results = trainer.train()
    finished = MlflowClient(store).get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    steps = results["total_steps"]
    assert _count(store, run.info.run_id, "train/loss_step") == steps
    assert _count(store, run.info.run_id, "system/cpu_percent") == steps // 2
    assert _count(store, run.info.run_id, "epoch/val_f1_macro") == 2
    assert "final/best_val_f1_macro" in finished.data.metrics


def test_optuna_parent_and_trials_are_complete_when_optimize_returns(store: str) -> None:
    from psy_agents_noaug.hpo.optuna_runner import OptunaRunner

    def objective(trial, params):  # type: ignore[no-untyped-def]
        sink = get_sink()
        for step in range(300):
            sink.log("train/loss_step", params["x"] / (step + 1), step=step)
        return params["x"]

    runner = OptunaRunner(f"ends_{store[:6]}", "maximize", "score", sampler="random", seed=0)
    runner.optimize(
        objective,
        n_trials=3,
        search_space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        mlflow_tracking_uri=store,
        mlflow_experiment_name=f"hpo_ends_{store[:6]}",
        show_progress_bar=False,
        print_summary=False,
    )
    client = MlflowClient(store)
    parent = client.get_run(runner.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["completed_trials"] == 3
    assert tags.HEARTBEAT in parent.data.tags
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{runner.parent_run_id}'",
    )
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        assert tags.HEARTBEAT in child.data.tags
        assert _count(store, child.info.run_id, "train/loss_step") == 300
        assert "trial/score" in child.data.metrics
