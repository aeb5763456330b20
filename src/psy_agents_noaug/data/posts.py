"""Posts as training examples: nine criterion labels each, and where the evidence is.

A post is positive for a criterion when an annotation of it for that criterion's symptom
has status 1. ReDSM5 annotates *sentences*, so each status-1 annotation also says where
the evidence is: its sentence is found in the post (exactly, or with the spacing
normalised) and kept as character offsets, which supervise the model's per-sentence
scores. Status-0 annotations (explained absences: negated, someone else, past) need no
row of their own: every sentence that is not evidence is a negative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.data.redsm5 import ReDSM5Data

__all__ = ["CRITERION_IDS", "POST_COLUMNS", "PostExamples", "build_post_examples"]

CRITERION_IDS: tuple[str, ...] = tuple(c.id for c in CRITERIA)
#: ``labels``: nine 0/1 ints in CRITERIA order; ``evidence``: (start, end, criterion index).
POST_COLUMNS: tuple[str, ...] = ("post_id", "text", "labels", "evidence")


@dataclass
class PostExamples:
    """The posts of a dataset with labels and evidence spans.

    Attributes:
        frame: Columns :data:`POST_COLUMNS`, one row per post, in file order.
        unmatched: Status-1 annotations whose sentence is not in its post (their label
            still counts; only the sentence-level supervision is missing).
    """

    frame: pd.DataFrame
    unmatched: int = 0


def _locate(text: str, sentence: str) -> tuple[int, int] | None:
    """Where ``sentence`` is in ``text``: exactly, else with any spacing between words."""
    sentence = sentence.strip()
    if not sentence:
        return None
    start = text.find(sentence)
    if start >= 0:
        return start, start + len(sentence)
    words = sentence.split()
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def build_post_examples(data: ReDSM5Data) -> PostExamples:
    """One row per post: its nine labels and the character spans of its evidence.

    Example:
        >>> from psy_agents_noaug.data.redsm5 import load_redsm5
        >>> from psy_agents_noaug.data.sample import sample_paths
        >>> examples = build_post_examples(load_redsm5(*sample_paths()))
        >>> len(examples.frame.loc[0, "labels"])
        9
    """
    index = {c.symptom: i for i, c in enumerate(CRITERIA)}
    positive = data.annotations[data.annotations["status"] == 1]
    by_post: dict[str, list[tuple[int, str]]] = {}
    for post_id, symptom, sentence in zip(
        positive["post_id"], positive["DSM5_symptom"], positive["sentence_text"], strict=True
    ):
        if symptom in index:
            by_post.setdefault(post_id, []).append((index[symptom], sentence))
    rows = []
    unmatched = 0
    for post_id, text in zip(data.posts["post_id"], data.posts["text"], strict=True):
        labels = [0] * len(CRITERIA)
        evidence: list[tuple[int, int, int]] = []
        for criterion, sentence in by_post.get(post_id, []):
            labels[criterion] = 1
            span = _locate(text, sentence)
            if span is None:
                unmatched += 1
            else:
                evidence.append((span[0], span[1], criterion))
        rows.append((post_id, text, labels, evidence))
    return PostExamples(pd.DataFrame(rows, columns=list(POST_COLUMNS)), unmatched)
