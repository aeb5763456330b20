"""The `evaluate` job: score a checkpoint on the test split (macro F1, per-criterion F1)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from psy_agents_noaug.training.metrics import per_class_f1


def _checkpoint_from_run(run_id: str, tracking_uri: str) -> Path:
    import mlflow

    dst = Path(tempfile.mkdtemp(prefix="psy-agents-eval-"))
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="checkpoints/best_checkpoint.pt",
            dst_path=str(dst),
            tracking_uri=tracking_uri,
        )
    except Exception as exc:
        raise FileNotFoundError(
            f"run {run_id} has no checkpoints/best_checkpoint.pt ({str(exc).splitlines()[0]})"
        ) from None
    return Path(local)


def run_evaluate(
    cfg: DictConfig, *, run_id: str | None = None, checkpoint: str | None = None
) -> dict[str, float]:
    """Evaluate a run's best checkpoint (or a checkpoint file) on the test split.

    The data split comes from the checkpoint's own config (same seed, same files), so
    the test posts are the ones the model never saw. With a run id, the scores are
    logged into that run as ``test/*``.
    """
    from psy_agents_noaug.data.criteria import CRITERIA
    from psy_agents_noaug.data.dataset import build_dataloaders
    from psy_agents_noaug.jobs.train import load_splits, resolve_device
    from psy_agents_noaug.models.factory import build_model
    from psy_agents_noaug.training.train_loop import Trainer

    path = (
        _checkpoint_from_run(run_id, cfg.mlflow.tracking_uri) if run_id else Path(checkpoint or "")
    )
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("config") or {}
    run_cfg: Any = OmegaConf.merge(
        cfg, {k: saved[k] for k in ("model", "data", "task", "seed") if k in saved}
    )
    splits = load_splits(run_cfg)
    model, tokenizer = build_model(run_cfg.model, run_cfg.task.num_labels)
    model.load_state_dict(state["model_state_dict"])
    _, _, test_loader = build_dataloaders(
        splits,
        tokenizer,
        max_length=run_cfg.model.max_length,
        batch_size=8,
        eval_batch_size=run_cfg.training.eval_batch_size,
        seed=run_cfg.seed,
    )
    device = resolve_device(cfg.device)
    trainer = Trainer(
        model,
        test_loader,
        test_loader,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.CrossEntropyLoss(),
        device,
        track=False,
    )
    model.to(device)
    report = {
        k.replace("test_", "test/", 1): v
        for k, v in trainer.evaluate(test_loader, prefix="test_").items()
    }
    report.update(_per_criterion_f1(trainer, test_loader, splits.test, CRITERIA))
    if run_id:
        from psy_agents_noaug.tracking import get_sink

        sink = get_sink(run_id, tracking_uri=cfg.mlflow.tracking_uri)
        sink.log_dict(report, step=int(state.get("global_step", 0)))
        sink.flush()
    return report


@torch.no_grad()
def _per_criterion_f1(trainer: Any, loader: Any, test_df: Any, criteria: Any) -> dict[str, float]:
    trainer.model.eval()
    preds = []
    for batch in loader:
        inputs, _ = trainer._split(batch)
        preds.append(trainer.model(**inputs).argmax(dim=-1).cpu())
    pred = torch.cat(preds).numpy()
    labels = test_df["label"].to_numpy()
    ids = test_df["criterion_id"].to_numpy()
    out = {}
    for c in criteria:
        mask = ids == c.id
        if mask.any():
            out[f"test/f1_{c.id}"] = per_class_f1(labels[mask], pred[mask])
    out["test/f1_positive_mean"] = float(np.mean(list(out.values()))) if out else float("nan")
    return out
