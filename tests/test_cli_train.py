"""`psy-agents train` end to end on a real sqlite store: the spec's training run tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main

SPEC_TRAINING_METRICS = {
    "train/loss_step": "step",
    "train/accuracy_step": "step",
    "train/learning_rate": "step",
    "train/batch_time_seconds": "step",
    "epoch/train_loss": "epoch",
    "epoch/train_accuracy": "epoch",
    "epoch/val_loss": "epoch",
    "epoch/val_f1_macro": "epoch",
    "epoch/duration_seconds": "epoch",
    "system/cpu_percent": "step",
    "system/memory_used_gb": "step",
    "final/best_val_f1_macro": "final",
    "final/total_epochs": "final",
    "final/total_steps": "final",
}


def _only_run(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_train_builds_the_spec_run_tree(
    tiny_overrides: list[str], tracking_uri: str, capsys
) -> None:
    assert main(["train", "task=criteria", *tiny_overrides]) == 0
    out = capsys.readouterr().out
    assert "best val macro F1" in out and "mlflow ui --backend-store-uri" in out
    client, run = _only_run(tracking_uri, "training_criteria")
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("criteria_tiny_")
    total_steps = int(run.data.metrics["final/total_steps"])
    for key, indexing in SPEC_TRAINING_METRICS.items():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps, key
        if indexing == "epoch":
            assert sorted(steps) == [1, 2], key
        elif indexing == "step" and key.startswith("train/"):
            assert sorted(steps) == list(range(1, total_steps + 1)), key
        elif indexing == "step":
            assert sorted(steps) == list(range(5, total_steps + 1, 5)), key
    for param in ("model.encoder_name", "training.batch_size", "training.optimizer.lr"):
        assert param in run.data.params
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints", "model"} <= top
    ckpt = [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert ckpt == ["checkpoints/best_checkpoint.pt"]

    # `evaluate` scores that run's checkpoint on the test split and logs it into the run.
    assert main(["evaluate", f"run_id={run.info.run_id}", *tiny_overrides]) == 0
    assert "test macro F1" in capsys.readouterr().out
    metrics = client.get_run(run.info.run_id).data.metrics
    assert 0.0 <= metrics["test/f1_macro"] <= 1.0
    assert {f"test/f1_A.{i}" for i in range(1, 10)} <= set(metrics)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "training.num_epochs=-1"], "training.num_epochs=-1"),
        (["train", "model=nope"], "unknown model 'nope'"),
        (["train", "training.lr=1"], "unknown config key 'training.lr'"),
        (["train", "model.encoder_name=roberta-large-does-not-exist"], "cannot load encoder"),
        (["train", "mlflow.tracking_uri=http://127.0.0.1:9"], "cannot reach the tracking server"),
        (["fly"], "unknown command 'fly'"),
        (["train", "oops"], "is not key=value"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_no_run(
    args: list[str], message: str, tracking_uri: str, small_data, capsys
) -> None:
    posts, ann = small_data
    extra = [] if args == ["fly"] else [f"data.posts_path={posts}", f"data.annotations_path={ann}"]
    if not any(a.startswith("mlflow.tracking_uri") for a in args) and args != ["fly"]:
        extra.append(f"mlflow.tracking_uri={tracking_uri}")
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1
    exp = MlflowClient(tracking_uri).get_experiment_by_name("training_criteria")
    assert exp is None or not MlflowClient(tracking_uri).search_runs([exp.experiment_id])


def test_malformed_data_is_a_clear_error(tmp_path: Path, tracking_uri: str, capsys) -> None:
    posts = tmp_path / "posts.csv"
    posts.write_text("post_id,body\n1,hello\n")
    ann = tmp_path / "ann.csv"
    ann.write_text("post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n")
    code = main(
        [
            "train",
            "model=tiny",
            f"data.posts_path={posts}",
            f"data.annotations_path={ann}",
            f"mlflow.tracking_uri={tracking_uri}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "text" in err and err.count("\n") == 1


def test_module_entry_point_works_from_any_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "psy_agents_noaug.cli", "train", "training.num_epochs=0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "bad value training.num_epochs=0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
