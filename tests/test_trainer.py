"""The Trainer against a real sqlite store: names, indexing, counts, statuses.

The Trainer is generic (any model, loader and ``nn.CrossEntropyLoss``: the spec's usage
example and migration guide run unchanged); with ``task=CriteriaTask`` it scores nine
yes/no criteria per example, tunes a threshold per criterion on the validation split and
keeps those thresholds with the best checkpoint.
"""

from __future__ import annotations

import math
import os
import signal

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score, f1_score

from psy_agents_noaug.training.metrics import THRESHOLD_GRID, THRESHOLD_TOLERANCE, tune_thresholds
from psy_agents_noaug.training.tasks import CriteriaTask
from psy_agents_noaug.training.train_loop import StopReason, Trainer
from tests.toy import ToyCriteriaModel, toy_criteria_setup, toy_setup

CRITERIA = tuple(f"A.{i}" for i in range(1, 10))

STEP_KEYS = (
    "train/loss_step",
    "train/accuracy_step",
    "train/learning_rate",
    "train/batch_time_seconds",
)
EPOCH_KEYS = (
    "epoch/train_loss",
    "epoch/train_accuracy",
    "epoch/val_loss",
    "epoch/val_accuracy",
    "epoch/val_f1_macro",
    "epoch/val_precision_macro",
    "epoch/val_recall_macro",
    "epoch/val_auroc",
    "epoch/duration_seconds",
)
FINAL_KEYS = (
    "final/best_val_f1_macro",
    "final/best_epoch",
    "final/total_epochs",
    "final/total_steps",
    "final/early_stopped",
)


CRITERIA_EPOCH_KEYS = (
    *EPOCH_KEYS,
    "epoch/val_f1_micro",
    "epoch/val_auprc_macro",
    *(f"epoch/val_f1_{c}" for c in CRITERIA),
    *(f"epoch/val_auprc_{c}" for c in CRITERIA),
)


@pytest.fixture
def tracking_uri(sqlite_store: str) -> str:
    """A fresh sqlite store per test, copied from a ready-made schema (no migrations)."""
    return sqlite_store


