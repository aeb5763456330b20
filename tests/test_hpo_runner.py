"""OptunaRunner in one process: the spec's usage example, the run tree, counts, pruning."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from psy_agents_noaug.hpo import OptunaRunner, make_pruning_callback, summarize_study
from psy_agents_noaug.hpo.optuna_runner import format_top_trials, load_best_params
from psy_agents_noaug.hpo.parent_run import PARENT_RUN_ATTR, ParentRun
from psy_agents_noaug.hpo.samplers import make_pruner, make_sampler
from psy_agents_noaug.hpo.search_space import parse_search_space, suggest_params
from psy_agents_noaug.hpo.storage import open_storage
from psy_agents_noaug.tracking import ensure_experiment

SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "batch_size": {"type": "categorical", "choices": [8, 16]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
}

# The spec's usage example 2, verbatim (mlflow-enhancement-guide.md, "HPO with Nested Runs").
USAGE_EXAMPLE_2 = """
from psy_agents_noaug.hpo.optuna_runner import OptunaRunner

runner = OptunaRunner(
    study_name="criteria_stage2",
    direction="maximize",
    metric="val_f1_macro",
)

def objective(trial, params):
    # Setup model with params
    model = create_model(params)
    trainer = Trainer(model, ...)
    
    # Train (will log to nested run)
    results = trainer.train()
    return results["best_val_f1_macro"]

# Optimize with parent run
runner.optimize(
    objective_fn=objective,
    n_trials=50,
    search_space=search_space,
    mlflow_tracking_uri="sqlite:///mlflow.db",
    mlflow_experiment_name="hpo_criteria",
)
"""  # noqa: W293 - the blank line with spaces is in the spec


@pytest.fixture()
def store(sqlite_store: str) -> str:
    """A fresh sqlite MLflow store (./mlflow.db) as the tracking URI, cwd = tmp_path."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return sqlite_store


def _runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags["mlflow.runName"].startswith("HPO_")]
    assert len(parents) == 1
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents[0], children


def _quiet_runner(name: str = "s", **kwargs: Any) -> OptunaRunner:
    kwargs.setdefault("sampler", "random")
    kwargs.setdefault("pruner", "none")
    kwargs.setdefault("seed", 0)
    return OptunaRunner(name, "maximize", "val_f1_macro", **kwargs)


def _optimize(runner: OptunaRunner, objective, n: int, uri: str, **kwargs: Any):
    return runner.optimize(
        objective,
        n,
        SPACE,
        mlflow_tracking_uri=uri,
        mlflow_experiment_name="hpo_test",
        show_progress_bar=False,
        print_summary=False,
        **kwargs,
    )


# ------------------------------------------------------------------ spec example + tree
class _StandInTrainer:
    """Plays the project's Trainer in the spec snippet: logs into the active run."""

    def __init__(self, model: dict[str, Any], *args: Any) -> None:
        self.model = model

    def train(self) -> dict[str, float]:
        from psy_agents_noaug.tracking import get_sink

        run = mlflow.active_run()
        assert run is not None
        sink = get_sink()
        score = 0.9 - abs(self.model["dropout"] - 0.1) - 0.02 * (self.model["batch_size"] == 8)
        for step in range(1, 4):
            sink.log_dict({"train/loss_step": 1.0 / step, "system/cpu_percent": 10.0}, step)
        sink.log_dict({"epoch/train_loss": 0.5, "epoch/val_f1_macro": score}, step=1)
        ckpt = Path(f"ckpt_{run.info.run_id}.pt")
        ckpt.write_bytes(b"weights")
        MlflowClient().log_artifact(run.info.run_id, str(ckpt), "checkpoints")
        sink.flush()
        return {"best_val_f1_macro": score}


