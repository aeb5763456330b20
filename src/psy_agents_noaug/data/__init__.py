"""Data layer: ReDSM5 reading, DSM-5 criteria, posts as examples, windows, splits, loaders.

Example:
    >>> from psy_agents_noaug.data import build_post_examples, load_redsm5, sample_paths
    >>> examples = build_post_examples(load_redsm5(*sample_paths()))
    >>> len(examples.frame) > 0
    True
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
    EncodingSpec,
    PostWindowsDataset,
    WindowCollator,
    build_dataloaders,
)
from psy_agents_noaug.data.posts import CRITERION_IDS, PostExamples, build_post_examples
from psy_agents_noaug.data.redsm5 import (
    ANNOTATIONS_COLUMNS,
    POSTS_COLUMNS,
    DataError,
    ReDSM5Data,
    load_redsm5,
    normalize_symptom,
)
from psy_agents_noaug.data.sample import SAMPLE_DIR, sample_paths
from psy_agents_noaug.data.sentences import sentence_spans, split_sentences
from psy_agents_noaug.data.splits import Splits, split_by_post
from psy_agents_noaug.data.windows import window_post

__all__ = [
    "ANNOTATIONS_COLUMNS",
    "CRITERIA",
    "CRITERION_IDS",
    "POSTS_COLUMNS",
    "SAMPLE_DIR",
    "SPECIAL_CASE",
    "SYMPTOMS",
    "Criterion",
    "DataError",
    "EncodingSpec",
    "PostExamples",
    "PostWindowsDataset",
    "ReDSM5Data",
    "Splits",
    "WindowCollator",
    "build_dataloaders",
    "build_post_examples",
    "criterion_by_id",
    "criterion_by_symptom",
    "load_redsm5",
    "normalize_symptom",
    "sample_paths",
    "sentence_spans",
    "split_by_post",
    "split_sentences",
    "window_post",
]
