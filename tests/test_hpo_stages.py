"""Stage configs (stage0…stage3) and the `hpo` job that turns them into a study."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from psy_agents_noaug.config import load_config
from psy_agents_noaug.hpo.search_space import parse_search_space
from psy_agents_noaug.jobs.hpo import _config_keys, _validate_stage, run_hpo, study_name_for
from psy_agents_noaug.training.train_loop import StopReason

STAGES = ("stage0", "stage1", "stage2", "stage3")
CRITERIA = tuple(f"A.{i}" for i in range(1, 10))


@pytest.fixture()
def store(sqlite_store: str) -> str:
    """A fresh sqlite MLflow store (./mlflow.db) as the tracking URI, cwd = tmp_path."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return sqlite_store


def _cfg(store: str, *overrides: str) -> DictConfig:
    return load_config([f"mlflow.tracking_uri={store}", "progress=false", *overrides])


def _criteria_metrics(score: float) -> dict[str, float]:
    """Validation metrics shaped like the criteria Trainer's: per criterion (nine different
    F1s whose mean is ``score``), then overall."""
    metrics = {}
    for i, name in enumerate(CRITERIA):
        metrics[f"val_f1_{name}"] = score + 0.01 * (i - 4)
        metrics[f"val_auprc_{name}"] = min(1.0, score + 0.01 * i)
    metrics.update(
        val_f1_macro=score,
        val_f1_micro=score,
        val_auprc_macro=sum(metrics[f"val_auprc_{c}"] for c in CRITERIA) / len(CRITERIA),
        val_loss=1 - score,
    )
    return metrics


class FakeTrain:
    """Stands in for train_from_config: records configs, reports epochs like the Trainer."""

    def __init__(self, bad_from_trial: int | None = None, *, flat: bool = False) -> None:
        self.configs: list[DictConfig] = []
        self.epochs: list[int] = []
        self.scores: list[float] = []
        self.bad_from_trial = bad_from_trial
        self.flat = flat  # every good trial scores the same (pruning becomes deterministic)

    def __call__(self, cfg: DictConfig, *, epoch_end_callback=None) -> dict[str, Any]:
        self.configs.append(cfg)
        number = len(self.configs) - 1
        lr = cfg.training.optimizer.lr
        score = 0.9 - abs(lr - 3e-5) * 1e3 - cfg.model.dropout * 0.1 + cfg.seed * 1e-6
        if self.flat:
            score = 0.9
        if self.bad_from_trial is not None and number >= self.bad_from_trial:
            score = 0.05
        self.scores.append(score)
        epoch = 0
        metrics = _criteria_metrics(score)
        try:
            for epoch in range(1, cfg.training.num_epochs + 1):
                epoch_end_callback(epoch, dict(metrics))
        finally:
            self.epochs.append(epoch)  # epochs this trial ran (fewer when pruned)
        return {
            "best_val_f1_macro": score,
            "best_metrics": metrics,
            "thresholds": dict.fromkeys(CRITERIA, 0.5),
            "stop_reason": StopReason.COMPLETED,
            "early_stopped": False,
        }


# ------------------------------------------------------------------ the config files
@pytest.mark.parametrize("stage", STAGES)
def test_stage_configs_compose_and_validate(stage: str) -> None:
    cfg = load_config([f"stage={stage}", "task=criteria"])
    _validate_stage(cfg.stage)
    assert cfg.stage.name == stage
    assert study_name_for(cfg) == f"criteria_{stage}"
    assert cfg.stage.metric == "val_f1_macro"
    assert cfg.stage.direction == "maximize"
    if cfg.stage.mode == "search":
        space = parse_search_space(cfg.stage.search_space)
        assert space and set(_config_keys(cfg, list(space), cfg.stage.config_keys)) == set(space)
    else:
        assert stage == "stage3" and len(cfg.stage.seeds) >= 2
        assert cfg.stage.sampler == "grid" and cfg.stage.pruner == "none"