def test_usage_example_2_runs_verbatim_and_builds_the_spec_tree(store: str, capsys) -> None:
    namespace: dict[str, Any] = {
        "create_model": lambda params: dict(params),
        "Trainer": _StandInTrainer,
        "search_space": SPACE,
    }
    exec(compile(USAGE_EXAMPLE_2, "usage_example_2", "exec"), namespace)
    runner = namespace["runner"]
    study = runner.study
    assert len(study.trials) == 50
    assert "best val_f1_macro" in capsys.readouterr().out  # the printed table

    # read the tree back from the store the snippet named (relative to cwd)
    uri = "sqlite:///mlflow.db"
    parent, children = _runs(uri, "hpo_criteria")
    client = MlflowClient(uri)
    assert parent.data.tags["mlflow.runName"] == "HPO_criteria_stage2"
    for name in ["best_val_f1_macro", "best_trial_number", "total_trials", "completed_trials"]:
        assert name in parent.data.metrics
    assert parent.data.metrics["pruned_trials"] == 0
    assert parent.data.metrics["failed_trials"] == 0
    assert parent.data.metrics["total_trials"] == 50
    assert parent.data.metrics["best_val_f1_macro"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best_trial_number"] == study.best_trial.number
    assert {"best_hpo/learning_rate", "best_hpo/batch_size", "best_hpo/dropout"} <= set(
        parent.data.params
    )
    assert parent.data.params["best_hpo/batch_size"] == str(study.best_params["batch_size"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"hpo_trials_history.csv", "hpo_optimization_history.html"} <= artifacts
    assert {"hpo_param_importances.html", "hpo_parallel_coordinate.html"} <= artifacts

    names = {c.data.tags["mlflow.runName"] for c in children}
    assert names == {f"trial_{n:04d}" for n in range(50)}
    assert {"trial_0001", "trial_0002"} <= names
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    child = next(c for c in children if c.data.tags["mlflow.runName"] == "trial_0001")
    assert child.data.metrics["trial/number"] == 1
    assert child.data.metrics["trial/val_f1_macro"] == pytest.approx(study.trials[1].value)
    assert {
        "train/loss_step",
        "epoch/train_loss",
        "epoch/val_f1_macro",
        "system/cpu_percent",
    } <= set(child.data.metrics)
    history = client.get_metric_history(child.info.run_id, "train/loss_step")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {"hpo/learning_rate", "hpo/batch_size", "hpo/dropout"} <= set(child.data.params)
    assert child.data.params["trial_number"] == "1"
    assert child.data.params["study_name"] == "criteria_stage2"
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["checkpoints"]


# ------------------------------------------------------------------ counts and outcomes
def test_parent_counts_equal_study_counts_with_failed_and_pruned_trials(store: str) -> None:
    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        if trial.number % 4 == 1:
            raise RuntimeError(f"boom in trial {trial.number}")
        if trial.number % 4 == 2:
            trial.report(0.1, step=1)
            raise optuna.TrialPruned("pruned by test")
        if trial.number == 7:
            return float("nan")
        return 1.0 - params["dropout"]

    runner = _quiet_runner()
    study = _optimize(runner, objective, 10, store)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 4  # 1, 5, 9 raise; 7 returns NaN
    assert states.count(TrialState.PRUNED) == 2
    assert states.count(TrialState.COMPLETE) == 4

    parent, children = _runs(store, "hpo_test")
    m = parent.data.metrics
    summary = summarize_study(study)
    assert (
        (m["total_trials"], m["completed_trials"], m["pruned_trials"], m["failed_trials"])
        == (
            summary.total,
            summary.completed,
            summary.pruned,
            summary.failed,
        )
        == (10, 4, 2, 4)
    )
    assert m["best_trial_number"] == study.best_trial.number
    by_number = {int(c.data.params["trial_number"]): c for c in children}
    assert by_number[1].info.status == "FAILED"
    assert by_number[1].data.tags["hpo.state"] == "FAIL"
    assert by_number[1].data.tags["hpo.error"] == "RuntimeError: boom in trial 1"
    assert "not a finite number" in by_number[7].data.tags["hpo.error"]
    assert by_number[2].info.status == "FINISHED"
    assert by_number[2].data.tags["hpo.state"] == "PRUNED"
    assert by_number[2].data.tags["hpo.pruned_at_epoch"] == "1"
    assert "trial/val_f1_macro" not in by_number[2].data.metrics
    assert by_number[0].data.tags["hpo.state"] == "COMPLETE"
    assert by_number[0].data.metrics["trial/val_f1_macro"] == pytest.approx(study.trials[0].value)

    client = MlflowClient(store)
    path = client.download_artifacts(parent.info.run_id, "hpo_trials_history.csv", ".")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == [s.name for s in states]
    assert {"number", "state", "value", "duration_seconds", "params_dropout"} <= set(rows[0])
    assert rows[1]["error"] == "RuntimeError: boom in trial 1"


def test_summary_is_readable_while_the_study_runs(store: str) -> None:
    seen: list[dict[str, float]] = []
    runner = _quiet_runner()

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        if trial.number == 3:
            client = MlflowClient(store)
            run = client.get_run(runner.parent_run_id)
            seen.append(dict(run.data.metrics))
            assert run.info.status == "RUNNING"
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert "hpo_trials_history.csv" in artifacts
        return params["dropout"]

    _optimize(runner, objective, 5, store)
    assert seen and seen[0]["completed_trials"] == 3 and seen[0]["total_trials"] == 3
    parent, _ = _runs(store, "hpo_test")
    assert parent.info.status == "FINISHED" and parent.data.metrics["completed_trials"] == 5
    history = MlflowClient(store).get_metric_history(parent.info.run_id, "completed_trials")
    assert sorted(m.value for m in history) == [1, 2, 3, 4, 5, 5]  # one per trial + final


def test_pruning_hook_stops_a_bad_trial_early(store: str) -> None:
    epochs_run: dict[int, int] = {}

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        report = make_pruning_callback(trial, "val_f1_macro")
        quality = 0.9 if trial.number < 2 else 0.1
        for epoch in range(1, 6):
            epochs_run[trial.number] = epoch
            report(epoch, {"val_f1_macro": quality, "val_loss": 1.0})
        return quality

    pruner = make_pruner("median", n_startup_trials=2)
    runner = _quiet_runner(pruner=pruner)
    study = _optimize(runner, objective, 3, store)
    assert study.trials[2].state == TrialState.PRUNED
    assert epochs_run == {0: 5, 1: 5, 2: 1}
    parent, children = _runs(store, "hpo_test")
    assert parent.data.metrics["pruned_trials"] == 1
    pruned = next(c for c in children if c.data.params["trial_number"] == "2")
    assert pruned.data.tags["hpo.state"] == "PRUNED"
    assert "pruned at epoch 1" in pruned.data.tags["hpo.error"]


def test_pruning_hook_names_a_missing_metric() -> None:
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(KeyError, match=r"val_f1_macro.*val_loss"):
        make_pruning_callback(trial, "val_f1_macro")(1, {"val_loss": 0.3})


def test_keyboard_interrupt_kills_the_trial_and_the_parent(store: str) -> None:
    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        if trial.number == 1:
            raise KeyboardInterrupt
        return 0.5

    runner = _quiet_runner()
    with pytest.raises(KeyboardInterrupt):
        _optimize(runner, objective, 5, store)
    assert mlflow.active_run() is None
    assert [t.state for t in runner.study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    parent, children = _runs(store, "hpo_test")
    assert parent.info.status == "KILLED"
    assert parent.data.metrics["failed_trials"] == 1
    killed = next(c for c in children if c.data.params["trial_number"] == "1")
    assert killed.info.status == "KILLED"


def test_objective_sees_its_child_as_the_active_run(store: str) -> None:
    active: list[str] = []

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        run = mlflow.active_run()
        assert run is not None
        active.append(run.data.tags.get("mlflow.runName") or run.info.run_name)
        return 0.0

    _optimize(_quiet_runner(), objective, 2, store)
    assert active == ["trial_0000", "trial_0001"]
    assert mlflow.active_run() is None


def test_without_mlflow_no_run_is_created(tmp_path: Path, store: str) -> None:
    runner = _quiet_runner()
    study = runner.optimize(
        lambda trial, p: p["dropout"],
        3,
        SPACE,
        log_to_mlflow=False,
        show_progress_bar=False,
        print_summary=False,
    )
    assert len(study.trials) == 3 and runner.parent_run_id is None
    assert MlflowClient(store).get_experiment_by_name("hpo_s") is None
    assert runner.best_value == pytest.approx(study.best_value)


def test_callbacks_run_and_can_stop_the_study(store: str) -> None:
    seen = []

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen.append(trial.number)
        if trial.number == 1:
            study.stop()

    study = _optimize(_quiet_runner(), lambda t, p: 1.0, 10, store, callbacks=[callback])
    assert seen == [0, 1] and len(study.trials) == 2


# ------------------------------------------------------------------ shared studies
def test_rerun_of_a_finished_study_adds_nothing_and_reuses_the_parent(
    tmp_path: Path, store: str
) -> None:
    storage = f"journal:{tmp_path / 'study.journal'}"
    calls = []

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        calls.append(trial.number)
        return params["dropout"]

    first = _quiet_runner(storage=storage)
    _optimize(first, objective, 3, store)
    second = _quiet_runner(storage=storage)
    _optimize(second, objective, 3, store)
    assert calls == [0, 1, 2]
    assert second.parent_run_id == first.parent_run_id
    third = _quiet_runner(storage=storage)
    _optimize(third, objective, 5, store)  # a bigger budget continues the same study
    assert calls == [0, 1, 2, 3, 4] and third.parent_run_id == first.parent_run_id
    parent, children = _runs(store, "hpo_test")
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["total_trials"] == 5 and len(children) == 5


def test_parent_run_is_created_once_when_workers_race(tmp_path: Path, store: str) -> None:
    handle = open_storage(f"journal:{tmp_path / 'race.journal'}", "race")
    study = optuna.create_study(study_name="race", storage=handle.storage)
    client = MlflowClient(store)
    experiment_id = ensure_experiment(client, "hpo_race")
    barrier = threading.Barrier(4)
    ids: list[str] = []

    def attach() -> None:
        worker_study = optuna.load_study(
            study_name="race",
            storage=open_storage(f"journal:{tmp_path / 'race.journal'}", "race").storage,
        )
        barrier.wait()
        ids.append(
            ParentRun.attach(
                worker_study, store, experiment_id, metric="m", lock=handle.lock
            ).run_id
        )

    threads = [threading.Thread(target=attach) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 4 and len(set(ids)) == 1
    assert study.user_attrs[PARENT_RUN_ATTR] == ids[0]
    assert len(client.search_runs([experiment_id])) == 1


def test_journal_heartbeat_fails_a_silent_trial_and_requeues_it(tmp_path: Path) -> None:
    from psy_agents_noaug.hpo.optuna_runner import _StaleTrialHandler

    handler = _StaleTrialHandler(max_retry=1)
    handle = open_storage(
        f"journal:{tmp_path / 'hb.journal'}", "hb", heartbeat_interval=1, grace_period=5
    )
    assert handle.file_heartbeats is not None
    study = optuna.create_study(study_name="hb", storage=handle.storage)
    alive, silent = study.ask(), study.ask()
    silent.suggest_float("x", 0, 1)
    alive_id = handle.trial_id(study, alive.number)
    silent_id = handle.trial_id(study, silent.number)
    handle.file_heartbeats.record(alive_id)
    handle.file_heartbeats.record(silent_id)
    beat = handle.file_heartbeats.folder / str(silent_id)
    old = beat.stat().st_mtime - 60
    os.utime(beat, (old, old))  # its worker stopped beating a minute ago

    handle.fail_stale_trials(study, handler)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    retry = study.get_trials()[2]
    assert retry.system_attrs["failed_trial"] == silent.number
    assert retry.params == {"x": study.get_trials()[1].params["x"]}
    assert [t.number for t in handler.drain()] == [silent.number]
    assert not beat.exists()  # failed trials drop their heartbeat file


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"type": "floaty", "low": 0, "high": 1}}, "search_space.lr.type must be one of"),
        ({"lr": {"type": "float", "low": 1}}, "search_space.lr .* needs 'high'"),
        ({"lr": {"type": "float", "low": 2, "high": 1}}, r"low \(2.0\) must be <= high"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log: true needs low > 0"),
        ({"lr": {"type": "float", "low": 1, "high": 2, "log": True, "step": 0.1}}, "step"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "choices": [1]}}, "unknown key"),
        ({"n": {"type": "int", "low": 0.5, "high": 3}}, "must be an integer"),
        ({"bs": {"type": "categorical", "choices": []}}, "non-empty list"),
        ({"bs": {"type": "categorical", "choices": [[1]]}}, "may hold only"),
        ({"bs": {"type": "categorical", "choices": [8, 8]}}, "duplicates"),
        ({"bs": [8, 16]}, "must be a mapping"),
        ([1, 2], "must be a mapping of parameter name"),
    ],
)
def test_bad_search_space_is_a_clear_value_error(space: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_search_space(space)


def test_search_space_samples_inside_its_bounds() -> None:
    space = {
        **SPACE,
        "layers": {"type": "int", "low": 1, "high": 7, "step": 2},
        "warmup": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        params = suggest_params(study.ask(), space)
        assert 1e-5 <= params["learning_rate"] <= 1e-4
        assert params["batch_size"] in (8, 16)
        assert params["layers"] in (1, 3, 5, 7)
        assert round(params["warmup"] / 0.05, 6).is_integer()
    assert parse_search_space(None) == {}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("tpe", "TPESampler"), ("random", "RandomSampler"), ("TPE", "TPESampler")],
)
def test_sampler_names(name: str, kind: str) -> None:
    assert type(make_sampler(name, seed=0)).__name__ == kind


