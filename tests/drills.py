"""What the drill tests share: the CLI as a real process, waits with deadlines, and the
checks that a run is whole (every point once, a loadable model, no journal left behind).

The drills themselves are ``tests/test_drills.py`` (servers, workers and disks that fail)
and ``tests/test_drills_end.py`` (the end of ``train``: Ctrl-C at ten moments, a server
gone for good).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests import warm_cli
from tests.mlflow_server import postgres_available

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


def train_args(
    small_data: tuple[Path, Path], uri: str, *extra: str, batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> list[str]:  # fmt: skip
    """``progress``: the epochs' progress bars in the CLI's log (see :func:`epoch_began`)."""
    posts, ann = small_data
    return ["train", "model=tiny", "model.max_length=64", f"training.batch_size={batch_size}",
            "training.logging_steps=1",
            f"training.system_metrics_interval={SYSTEM_INTERVAL}",
            "training.early_stopping.patience=0", f"data.posts_path={posts}",
            f"data.annotations_path={ann}", f"mlflow.tracking_uri={uri}",
            f"progress={str(progress).lower()}", *extra]  # fmt: skip


def hpo_args(
    small_data: tuple[Path, Path], uri: str, storage: str, *extra: str,
    batch_size: int = BATCH_SIZE,
) -> list[str]:  # fmt: skip
    posts, ann = small_data
    return ["hpo", "stage=stage0", "model=tiny", "model.max_length=64",
            f"stage.search_space.batch_size.choices=[{batch_size}]",
            "training.logging_steps=1", f"training.system_metrics_interval={SYSTEM_INTERVAL}",
            f"data.posts_path={posts}", f"data.annotations_path={ann}",
            f"mlflow.tracking_uri={uri}", f"stage.storage={storage}", "stage.sampler=random",
            "progress=false", *extra]  # fmt: skip


class Cli:
    """`psy-agents …` as a real process (forked warm, see tests/warm_cli.py), output in a log."""

    def __init__(self, args: list[str], cwd: Path, name: str, **env: str) -> None:
        self.log = cwd / f"{name}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PSY_AGENTS_JOURNAL_DIR": str(cwd / "journal"), **env}  # fmt: skip
        self.proc = warm_cli.shared().start(args, cwd, self.log, full_env)

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
        """The metric writer processes of this CLI. They are forked by the launcher this
        session shares (see tests/warm_cli.py), so they are found by the pipes they share
        with this CLI (the sink's two pipes to its writer)."""
        import psutil

        ours = _pipes(self.proc.pid)
        pids = [p.pid for p in psutil.process_iter(["cmdline"])
                if "psy_agents_noaug.tracking" in " ".join(p.info["cmdline"] or ())
                and _pipes(p.pid) & ours]  # fmt: skip
        assert pids, f"no metric writer shares a pipe with pid {self.proc.pid}"
        return pids


def _pipes(pid: int) -> set[str]:
    """The pipes a process holds open (``pipe:[inode]``)."""
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("pipe:"):
                found.add(target)
    except OSError:
        pass
    return found


def wait_for(
    what: str, predicate: Callable[[], Any], timeout_s: float, watch: tuple[Cli, ...] = (),
    poll_s: float = 0.25,
) -> Any:  # fmt: skip
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
        threading.Event().wait(poll_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def runs_named(client: MlflowClient, experiment: str, **tags: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=500)
    return [r for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]


def steps_of(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def history_timestamps(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.timestamp / 1000 for m in client.get_metric_history(run_id, key)]


def assert_complete_history(client: MlflowClient, run: Any) -> None:
    """Every step-, epoch- and system-indexed point of a finished run is there, once."""
    run_id = run.info.run_id
    run = client.get_run(run_id)
    total = int(run.data.metrics["final/total_steps"])
    epochs = int(run.data.metrics["final/total_epochs"])
    assert total > 0 and epochs > 0
    for key in TRAIN_KEYS:
        assert steps_of(client, run_id, key) == list(range(1, total + 1)), key
    for key in ("epoch/train_loss", "epoch/val_f1_macro", "epoch/val_f1_A.9",
                "epoch/val_auprc_macro", "epoch/duration_seconds"):  # fmt: skip
        assert steps_of(client, run_id, key) == list(range(1, epochs + 1)), key
    expected = list(range(SYSTEM_INTERVAL, total + 1, SYSTEM_INTERVAL))
    assert steps_of(client, run_id, "system/cpu_percent") == expected


def models_of(client: MlflowClient, run: Any) -> dict[str, Any]:
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

    models = models_of(client, run)
    assert models, f"run {run.info.run_id} has no model"
    for model in models.values():
        assert isinstance(model, str) or model.status == LoggedModelStatus.READY, model


def contiguous_from_1(steps: list[int]) -> bool:
    return bool(steps) and steps == list(range(1, len(steps) + 1))


def leftover_journals(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.journal.jsonl"))


def config_logged(artifacts: Path, run_id: str) -> bool:
    """config.yaml is the last thing a run logs before its first step (as on a fast machine,
    where waiting for steps could mean waiting for the end)."""
    return (artifacts / run_id / "artifacts" / "config.yaml").exists() or any(
        artifacts.glob(f"*/{run_id}/artifacts/config.yaml")
    )


def epoch_began(cli: Cli) -> bool:
    """Whether the CLI's first epoch has begun: its progress bar (``progress=True``) is
    printed by the training process itself as the epoch starts. What reaches the store
    (config.yaml, a first step) comes through the metric writer, which on a busy machine
    runs idle and may be seconds late: too late to land an outage inside an epoch."""
    return cli.log.exists() and "epoch 1/" in cli.text()
