"""torchrun DDP on CPU (gloo, 2 processes): one MLflow run, global validation metrics.

Validation metrics come from every rank's predictions, so under torchrun they equal the
single-process ones: for the nine criteria too, whose thresholds are tuned on the gathered
predictions of the whole split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from psy_agents_noaug.training.distributed import DistContext, ShardSampler
from psy_agents_noaug.training.tasks import CriteriaTask
from psy_agents_noaug.training.train_loop import Trainer
from tests.toy import ToyCriteriaDataset, ToyCriteriaModel, ToyDataset, ToyModel

CRITERIA = tuple(f"A.{i}" for i in range(1, 10))


def test_shards_cover_every_item_exactly_once() -> None:
    shards = [list(ShardSampler(11, DistContext(rank=r, world_size=3))) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))


@pytest.mark.slow
def test_torchrun_two_processes_make_one_run(small_data, tmp_path: Path) -> None:
    posts, ann = small_data
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [
            torchrun,
            "--nproc_per_node=2",
            "-m",
            "psy_agents_noaug.cli",
            "train",
            "model=tiny",
            "device=cpu",
            "model.max_length=64",
            "training.num_epochs=2",
            "progress=false",
            f"data.posts_path={posts}",
            f"data.annotations_path={ann}",
            f"mlflow.tracking_uri={uri}",
            "training.logging_steps=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PSY_AGENTS_JOURNAL_DIR": str(tmp_path / "journal")},
    )
    assert result.returncode == 0, result.stderr[:3000] + "\n…\n" + result.stderr[-1500:]
    assert result.stdout.count("best val macro F1") == 1  # rank 0 reports for the job
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("training_criteria")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["world_size"] == "2"
    steps = int(run.data.metrics["final/total_steps"])
    history = client.get_metric_history(run.info.run_id, "train/loss_step")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))  # no rank doubled it
    assert len(client.get_metric_history(run.info.run_id, "epoch/val_f1_macro")) == 2
    for name in CRITERIA:  # rank 0 logs every criterion once per epoch
        assert len(client.get_metric_history(run.info.run_id, f"epoch/val_f1_{name}")) == 2
        assert f"final/best_val_auprc_{name}" in run.data.metrics
    # The windowing statistics are the whole split's (40 posts: 28 train, 6 val), not a shard's.
    assert (run.data.params["data/train/posts"], run.data.params["data/val/posts"]) == ("28", "6")
    assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")] == [
        "checkpoints/best_checkpoint.pt"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "checkpoints/best_checkpoint.pt", tmp)
        state = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state["thresholds"]) == list(CRITERIA)
    assert "optimizer_state_dict" not in state
    assert not any(k.startswith("module.") for k in state["model_state_dict"])  # unwrapped


def test_worker_exit_runs_exit_handlers_and_keeps_the_code(tmp_path: Path) -> None:
    """torchrun workers skip finalization (gloo threads abort it) but not atexit or output."""
    marker = tmp_path / "handler-ran"
    script = (
        "import atexit, sys\n"
        "from psy_agents_noaug.training.distributed import exit_without_finalizing\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "sys.stdout.write('unflushed line')\n"
        "exit_without_finalizing(3)\n"
        "print('never reached')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3
    assert out.stdout == "unflushed line"
    assert marker.read_text() == "yes"


def test_evaluate_gathers_predictions_from_every_rank(tmp_path: Path) -> None:
    """Two gloo ranks evaluating disjoint shards report the single-process metrics."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [torchrun, "--nproc_per_node=2", str(root / "tests" / "ddp_eval_script.py")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr[-2000:]

    report = json.loads(out.stdout.strip().splitlines()[-1])
    ddp = report["classification"]
    torch.manual_seed(0)
    single = _evaluate(ToyModel(), ToyDataset(45, seed=3), torch.nn.CrossEntropyLoss())
    for key in ("val_f1_macro", "val_accuracy", "val_auroc"):
        assert abs(ddp[key] - single[key]) < 1e-9, key
    assert abs(ddp["val_loss"] - single["val_loss"]) < 1e-5

    # Nine criteria: the thresholds and every metric as one process would have them.
    torch.manual_seed(0)
    task = CriteriaTask(CRITERIA)
    single = _evaluate(
        ToyCriteriaModel(), ToyCriteriaDataset(45, seed=3), torch.nn.BCEWithLogitsLoss(), task
    )
    ddp = report["criteria"]
    assert report["thresholds"] == task.thresholds
    assert set(ddp) == set(single)
    assert {f"val_f1_{c}" for c in CRITERIA} | {f"val_auprc_{c}" for c in CRITERIA} <= set(ddp)
    for key in sorted(single):
        tolerance = 1e-5 if key == "val_loss" else 1e-9
        assert ddp[key] == pytest.approx(single[key], abs=tolerance, nan_ok=True), key


def _evaluate(model, dataset, criterion, task=None) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    return Trainer(
        model,
        loader,
        loader,
        torch.optim.SGD(model.parameters(), lr=0.1),
        criterion,
        "cpu",
        track=False,
        task=task,
    ).evaluate()