def test_grid_sampler_needs_a_finite_space() -> None:
    grid = make_sampler("grid", search_space={"seed": {"type": "categorical", "choices": [1, 2]}})
    assert isinstance(grid, optuna.samplers.GridSampler)
    with pytest.raises(ValueError, match=r"search_space\.learning_rate is a continuous float"):
        make_sampler("grid", search_space=SPACE)


def test_cmaes_sampler_or_install_hint() -> None:
    try:
        import cmaes  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install cmaes"):
            make_sampler("cmaes")
    else:
        assert type(make_sampler("cmaes", search_space=SPACE)).__name__ == "CmaEsSampler"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("median", "MedianPruner"), ("hyperband", "HyperbandPruner"), ("none", "NopPruner")],
)
def test_pruner_names(name: str, kind: str) -> None:
    assert type(make_pruner(name)).__name__ == kind


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampler": "bayes"}, "unknown sampler 'bayes'; choose one of tpe, random, cmaes, grid"),
        ({"pruner": "asha"}, "unknown pruner 'asha'; choose one of median, hyperband, none"),
        ({"direction": "up"}, "direction must be one of maximize, minimize"),
        ({"study_name": ""}, "study_name must be a non-empty string"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be > 0"),
        ({"storage": "optuna.db"}, "neither 'journal:<path>' nor a database URL"),
    ],
)
def test_bad_runner_options_are_clear_value_errors(kwargs: dict[str, Any], message: str) -> None:
    args = {"study_name": "s", "direction": "maximize", "metric": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        runner = OptunaRunner(**args)
        runner.optimize(lambda t, p: 0.0, 1, log_to_mlflow=False, show_progress_bar=False)


@pytest.mark.parametrize(
    ("n_trials", "timeout", "message"),
    [
        (0, None, "n_trials must be an integer >= 1"),
        (None, None, "give n_trials, timeout"),
        (2, -1, "timeout must be"),
    ],
)
def test_bad_optimize_arguments(n_trials: Any, timeout: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _quiet_runner().optimize(lambda t, p: 0.0, n_trials, timeout=timeout, log_to_mlflow=False)


def test_stored_study_with_the_other_direction_is_refused(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'dir.journal'}"
    optuna.create_study(
        study_name="d", storage=open_storage(storage, "d").storage, direction="minimize"
    )
    with pytest.raises(ValueError, match="created to minimize, not maximize"):
        _quiet_runner("d", storage=storage).optimize(lambda t, p: 0.0, 1, log_to_mlflow=False)


def test_top_trials_table_orders_by_the_objective() -> None:
    study = optuna.create_study(direction="minimize")
    for value in (0.3, 0.1, 0.2):
        study.add_trial(
            optuna.create_trial(
                value=value,
                params={"x": value},
                distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            )
        )
    text = format_top_trials(study, "val_loss", k=2)
    lines = text.splitlines()
    assert lines[0].startswith("Study") and "3 complete" in lines[0]
    assert "best val_loss = 0.1 (trial 1)" in lines[1]
    assert [line.split()[1] for line in lines[3:]] == ["1", "2"]  # trial numbers, best first


def test_best_params_load_from_storage_and_from_the_parent_run(tmp_path: Path, store: str) -> None:
    storage = f"journal:{tmp_path / 'best.journal'}"
    runner = _quiet_runner("best", storage=storage)
    _optimize(runner, lambda t, p: p["dropout"], 4, store)
    expected = runner.study.best_params
    assert load_best_params("best", storage=storage) == expected
    from_mlflow = load_best_params("best", tracking_uri=store, experiment_name="hpo_test")
    assert from_mlflow == expected
    with pytest.raises(ValueError, match="no parent run HPO_nope"):
        load_best_params("nope", tracking_uri=store, experiment_name="hpo_test")