def test_stages_grow_from_sanity_to_refit() -> None:
    stages = {s: load_config([f"stage={s}"]).stage for s in STAGES}
    assert stages["stage0"].n_trials <= 5 and stages["stage0"].num_epochs == 1
    assert stages["stage0"].n_trials < stages["stage1"].n_trials < stages["stage2"].n_trials
    assert stages["stage1"].pruner == "median" and stages["stage2"].pruner == "hyperband"
    assert stages["stage3"].source_stage == "stage2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage.sampler=bayes"], "stage.sampler='bayes'"),
        (["stage.pruner=asha"], "stage.pruner='asha'"),
        (["stage.n_trials=0"], "stage.n_trials=0"),
        (["stage.direction=up"], "stage.direction='up'"),
        (["stage.config_keys.dropout=model.dropoutt"], "'model.dropoutt' is not a key"),
        (["stage.search_space.learning_rate.high=20.0"], "search_space.learning_rate allows 20"),
        (["stage.search_space.dropout.type=normal"], "search_space.dropout.type must be one of"),
        (["stage=stage3", "stage.seeds=[]"], "stage.seeds"),
    ],
)
def test_bad_stage_values_fail_before_any_trial(
    store: str, overrides: list[str], message: str
) -> None:
    train = FakeTrain()
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        run_hpo(_cfg(store, *overrides), train_fn=train)
    assert train.configs == []


# ------------------------------------------------------------------ the job
def test_hpo_job_applies_sampled_params_and_prunes_through_the_hook(store: str) -> None:
    train = FakeTrain(bad_from_trial=5, flat=True)
    cfg = _cfg(store, "stage=stage1", "stage.n_trials=7", "stage.sampler=random")
    result = run_hpo(cfg, train_fn=train)

    for trial_cfg in train.configs:
        assert trial_cfg.training.num_epochs == 3  # stage1.num_epochs, not training's 4
        assert trial_cfg.progress is False
        assert 5e-6 <= trial_cfg.training.optimizer.lr <= 2e-4
        assert trial_cfg.training.batch_size in (8, 16, 32)
        assert trial_cfg.training.scheduler.name in ("linear", "cosine")
    assert train.epochs[-1] < 3  # the bad trials were stopped by the median pruner
    assert result["pruned_trials"] == 2
    assert result["completed_trials"] == 5
    assert result["study_name"] == "criteria_stage1"
    client = MlflowClient(store)
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.tags["mlflow.runName"] == "HPO_criteria_stage1"
    assert parent.data.metrics["pruned_trials"] == 2
    assert parent.data.metrics["best_val_f1_macro"] == pytest.approx(result["best_value"])
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "hpo_criteria"


@pytest.mark.parametrize("metric", ["val_auprc_macro", "val_f1_micro", "val_f1_A.9"])
def test_the_objective_can_be_any_criteria_metric_of_the_best_epoch(
    store: str, metric: str
) -> None:
    """Overall or per criterion: the objective is the named metric of each trial's best epoch."""
    train = FakeTrain()
    result = run_hpo(
        _cfg(store, "stage=stage0", "stage.n_trials=2", f"stage.metric={metric}"), train_fn=train
    )
    assert result["completed_trials"] == 2
    expected = [_criteria_metrics(score)[metric] for score in train.scores]
    assert result["best_value"] == pytest.approx(max(expected))
    client = MlflowClient(store)
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.metrics[f"best_{metric}"] == pytest.approx(max(expected))
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(c.data.metrics[f"trial/{metric}"] for c in children) == pytest.approx(
        sorted(expected)
    )


