"""The `evaluate` job: score a trained model on its test split, per criterion.

The data and the split come from the checkpoint's own config (same files, same seed), so
the test posts are ones the model never saw; the decision thresholds are the ones tuned
on the validation split and saved with the checkpoint. With a run id, the scores are
logged into that run as ``test/*`` (at the checkpoint's step) and the test split's figures
join the validation ones under ``figures/``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["evaluate_checkpoint", "run_evaluate"]


def evaluate_checkpoint(
    state: dict[str, Any],
    cfg: DictConfig,
    *,
    split: str = "test",
    figures_dir: Path | None = None,
) -> dict[str, float]:
    """``test/*`` metrics of a loaded checkpoint on a split of its own data.

    With ``figures_dir``, the split's PR curves, confusion matrices, threshold sweep and
    reliability diagram are written there too (``test_*.png``).
    """
    from psy_agents_noaug.data.dataset import build_dataloaders
    from psy_agents_noaug.jobs.train import resolve_device
    from psy_agents_noaug.models.encoders import load_tokenizer
    from psy_agents_noaug.models.factory import model_from_checkpoint
    from psy_agents_noaug.training import recipe
    from psy_agents_noaug.training.evaluation import evaluate_loader

    saved = state.get("config") or {}
    run_cfg: Any = OmegaConf.merge(
        cfg, {k: saved[k] for k in ("model", "data", "task", "seed") if k in saved}
    )
    frames = recipe.load_splits(run_cfg)
    model = model_from_checkpoint(state)
    (loader,) = build_dataloaders(
        [getattr(frames, split)],
        load_tokenizer(run_cfg.model.encoder_name),
        recipe.encoding_spec(run_cfg),
        batch_size=run_cfg.training.eval_batch_size,
        eval_batch_size=run_cfg.training.eval_batch_size,
        seed=run_cfg.seed,
        shuffle_first=False,
    )
    device = resolve_device(cfg.device)
    model.to(device)
    task = recipe.criteria_task(state.get("thresholds"), tune=False)
    metrics = evaluate_loader(model, loader, task, device, prefix=f"{split}_")
    if figures_dir is not None and task.last_predictions is not None:
        from psy_agents_noaug.training.figures import write_figures

        labels, probs = task.last_predictions
        write_figures(labels, probs, task.names, task.thresholds, figures_dir, split=split)
    return {key.replace(f"{split}_", f"{split}/", 1): value for key, value in metrics.items()}


def run_evaluate(
    cfg: DictConfig, *, run_id: str | None = None, checkpoint: str | None = None
) -> dict[str, float]:
    """Evaluate a run's best checkpoint (or a checkpoint file) on its test split."""
    from psy_agents_noaug.training.checkpoints import checkpoint_from, load_checkpoint

    if run_id:
        state = checkpoint_from(run_id, cfg.mlflow.tracking_uri)
    else:
        state = load_checkpoint(checkpoint or "")
    if not run_id:
        return evaluate_checkpoint(state, cfg)
    from psy_agents_noaug.jobs.train import FIGURES_ARTIFACT
    from psy_agents_noaug.tracking import get_sink

    sink = get_sink(run_id, tracking_uri=cfg.mlflow.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate_checkpoint(state, cfg, figures_dir=Path(tmp))
        sink.log_dict(report, step=int(state.get("global_step", 0)))
        for path in sorted(Path(tmp).glob("*.png")):
            sink.log_artifact(path, FIGURES_ARTIFACT, mode="move")
        sink.flush()
    return report
