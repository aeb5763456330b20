"""Data layer: ReDSM5 reading, DSM-5 criteria, (post, criterion) pairs, splits, loaders.

Example:
    >>> from psy_agents_noaug.data import build_criteria_pairs, load_redsm5, sample_paths
    >>> pairs = build_criteria_pairs(load_redsm5(*sample_paths()))
    >>> sorted(pairs["label"].unique().tolist())
    [0, 1]
"""

from psy_agents_noaug.data.criteria import (
    CRITERIA,
    SPECIAL_CASE,
    SYMPTOMS,
    Criterion,
    criterion_by_id,
    criterion_by_symptom,
)
from psy_agents_noaug.data.dataset import (
    CriteriaPairDataset,
    build_dataloaders,
    encode_pair,
    make_collate_fn,
)
from psy_agents_noaug.data.pairs import PAIR_COLUMNS, Splits, build_criteria_pairs, split_by_post
from psy_agents_noaug.data.redsm5 import (
    ANNOTATIONS_COLUMNS,
    POSTS_COLUMNS,
    DataError,
    ReDSM5Data,
    load_redsm5,
    normalize_symptom,
)
from psy_agents_noaug.data.sample import SAMPLE_DIR, sample_paths

__all__ = [
    "ANNOTATIONS_COLUMNS",
    "CRITERIA",
    "PAIR_COLUMNS",
    "POSTS_COLUMNS",
    "SAMPLE_DIR",
    "SPECIAL_CASE",
    "SYMPTOMS",
    "CriteriaPairDataset",
    "Criterion",
    "DataError",
    "ReDSM5Data",
    "Splits",
    "build_criteria_pairs",
    "build_dataloaders",
    "criterion_by_id",
    "criterion_by_symptom",
    "encode_pair",
    "load_redsm5",
    "make_collate_fn",
    "normalize_symptom",
    "sample_paths",
    "split_by_post",
]