@pytest.mark.parametrize("source", ["mlflow", "journal"])
def test_stage3_refits_the_best_params_once_per_seed(
    store: str, tmp_path: Path, source: str
) -> None:
    storage = [f"stage.storage=journal:{tmp_path / 'hpo.journal'}"] if source == "journal" else []
    search = FakeTrain()
    found = run_hpo(_cfg(store, "stage=stage1", "stage.n_trials=4", *storage), train_fn=search)
    best = found["best_params"]

    refit = FakeTrain()
    result = run_hpo(
        _cfg(store, "stage=stage3", "stage.source_stage=stage1", "stage.num_epochs=2", *storage),
        train_fn=refit,
    )
    assert sorted(c.seed for c in refit.configs) == [13, 42, 1337]
    for trial_cfg in refit.configs:
        assert trial_cfg.training.optimizer.lr == pytest.approx(best["learning_rate"])
        assert trial_cfg.training.batch_size == best["batch_size"]
        assert trial_cfg.training.scheduler.name == best["scheduler"]
        assert trial_cfg.training.num_epochs == 2
    assert result["study_name"] == "criteria_stage3" and result["completed_trials"] == 3
    assert len(result["refit_values"]) == 3
    parent = MlflowClient(store).get_run(result["parent_run_id"])
    assert parent.data.metrics["refit/mean_val_f1_macro"] == pytest.approx(result["refit_mean"])
    assert "refit/std_val_f1_macro" in parent.data.metrics
    assert parent.data.params["refit/learning_rate"] == str(best["learning_rate"])
    assert parent.data.tags["hpo.source_study"] == "criteria_stage1"


def test_stage3_without_a_source_study_says_what_to_run(store: str) -> None:
    with pytest.raises(ValueError, match=r"HPO_criteria_stage2.*run that stage first"):
        run_hpo(_cfg(store, "stage=stage3"), train_fn=FakeTrain())


@pytest.fixture()
def one_torch_thread():
    """Two shared cores: one intra-op thread is several times faster than oversubscribing."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_stage0_trains_tiny_models_inside_nested_trial_runs(store: str, one_torch_thread) -> None:
    """The real path: CLI config -> train_from_config -> Trainer logging into each child."""
    import torch

    cfg = _cfg(
        store,
        "stage=stage0",
        "task=criteria",
        "model=tiny",
        "model.max_length=48",
        "stage.n_trials=2",
        "stage.search_space.batch_size.choices=[32]",
        "training.system_metrics_interval=5",
    )
    result = run_hpo(cfg)
    assert result["completed_trials"] == 2 and result["failed_trials"] == 0
    client = MlflowClient(store)
    parent = client.get_run(result["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(c.info.run_name for c in children) == ["trial_0000", "trial_0001"]
    for child in children:
        metrics, params = child.data.metrics, child.data.params
        keys = set(metrics)
        assert {"trial/val_f1_macro", "trial/number", "train/loss_step"} <= keys
        assert {"epoch/val_f1_macro", "epoch/train_loss", "final/best_val_f1_macro"} <= keys
        assert {"epoch/val_f1_micro", "epoch/val_auprc_macro"} <= keys
        for name in CRITERIA:  # each trial scores every criterion, every epoch and at its best
            assert {f"epoch/val_f1_{name}", f"epoch/val_auprc_{name}"} <= keys, name
            assert {f"final/best_val_f1_{name}", f"final/best_val_auprc_{name}"} <= keys, name
        assert metrics["trial/val_f1_macro"] == pytest.approx(metrics["final/best_val_f1_macro"])
        assert metrics["final/early_stopped"] == 0.0
        assert any(k.startswith("system/") for k in keys)
        assert params["hpo/learning_rate"] == params["training.optimizer.lr"]
        assert params["training.num_epochs"] == "1"
        # the bundled sample's 4,000 posts: 2,800 train, of which stage0 trains on 800;
        # 600 val (600 test), windowed
        assert params["data.max_train_posts"] == "800"
        assert (params["data/train/posts"], params["data/val/posts"]) == ("800", "600")
        assert params["data/train/posts_cut"] == "0"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "checkpoints" in artifacts
        assert child.info.status == "FINISHED"
    with tempfile.TemporaryDirectory() as tmp:  # a trial's checkpoint: nine thresholds
        path = client.download_artifacts(
            children[0].info.run_id, "checkpoints/best_checkpoint.pt", tmp
        )
        state = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state["thresholds"]) == list(CRITERIA)
    assert "optimizer_state_dict" not in state
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["completed_trials"] == 2
