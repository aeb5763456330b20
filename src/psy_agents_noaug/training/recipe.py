"""From a config to the pieces of a criteria model: data, windows, model, loss, task.

`train`, `evaluate`, `register` and serving all rebuild the same things from a config
(the run's own, stored in its checkpoint), so they are built here, once: which files,
which split of them, how posts become windows, which model, which loss.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from psy_agents_noaug.data.dataset import EncodingSpec, PostWindowsDataset, WindowStats
from psy_agents_noaug.data.posts import CRITERION_IDS, PostExamples, build_post_examples
from psy_agents_noaug.data.splits import Splits, split_by_post
from psy_agents_noaug.training.losses import CriteriaLoss, positive_weights
from psy_agents_noaug.training.metrics import THRESHOLD_TOLERANCE
from psy_agents_noaug.training.tasks import CriteriaTask

__all__ = [
    "build_loss",
    "data_paths",
    "encoding_spec",
    "load_examples",
    "load_splits",
    "warn_cut_posts",
]

log = logging.getLogger(__name__)


def _get(node: Any, key: str, default: Any = None) -> Any:
    """A config value from an OmegaConf node or a plain dict (a checkpoint's config)."""
    if isinstance(node, Mapping):
        return node.get(key, default)
    return getattr(node, key, default) if node is not None else default


def data_paths(data_cfg: Any) -> tuple[Path, Path]:
    """The posts and annotations CSVs the ``data`` config names (or its corpus profile)."""
    from psy_agents_noaug.data.sample import DEFAULT_CACHE_DIR, corpus_paths

    posts = _get(data_cfg, "posts_path")
    if posts is not None:
        return Path(posts), Path(_get(data_cfg, "annotations_path"))
    profile = _get(data_cfg, "profile", "sample")
    return corpus_paths(profile, _get(data_cfg, "cache_dir", DEFAULT_CACHE_DIR))


def load_examples(data_cfg: Any) -> PostExamples:
    """Read the configured data as posts with labels and evidence; one warning per problem."""
    from psy_agents_noaug.data.redsm5 import load_redsm5

    examples = build_post_examples(load_redsm5(*data_paths(data_cfg)))
    if examples.unmatched:
        log.warning(
            "%d evidence annotation(s) name a sentence that is not in its post: their "
            "labels count, but they give no sentence-level supervision",
            examples.unmatched,
        )
    return examples


def load_splits(cfg: Any) -> Splits:
    """The posts split by post id into train, validation and test (reproducible by seed);
    ``data.max_train_posts`` keeps a random subset of the training posts."""
    data_cfg = _get(cfg, "data")
    seed = _get(cfg, "seed", 42)
    splits = split_by_post(
        load_examples(data_cfg).frame,
        val_fraction=_get(data_cfg, "val_fraction", 0.15),
        test_fraction=_get(data_cfg, "test_fraction", 0.15),
        seed=seed,
    )
    limit = _get(data_cfg, "max_train_posts")
    if limit is not None and len(splits.train) > int(limit):
        kept = splits.train.sample(n=int(limit), random_state=seed).index.sort_values()
        splits.train = splits.train.loc[kept].reset_index(drop=True)
    return splits


def encoding_spec(cfg: Any) -> EncodingSpec:
    """How the run's posts become encoder windows (``model`` and ``data`` settings)."""
    model_cfg, data_cfg = _get(cfg, "model"), _get(cfg, "data")
    return EncodingSpec(
        max_length=int(_get(model_cfg, "max_length", 128)),
        max_windows=int(_get(data_cfg, "max_windows_per_post", 128)),
        overlap=int(_get(data_cfg, "window_overlap", 1)),
        framing=str(_get(model_cfg, "framing", "multilabel")),
    )


def dataset_name(data_cfg: Any) -> str:
    """The data's short name: the corpus profile, or the posts file's stem."""
    posts = _get(data_cfg, "posts_path")
    return Path(posts).stem if posts is not None else str(_get(data_cfg, "profile", "sample"))


def split_datasets(
    data_cfg: Any, splits: Splits, stats: Mapping[str, WindowStats]
) -> dict[str, Any]:
    """Each split as an MLflow dataset input (origin, digest, counts: never text)."""
    from psy_agents_noaug.tracking.datasets import SplitDataset, file_digest, split_digest

    posts, annotations = data_paths(data_cfg)
    source = file_digest(posts, annotations)
    name = dataset_name(data_cfg)
    out = {}
    for split in ("train", "val", "test"):
        frame = getattr(splits, split)
        labels = np.array(frame["labels"].tolist()) if len(frame) else np.zeros((0, 9))
        profile: dict[str, Any] = {
            "posts": len(frame),
            "decisions": len(frame) * len(CRITERION_IDS),
            "no_symptom_posts": int((labels.sum(axis=1) == 0).sum()),
            "positives": dict(
                zip(CRITERION_IDS, labels.sum(axis=0).astype(int).tolist(), strict=True)
            ),
        }
        if split in stats:
            profile.update({k: v for k, v in stats[split].__dict__.items() if k not in profile})
        out[split] = SplitDataset(
            source=posts,
            name=f"{name}-{split}",
            digest=split_digest(source, [str(p) for p in frame["post_id"]]),
            profile=profile,
            label_names=CRITERION_IDS,
        )
    return out


def warn_cut_posts(split: str, stats: WindowStats, max_windows: int) -> None:
    """Never silent: say how many posts the window cap cut (and how much was not read), and
    how many the tokenizer could not read at all."""
    if stats.posts_cut:
        unseen = 1.0 - stats.tokens_seen_fraction
        log.warning(
            "%s split: %d post(s) are longer than data.max_windows_per_post=%d windows and "
            "were cut; %.2f%% of the split's tokens are not read (raise the cap to read them)",
            split,
            stats.posts_cut,
            max_windows,
            100 * unseen,
        )
    if stats.posts_unreadable:
        log.warning(
            "%s split: %d post(s) have no word the tokenizer knows (only emoji, symbols or "
            "characters it drops); the model reads them as unknown tokens",
            split,
            stats.posts_unreadable,
        )


def build_loss(train: pd.DataFrame, dataset: PostWindowsDataset, training_cfg: Any) -> CriteriaLoss:
    """The criteria loss with positive weights from the training split (or none)."""
    setting = _get(training_cfg, "pos_weight", "auto")
    post_weights: list[float] | None
    sentence_weights: list[float] | None
    if setting in (None, "none"):
        post_weights = sentence_weights = None
    elif setting == "auto":
        post_weights = positive_weights(np.array(train["labels"].tolist()))
        sentences = [s for post in dataset.sentence_labels for s in post]
        sentence_weights = positive_weights(np.array(sentences)) if sentences else None
    else:
        post_weights = sentence_weights = [float(setting)] * len(CRITERION_IDS)
    return CriteriaLoss(
        post_weights,
        sentence_weights,
        sentence_weight=float(_get(training_cfg, "sentence_loss_weight", 1.0)),
    )


def criteria_task(
    thresholds: Mapping[str, float] | None = None,
    *,
    tune: bool,
    tolerance: float = THRESHOLD_TOLERANCE,
) -> CriteriaTask:
    """The nine-criteria task; ``thresholds`` by criterion id (from a checkpoint);
    ``tolerance``: ``training.threshold_tolerance`` when tuning."""
    values = [float((thresholds or {}).get(c, 0.5)) for c in CRITERION_IDS]
    return CriteriaTask(CRITERION_IDS, tune=tune, thresholds=values, tolerance=tolerance)
