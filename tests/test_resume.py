"""`resume_from=`: a run continues where its checkpoint left off; and the UI links it prints.

A Trainer resumed from a checkpoint taken with ``save_optimizer=True`` carries on at the
next epoch with the step count, the optimizer's and the scheduler's state, and the best
value early stopping compares with; `psy-agents train resume_from=<run id>` does the same
end to end into a new run tagged with the one it continues. The one-time warning about
intervals longer than the run sits here too: it is about what a run will (not) log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from psy_agents_noaug.tracking import tags
from psy_agents_noaug.tracking.links import experiment_link, run_link
from psy_agents_noaug.training.checkpoints import CHECKPOINT_NAME, load_checkpoint
from psy_agents_noaug.training.tasks import CriteriaTask
from psy_agents_noaug.training.train_loop import Trainer
from tests.toy import toy_criteria_setup

CRITERIA = tuple(f"A.{i}" for i in range(1, 10))


def _trainer(save_dir: Path, num_epochs: int, **kwargs) -> Trainer:  # type: ignore[no-untyped-def]
    model, train_loader, val_loader, optimizer, criterion = toy_criteria_setup()
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.1, total_iters=60)
    return Trainer(
        model, train_loader, val_loader, optimizer, criterion, "cpu",
        num_epochs=num_epochs, scheduler=scheduler, save_dir=save_dir, track=False,
        task=CriteriaTask(CRITERIA), **kwargs,
    )  # fmt: skip


def test_a_resumed_trainer_goes_on_where_the_checkpoint_left_off(tmp_path: Path) -> None:
    first = _trainer(tmp_path / "a", num_epochs=1, save_optimizer=True)
    first.train()
    checkpoint = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    assert {"optimizer_state_dict", "scheduler_state_dict", "val_metrics"} <= checkpoint.keys()

    second = _trainer(tmp_path / "b", num_epochs=3)
    second.resume(checkpoint)
    results = second.train()

    steps_per_epoch = first.global_step
    assert [h["epoch"] for h in second.history] == [2, 3]
    assert results["total_steps"] == 3 * steps_per_epoch
    # The scheduler went on from the checkpoint's step, not from the start.
    assert second.scheduler.last_epoch == 3 * steps_per_epoch
    # The learning rate is the decayed one, not the initial 0.5.
    assert second.optimizer.param_groups[0]["lr"] < 0.5
    assert second.early_stopping.best >= checkpoint["best_metric"]
    assert results["best_epoch"] >= 1
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == results["best_epoch"]


def test_a_checkpoint_without_optimizer_state_resumes_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _trainer(tmp_path / "a", num_epochs=1).train()
    checkpoint = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    assert "optimizer_state_dict" not in checkpoint
    second = _trainer(tmp_path / "b", num_epochs=2)
    with caplog.at_level(logging.WARNING):
        second.resume(checkpoint)
    assert "resuming with a fresh optimizer" in caplog.text
    assert second.scheduler.last_epoch == checkpoint["global_step"]  # moved on, not reset


def test_resuming_at_or_past_num_epochs_is_refused(tmp_path: Path) -> None:
    _trainer(tmp_path / "a", num_epochs=2).train()
    checkpoint = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match=r"set training\.num_epochs above"):
        _trainer(tmp_path / "b", num_epochs=checkpoint["epoch"]).resume(checkpoint)


def _train(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", *args])
    return code, out.getvalue(), err.getvalue()


def _run_id(out: str) -> str:
    line = next(li for li in out.splitlines() if li.startswith("run id"))
    return line.split(":", 1)[1].split()[0]


@pytest.mark.slow
def test_train_resume_from_a_run_continues_it_in_a_new_linked_run(
    tiny_overrides: list[str], tracking_uri: str
) -> None:
    base = [o for o in tiny_overrides if not o.startswith("training.num_epochs")]
    code, out, _ = _train([*base, "training.num_epochs=1", "training.save_optimizer=true"])
    assert code == 0
    first = _run_id(out)

    code, out, err = _train([*base, "training.num_epochs=2", f"resume_from={first}"])
    assert code == 0, err
    second = _run_id(out)
    client = MlflowClient(tracking_uri)
    run = client.get_run(second)
    assert run.data.tags[tags.RESUMED_FROM] == first
    assert f"Resumed from {first}" in run.data.tags[tags.DESCRIPTION]
    epochs = [m.step for m in client.get_metric_history(second, "epoch/val_f1_macro")]
    assert epochs == [2]
    first_steps = client.get_run(first).data.metrics["final/total_steps"]
    assert run.data.metrics["final/total_steps"] == 2 * first_steps
    steps = [m.step for m in client.get_metric_history(second, "train/loss_step")]
    assert min(steps) == first_steps + 1
    experiment_id = run.info.experiment_id
    assert f"open              : {run_link(tracking_uri, experiment_id, second)}" in out


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("not-a-run", "'not-a-run' is neither a checkpoint file nor a run id"),
        ("0" * 32, f"no run '{'0' * 32}' in this tracking store"),
    ],
)
def test_resume_from_nothing_is_one_line_and_no_run(
    tiny_overrides: list[str], tracking_uri: str, source: str, message: str
) -> None:
    code, _, err = _train([*tiny_overrides, f"resume_from={source}"])
    assert code == 2
    assert err.strip().startswith("error: ") and message in err
    assert "Traceback" not in err
    client = MlflowClient(tracking_uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_ui_links_open_the_model_training_view_without_credentials() -> None:
    assert experiment_link("http://u:secret@host:5000/", "7") == (
        "http://host:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert run_link("sqlite:///mlflow.db", "1", "abc") == (
        "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    )


def test_an_interval_longer_than_the_run_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sqlite_store: str
) -> None:
    model, train_loader, val_loader, optimizer, criterion = toy_criteria_setup(n_train=16)
    total = 2 * math.ceil(len(train_loader))
    trainer = Trainer(
        model, train_loader, val_loader, optimizer, criterion, "cpu", num_epochs=2,
        logging_steps=total + 1, log_system_metrics=True, system_metrics_interval=total + 5,
        task=CriteriaTask(CRITERIA), save_dir=tmp_path,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="psy_agents_noaug.training.train_loop"):
        trainer.train()
    warned = [r.getMessage() for r in caplog.records if "larger than this run" in r.getMessage()]
    assert len(warned) == 2
    assert warned[0].startswith(f"logging_steps={total + 1} is larger than this run's {total}")
    assert warned[1].startswith(f"system_metrics_interval={total + 5}")
