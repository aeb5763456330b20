"""The Trainer against a real sqlite store: names, indexing, counts, statuses."""

from __future__ import annotations

import math
import os
import signal

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from psy_agents_noaug.training.train_loop import Trainer
from tests.toy import toy_setup

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
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "FINISHED"


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
    state = torch.load(tmp_path / "ckpt" / "best_checkpoint.pt", weights_only=True)
    assert state["epoch"] == results["best_epoch"]
    assert state["config"] == {"model": {"name": "toy"}}
    assert not math.isnan(state["best_metric"])


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
