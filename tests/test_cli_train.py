"""`psy-agents train` end to end on a real sqlite store: the spec's training run tree.

The criteria model reads whole posts and scores nine criteria per post, so the run also
has a metric per criterion (``epoch/val_f1_A.1`` … ``A.9``, AUPRC likewise), the
windowing statistics of each split as ``data/<split>/*`` params, and a best checkpoint
that carries the nine decision thresholds (and no optimizer state unless asked).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus

from psy_agents_noaug.cli import main
from psy_agents_noaug.data.posts import CRITERION_IDS
from psy_agents_noaug.training.metrics import THRESHOLD_GRID
from tests.tiny import tiny_overrides

CRITERIA = tuple(f"A.{i}" for i in range(1, 10))
SYSTEM_INTERVAL = 2

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
#: What the criteria run adds: overall scores and one F1 and one AUPRC per criterion.
CRITERIA_VAL_METRICS = (
    "val_f1_micro",
    "val_auprc_macro",
    "val_precision_macro",
    "val_recall_macro",
    "val_auroc",
    "val_accuracy",
    *(f"val_f1_{c}" for c in CRITERIA),
    *(f"val_auprc_{c}" for c in CRITERIA),
)
#: What windowing did to each split (`WindowStats`), logged as data/<split>/<name>.
WINDOW_STATS = (
    "posts",
    "pairs",
    "tokens_p50",
    "tokens_p95",
    "tokens_max",
    "windows_per_post",
    "windows_max",
    "tokens_seen_fraction",
    "posts_cut",
    "posts_unreadable",
)


def _overrides(small_data: tuple[Path, Path], uri: str) -> list[str]:
    """`tiny_overrides` with a short system-metrics interval."""
    return tiny_overrides(small_data, uri, system_metrics_interval=SYSTEM_INTERVAL)


@dataclass
class Trained:
    uri: str
    overrides: list[str]
    code: int
    out: str
    folder: Path


@pytest.fixture(scope="module")
def trained(
    small_data: tuple[Path, Path],
    empty_mlflow_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Trained]:
    """One `psy-agents train task=criteria` run (two epochs) that the tests below read."""
    import mlflow

    from psy_agents_noaug.tracking import sink as metric_sink

    folder = tmp_path_factory.mktemp("cli_train")
    shutil.copyfile(empty_mlflow_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    overrides = _overrides(small_data, uri)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(folder)
        patch.setenv("PSY_AGENTS_JOURNAL_DIR", str(folder / "journal"))
        code = main(["train", "task=criteria", *overrides])
    yield Trained(uri, overrides, code, out.getvalue(), folder)
    metric_sink.shutdown()
    mlflow.set_tracking_uri(None)


def _only_run(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def _run_checkpoint(client: MlflowClient, run_id: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "checkpoints/best_checkpoint.pt", tmp)
        return torch.load(path, map_location="cpu", weights_only=True)


def test_train_builds_the_spec_run_tree(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    tracking_uri, overrides, out = trained.uri, trained.overrides, trained.out
    assert trained.code == 0, out
    assert "best val macro F1" in out and "mlflow ui --backend-store-uri" in out
    assert "(stopped early)" not in out  # both epochs ran
    client, run = _only_run(tracking_uri, "training_criteria")
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("criteria_tiny_")
    total_steps = int(run.data.metrics["final/total_steps"])
    assert total_steps == 4  # 28 training posts, 16 a batch, two epochs
    for key, indexing in SPEC_TRAINING_METRICS.items():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps, key
        if indexing == "epoch":
            assert sorted(steps) == [1, 2], key
        elif indexing == "step" and key.startswith("train/"):
            assert sorted(steps) == list(range(1, total_steps + 1)), key
        elif indexing == "step":
            assert sorted(steps) == list(range(2, total_steps + 1, SYSTEM_INTERVAL)), key
    for param in ("model.encoder_name", "training.batch_size", "training.optimizer.lr"):
        assert param in run.data.params
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints"} <= top
    # The model is an MLflow logged model of the run, complete, from the best epoch.
    (output,) = client.get_run(run.info.run_id).outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.status == LoggedModelStatus.READY and model.source_run_id == run.info.run_id
    assert output.step == int(run.data.metrics["final/best_epoch"])
    ckpt = [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert ckpt == ["checkpoints/best_checkpoint.pt"]

    # `evaluate` scores that run's checkpoint on the test split and logs it into the run.
    monkeypatch.chdir(trained.folder)
    monkeypatch.setenv("PSY_AGENTS_JOURNAL_DIR", str(trained.folder / "journal"))
    assert main(["evaluate", f"run_id={run.info.run_id}", *overrides]) == 0
    report = capsys.readouterr().out
    assert "test macro F1" in report
    assert all(f"{c}: " in report for c in CRITERIA)  # one line per criterion
    metrics = client.get_run(run.info.run_id).data.metrics
    assert 0.0 <= metrics["test/f1_macro"] <= 1.0
    assert {f"test/f1_A.{i}" for i in range(1, 10)} <= set(metrics)
    assert {f"test/auprc_{c}" for c in CRITERIA} <= set(metrics)
    assert {"test/f1_micro", "test/auprc_macro", "test/auroc", "test/accuracy"} <= set(metrics)
    per_criterion = [metrics[f"test/f1_{c}"] for c in CRITERIA]
    assert metrics["test/f1_macro"] == pytest.approx(np.mean(per_criterion))
    # ... and draws the test split's figures next to the validation ones.
    figures = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "figures")}
    val = {name for name in figures if name.startswith("val_")}
    assert val and {name for name in figures if name.startswith("test_")} == {
        name.replace("val_", "test_", 1) for name in val
    }


def test_train_logs_each_criterion_the_windowing_and_the_thresholds(trained: Trained) -> None:
    assert CRITERION_IDS == CRITERIA
    assert trained.code == 0, trained.out
    client, run = _only_run(trained.uri, "training_criteria")
    run_id, metrics, params = run.info.run_id, run.data.metrics, run.data.params

    # Per criterion and overall, every epoch and for the best epoch.
    best_epoch = int(metrics["final/best_epoch"])
    for name in CRITERIA_VAL_METRICS:
        history = {m.step: m.value for m in client.get_metric_history(run_id, f"epoch/{name}")}
        assert sorted(history) == [1, 2], name
        assert f"final/best_{name}" in metrics, name
        assert metrics[f"final/best_{name}"] == pytest.approx(history[best_epoch], nan_ok=True)
    f1s = [metrics[f"final/best_val_f1_{c}"] for c in CRITERIA]
    assert all(0.0 <= f1 <= 1.0 for f1 in f1s)
    # macro F1 is the mean over the nine criteria of each one's binary F1
    assert metrics["final/best_val_f1_macro"] == pytest.approx(np.mean(f1s))

    # The completed run did not stop early.
    assert metrics["final/early_stopped"] == 0.0
    assert metrics["final/total_epochs"] == 2.0

    # What windowing did to each split: 40 posts -> 28 train, 6 val (6 test).
    for split, posts in (("train", 28), ("val", 6)):
        for stat in WINDOW_STATS:
            assert f"data/{split}/{stat}" in params, (split, stat)
        assert params[f"data/{split}/posts"] == str(posts)
        assert params[f"data/{split}/pairs"] == str(9 * posts)
        assert params[f"data/{split}/posts_cut"] == "0"  # nothing near the window cap
        assert params[f"data/{split}/tokens_seen_fraction"] == "1"
        assert int(params[f"data/{split}/windows_max"]) >= 1
        p50, p95 = (float(params[f"data/{split}/tokens_{q}"]) for q in ("p50", "p95"))
        assert 0 < p50 <= p95 <= int(params[f"data/{split}/tokens_max"])
    assert "data/test/posts" not in params  # the test split is not read while training
    # The new config keys are params; the removed ones are gone.
    for key in ("model.framing", "model.aggregation", "data.max_windows_per_post",
                "data.window_overlap", "training.pos_weight", "training.sentence_loss_weight",
                "training.save_optimizer"):  # fmt: skip
        assert key in params, key
    assert "model.pooling" not in params and "task.num_labels" not in params

    # The best checkpoint: nine thresholds (tuned on val), the config, no optimizer state.
    state = _run_checkpoint(client, run_id)
    assert list(state["thresholds"]) == list(CRITERIA)
    assert set(state["thresholds"].values()) <= set(THRESHOLD_GRID)
    assert "optimizer_state_dict" not in state
    assert state["epoch"] == best_epoch
    assert state["metric_name"] == "val_f1_macro"
    assert state["best_metric"] == pytest.approx(metrics["final/best_val_f1_macro"])
    assert state["config"]["model"]["framing"] == "multilabel"
    assert state["config"]["model"]["aggregation"] == "max"


def test_patience_stops_training_early_and_says_so(
    small_data: tuple[Path, Path], sqlite_store: str, tmp_path: Path, capsys
) -> None:
    """A learning rate too small to change any weight: no epoch beats the first, so patience
    1 stops training after epoch 2 of 3; the checkpoint keeps the optimizer when asked."""
    posts, ann = small_data
    save_dir = tmp_path / "ckpt"
    code = main(
        [
            "train",
            "model=tiny",
            "model.max_length=64",
            "training.num_epochs=3",
            "training.early_stopping.patience=1",
            "training.optimizer.lr=1e-12",
            "training.batch_size=16",
            "training.save_optimizer=true",
            "training.log_system_metrics=false",
            f"training.save_dir={save_dir}",
            f"data.posts_path={posts}",
            f"data.annotations_path={ann}",
            f"mlflow.tracking_uri={sqlite_store}",
            "progress=false",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "(epoch 1)" in out
    (steps_line,) = [line for line in out.splitlines() if line.startswith("steps / epochs")]
    assert steps_line.split(":", 1)[1].split() == ["4", "/", "2", "(stopped", "early)"]
    _, run = _only_run(sqlite_store, "training_criteria")
    assert run.info.status == "FINISHED"  # stopping early is a normal end
    assert run.data.metrics["final/early_stopped"] == 1.0
    assert run.data.metrics["final/total_epochs"] == 2.0
    assert run.data.metrics["final/best_epoch"] == 1.0
    state = torch.load(save_dir / "best_checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1
    assert list(state["thresholds"]) == list(CRITERIA)
    assert state["optimizer_state_dict"]["state"]  # AdamW's moments, to resume from
    assert run.data.params["training.save_optimizer"] == "True"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "training.num_epochs=-1"], "training.num_epochs=-1"),
        (["train", "model=nope"], "unknown model 'nope'"),
        (["train", "training.lr=1"], "unknown config key 'training.lr'"),
        (["train", "model.pooling=mean"], "unknown config key 'model.pooling'"),
        (["train", "task.num_labels=2"], "unknown config key 'task.num_labels'"),
        (["train", "model.framing=triplet"], "model.framing='triplet'"),
        (["train", "model.encoder_name=roberta-large-does-not-exist"], "cannot load encoder"),
        (["train", "mlflow.tracking_uri=http://127.0.0.1:9"], "cannot reach the tracking server"),
        (["fly"], "unknown command 'fly'"),
        (["train", "oops"], "is not key=value"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_no_run(
    args: list[str], message: str, sqlite_store: str, small_data, capsys
) -> None:
    tracking_uri = sqlite_store
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


def test_malformed_data_is_a_clear_error(tmp_path: Path, sqlite_store: str, capsys) -> None:
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
            f"mlflow.tracking_uri={sqlite_store}",
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


FRESH_LOAD = """
import sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
print(len(model.predict(pd.DataFrame({"text": ["I cannot sleep and nothing is fun."]}))))
"""


def test_train_logs_a_logged_model_with_metrics_and_text_free_datasets(
    trained: Trained, small_data: tuple[Path, Path]
) -> None:
    """Issue "MLflow 3 native": the model is found by search, carries its epoch's metrics,
    loads by id without unpickling anything, and the three splits are inputs with no text."""
    import pandas as pd

    client, run = _only_run(trained.uri, "training_criteria")
    found = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    (model,) = [m for m in found if m.source_run_id == run.info.run_id]
    linked = {m.key: m.value for m in model.metrics or []}
    assert linked.get("epoch/val_f1_macro") == pytest.approx(
        run.data.metrics["final/best_val_f1_macro"]
    ), linked
    done = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, trained.uri, f"models:/{model.model_id}"],
        env={**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"},
        capture_output=True, text=True, timeout=300, cwd=trained.folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "9"  # one row per criterion
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    contexts = {i.tags[0].value: i.dataset for i in inputs if i.tags}
    assert set(contexts) == {"training", "validation", "test"}, contexts
    posts = pd.read_csv(small_data[0])["text"]
    for dataset in contexts.values():
        stored = " ".join([dataset.source, dataset.schema or "", dataset.profile or ""])
        assert not any(text[:40] in stored for text in posts), dataset.name