def _steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_spec_usage_example_1_logs_every_spec_name(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    device = "cpu"
    trainer = Trainer(
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        optimizer=optimizer,
        criterion=criterion,
        device=device,
        num_epochs=2,
        logging_steps=5,
        log_system_metrics=True,
        system_metrics_interval=4,
    )
    with mlflow.start_run(run_name="criteria_training") as run:
        results = trainer.train()
    run_id = run.info.run_id
    assert results["best_val_f1_macro"] > 0.8
    assert results["total_steps"] == 24
    assert results["stop_reason"] == StopReason.COMPLETED and not results["early_stopped"]
    assert results["thresholds"] is None  # single-label softmax: argmax, no thresholds
    for key in STEP_KEYS:
        assert _steps(tracking_uri, run_id, key) == [5, 10, 15, 20], key
    for key in EPOCH_KEYS:
        assert _steps(tracking_uri, run_id, key) == [1, 2], key
    for key in FINAL_KEYS:
        assert len(_steps(tracking_uri, run_id, key)) == 1, key
    assert _steps(tracking_uri, run_id, "system/cpu_percent") == [4, 8, 12, 16, 20, 24]
    assert _steps(tracking_uri, run_id, "system/memory_used_gb") == [4, 8, 12, 16, 20, 24]
    artifacts = [f.path for f in MlflowClient(tracking_uri).list_artifacts(run_id, "checkpoints")]
    assert artifacts == ["checkpoints/best_checkpoint.pt"]
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/early_stopped"] == 0.0


def test_migration_guide_before_and_after(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    device = "cpu"
    # Before:
    trainer = Trainer(model, train_loader, val_loader, optimizer, criterion, device)
    before = trainer.train()
    # After:
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        device,
        logging_steps=100,
        log_system_metrics=True,
    )
    after = trainer.train()
    client = MlflowClient(tracking_uri)
    for results in (before, after):
        run = client.get_run(results["run_id"])  # the Trainer started and ended its own run
        assert run.info.status == "FINISHED"
        assert "epoch/val_f1_macro" in run.data.metrics
    assert before["total_epochs"] == 10


def test_every_step_logged_with_logging_steps_1(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup(n_train=80)
    with mlflow.start_run() as run:
        Trainer(
            model,
            train_loader,
            val_loader,
            optimizer,
            criterion,
            "cpu",
            num_epochs=3,
            logging_steps=1,
        ).train()
    assert _steps(tracking_uri, run.info.run_id, "train/loss_step") == list(range(1, 31))


def test_nan_loss_stops_training_and_marks_early_stopped(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, _ = toy_setup()
    calls = {"n": 0}

    def exploding(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        calls["n"] += torch.is_grad_enabled()  # count training calls only
        loss = torch.nn.functional.cross_entropy(logits, labels)
        return loss * float("nan") if calls["n"] >= 16 else loss

    trainer = Trainer(
        model, train_loader, val_loader, optimizer, exploding, "cpu", num_epochs=3, logging_steps=1
    )
    results = trainer.train()
    assert results["stop_reason"] == "non_finite_loss"
    assert "loss became nan at step 16" in results["message"]
    run = MlflowClient(tracking_uri).get_run(results["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.metrics["final/early_stopped"] == 1.0
    assert run.data.metrics["final/total_epochs"] == 1.0
    assert _steps(tracking_uri, results["run_id"], "train/loss_step") == list(range(1, 16))


class _Boom(RuntimeError):
    pass


def _model_failing_at(model: torch.nn.Module, call: int, exc: BaseException) -> torch.nn.Module:
    forward = model.forward
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise exc
        return forward(*args, **kwargs)

    model.forward = failing  # type: ignore[method-assign]
    return model


@pytest.mark.parametrize(
    ("exc", "status"),
    [(KeyboardInterrupt(), "KILLED"), (_Boom("disk on fire"), "FAILED")],
)
def test_interruption_and_failure_statuses_keep_metrics(
    tracking_uri: str, exc: BaseException, status: str
) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    model = _model_failing_at(model, 8, exc)
    trainer = Trainer(
        model, train_loader, val_loader, optimizer, criterion, "cpu", num_epochs=2, logging_steps=1
    )
    with pytest.raises(type(exc)):
        trainer.train()
    run = MlflowClient(tracking_uri).get_run(trainer.run_id)
    assert run.info.status == status
    assert _steps(tracking_uri, trainer.run_id, "train/loss_step") == list(range(1, 8))
    assert mlflow.active_run() is None


def test_sigterm_ends_the_run_killed(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    forward = model.forward
    calls = {"n": 0}

    def terminate_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the training (main) thread
        return forward(*args, **kwargs)

    model.forward = terminate_on_fifth  # type: ignore[method-assign]
    previous = signal.getsignal(signal.SIGTERM)
    trainer = Trainer(
        model, train_loader, val_loader, optimizer, criterion, "cpu", num_epochs=2, logging_steps=1
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert MlflowClient(tracking_uri).get_run(trainer.run_id).info.status == "KILLED"
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored


def test_callback_exception_propagates_and_caller_run_stays_active(tracking_uri: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()

    class Pruned(Exception):
        pass

    def prune_after_first(epoch: int, metrics: dict[str, float]) -> None:
        assert "val_f1_macro" in metrics
        raise Pruned

    with mlflow.start_run() as run:
        with pytest.raises(Pruned):
            Trainer(
                model,
                train_loader,
                val_loader,
                optimizer,
                criterion,
                "cpu",
                num_epochs=3,
                epoch_end_callback=prune_after_first,
            ).train()
        assert mlflow.active_run().info.run_id == run.info.run_id
    assert _steps(tracking_uri, run.info.run_id, "epoch/val_f1_macro") == [1]


def test_early_stopping_and_checkpoint_contents(tracking_uri: str, tmp_path) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        "cpu",
        num_epochs=20,
        early_stopping_patience=1,
        early_stopping_metric="val_loss",
        early_stopping_mode="min",
        save_dir=tmp_path / "ckpt",
        config={"model": {"name": "toy"}},
        track=False,
    )
    results = trainer.train()
    assert results["early_stopped"] and results["total_epochs"] < 20
    assert results["stop_reason"] == StopReason.EARLY_STOPPING
    state = torch.load(tmp_path / "ckpt" / "best_checkpoint.pt", weights_only=True)
    assert state["epoch"] == results["best_epoch"]
    assert state["config"] == {"model": {"name": "toy"}}
    assert not math.isnan(state["best_metric"])
    assert state["metric_name"] == "val_loss"
    assert "optimizer_state_dict" not in state  # only with save_optimizer=True
    assert "thresholds" not in state  # single-label classification has none


@pytest.mark.parametrize("save_optimizer", [False, True])
def test_checkpoint_has_the_optimizer_state_only_when_asked(tmp_path, save_optimizer: bool) -> None:
    model, train_loader, val_loader, _, criterion = toy_setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        "cpu",
        num_epochs=1,
        save_dir=tmp_path,
        track=False,
        save_optimizer=save_optimizer,
    ).train()
    state = torch.load(tmp_path / "best_checkpoint.pt", weights_only=True)
    assert ("optimizer_state_dict" in state) is save_optimizer
    if save_optimizer:  # enough to resume: Adam's moments for every parameter
        resumed = torch.optim.AdamW(model.parameters(), lr=1e-2)
        resumed.load_state_dict(state["optimizer_state_dict"])
        assert len(resumed.state) == len(list(model.parameters()))


@pytest.mark.parametrize(
    ("num_epochs", "epochs_run", "reason"),
    [
        (2, 2, StopReason.COMPLETED),  # patience runs out in the last epoch: all epochs ran
        (3, 2, StopReason.EARLY_STOPPING),  # patience ends training before num_epochs
    ],
)
def test_early_stopped_only_when_patience_ends_training_before_num_epochs(
    tracking_uri: str, num_epochs: int, epochs_run: int, reason: StopReason
) -> None:
    model, train_loader, val_loader, _, criterion = toy_setup()
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the same F1 every epoch
    results = Trainer(
        model,
        train_loader,
        val_loader,
        frozen,
        criterion,
        "cpu",
        num_epochs=num_epochs,
        early_stopping_patience=1,
    ).train()
    assert results["stop_reason"] == reason
    assert results["early_stopped"] is (reason == StopReason.EARLY_STOPPING)
    assert results["total_epochs"] == epochs_run and results["best_epoch"] == 1
    run = MlflowClient(tracking_uri).get_run(results["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/early_stopped"] == float(reason == StopReason.EARLY_STOPPING)
    assert run.data.metrics["final/total_epochs"] == epochs_run
    assert _steps(tracking_uri, results["run_id"], "epoch/val_f1_macro") == list(
        range(1, epochs_run + 1)
    )


def test_thresholds_nearly_as_good_as_the_best_go_to_the_one_nearest_half() -> None:
    """A synthetic validation split is flat over a range of thresholds and its exact best
    sits at an edge; within the tolerance, the threshold nearest 0.5 wins."""
    y = np.array([[1], [1], [1], [0], [0], [0], [0], [0], [0], [0]])
    p = np.array([[0.9], [0.8], [0.12], [0.09], [0.07], [0.06], [0.05], [0.02], [0.01], [0.0]])
    assert tune_thresholds(y, p, tolerance=0.0) == [0.1]  # all three found: F1 1.0
    assert tune_thresholds(y, p, tolerance=0.25) == [0.5]  # two of three: F1 0.8
    assert tune_thresholds(y, p) == tune_thresholds(y, p, tolerance=THRESHOLD_TOLERANCE)
    assert tune_thresholds(np.zeros((3, 1)), np.full((3, 1), 0.9)) == [0.5]  # no positive


def test_criteria_task_scores_each_criterion_with_its_own_tuned_threshold(
    tracking_uri: str, tmp_path
) -> None:
    """Nine sigmoid scores per example: per-criterion F1/AUPRC at thresholds tuned on the
    validation split, their macro means, and the thresholds kept with the best checkpoint."""
    model, train_loader, val_loader, optimizer, criterion = toy_criteria_setup()
    with mlflow.start_run() as run:
        results = Trainer(
            model,
            train_loader,
            val_loader,
            optimizer,
            criterion,
            "cpu",
            num_epochs=2,
            logging_steps=5,
            save_dir=tmp_path,
            task=CriteriaTask(CRITERIA),
        ).train()
    run_id = run.info.run_id
    for key in CRITERIA_EPOCH_KEYS:
        assert _steps(tracking_uri, run_id, key) == [1, 2], key
    metrics = MlflowClient(tracking_uri).get_run(run_id).data.metrics
    best = {k.removeprefix("final/best_"): v for k, v in metrics.items() if "/best_val_" in k}
    assert {f"val_f1_{c}" for c in CRITERIA} | {f"val_auprc_{c}" for c in CRITERIA} <= set(best)
    assert best == pytest.approx(results["best_metrics"], nan_ok=True)
    assert best["val_f1_macro"] == pytest.approx(np.mean([best[f"val_f1_{c}"] for c in CRITERIA]))
    assert best["val_f1_macro"] > 0.6  # separable criteria: learned in two epochs
    assert 0.0 <= metrics["train/accuracy_step"] <= 1.0  # per decision, not per example

    thresholds = results["thresholds"]
    assert list(thresholds) == list(CRITERIA)
    assert set(thresholds.values()) <= set(THRESHOLD_GRID)
    state = torch.load(tmp_path / "best_checkpoint.pt", weights_only=True)
    assert state["thresholds"] == thresholds
    assert state["epoch"] == results["best_epoch"]
    assert "optimizer_state_dict" not in state

    # Recompute from the checkpoint alone: the logged F1 of each criterion is its binary F1
    # at its threshold: the grid threshold nearest 0.5 within the tolerance of the best F1.
    restored = ToyCriteriaModel()
    restored.load_state_dict(state["model_state_dict"])
    with torch.no_grad():
        probs = torch.sigmoid(restored(val_loader.dataset.x)).numpy()
    truth = val_loader.dataset.y.numpy() >= 0.5
    for column, name in enumerate(CRITERIA):
        y, p = truth[:, column], probs[:, column]
        f1 = f1_score(y, p >= thresholds[name], zero_division=0)
        assert best[f"val_f1_{name}"] == pytest.approx(f1), name
        scores = {t: f1_score(y, p >= t, zero_division=0) for t in THRESHOLD_GRID}
        near = [t for t, s in scores.items() if s >= max(scores.values()) - THRESHOLD_TOLERANCE]
        assert abs(thresholds[name] - 0.5) == min(abs(t - 0.5) for t in near), name
        assert best[f"val_auprc_{name}"] == pytest.approx(average_precision_score(y, p)), name
    decided = probs >= np.array([thresholds[c] for c in CRITERIA])
    assert best["val_f1_micro"] == pytest.approx(f1_score(truth.ravel(), decided.ravel()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_epochs": 0}, "num_epochs"),
        ({"logging_steps": -1}, "logging_steps"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"early_stopping_metric": "f1"}, "val_"),
    ],
)
def test_bad_arguments_fail_early(kwargs: dict, message: str) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_setup()
    with pytest.raises(ValueError, match=message):
        Trainer(model, train_loader, val_loader, optimizer, criterion, "cpu", **kwargs)
