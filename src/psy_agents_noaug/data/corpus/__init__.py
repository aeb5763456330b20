"""Synthetic ReDSM5-format corpora of varied, natural posts, written from scratch.

A model trained on a handful of sentence templates learns the templates.
This generator writes posts the way people write them instead: evidence
built from dozens of distinct ideas per criterion with hedges, time frames
and consequences; hard negatives for every criterion (negated, about
someone else, past and resolved, general, everyday figures of speech) in
posts with and without symptoms; long stretches of ordinary life; and a
different typing voice per post. Nothing in it comes from real posts.

Two profiles ship (:data:`PROFILES`): ``sample``, the bundled demo, and
``redsm5``, the real dataset's shape. Output is byte-identical for the
same profile and seed.

Example:
    >>> corpus = generate("sample")
    >>> len(corpus.posts), corpus.annotations.columns.tolist()[:3]
    (4000, ['post_id', 'sentence_id', 'sentence_text'])
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from psy_agents_noaug.data.corpus.compose import ComposedPost, compose_post
from psy_agents_noaug.data.corpus.plan import PostPlan, plan_corpus
from psy_agents_noaug.data.corpus.profiles import PROFILES, CorpusProfile, get_profile
from psy_agents_noaug.data.corpus.sentences import sentence_id, split_sentences
from psy_agents_noaug.data.redsm5 import ANNOTATIONS_COLUMNS, POSTS_COLUMNS

__all__ = [
    "PROFILES",
    "Corpus",
    "CorpusProfile",
    "generate",
    "get_profile",
    "split_sentences",
    "write_corpus",
]

POSTS_FILE = "posts.csv"
ANNOTATIONS_FILE = "annotations.csv"


@dataclass
class Corpus:
    """A generated corpus in the ReDSM5 format.

    Attributes:
        profile: The profile it was generated from.
        seed: The seed used.
        posts: Columns ``post_id``, ``text``.
        annotations: Columns ``post_id``, ``sentence_id``, ``sentence_text``,
            ``DSM5_symptom``, ``status`` (int 0/1), ``explanation``.
    """

    profile: CorpusProfile
    seed: int
    posts: pd.DataFrame
    annotations: pd.DataFrame


def generate(profile: str | CorpusProfile, seed: int | None = None) -> Corpus:
    """Generate a corpus.

    Args:
        profile: A name in :data:`PROFILES` (``"sample"``, ``"redsm5"``) or a
            :class:`CorpusProfile`.
        seed: Random seed; ``None`` uses the profile's own.

    Returns:
        The :class:`Corpus`; the same profile and seed always give the same one.

    Raises:
        ValueError: Unknown profile name (the message lists the valid ones).
    """
    resolved = get_profile(profile)
    used_seed = resolved.seed if seed is None else seed
    posts: list[tuple[str, str]] = []
    rows: list[tuple[str, str, str, str, int, str]] = []
    for plan in plan_corpus(resolved, used_seed):
        post = _write(plan, resolved, used_seed)
        posts.append((post.post_id, post.text))
        rows.extend(
            (
                post.post_id,
                sentence_id(post.post_id, a.sentence_index),
                a.sentence_text,
                a.symptom,
                a.status,
                a.explanation,
            )
            for a in post.annotations
        )
    return Corpus(
        profile=resolved,
        seed=used_seed,
        posts=pd.DataFrame(posts, columns=list(POSTS_COLUMNS)),
        annotations=pd.DataFrame(rows, columns=list(ANNOTATIONS_COLUMNS)).astype(
            {"status": "int64"}
        ),
    )


def write_corpus(
    profile: str | CorpusProfile, out_dir: str | Path, seed: int | None = None
) -> tuple[Path, Path]:
    """Generate a corpus and write ``posts.csv`` and ``annotations.csv`` into ``out_dir``.

    Args:
        profile: A profile name or :class:`CorpusProfile`.
        out_dir: Folder to write into; created if missing.
        seed: Random seed; ``None`` uses the profile's own.

    Returns:
        ``(posts_path, annotations_path)``, ready for
        :func:`~psy_agents_noaug.data.redsm5.load_redsm5`.

    Raises:
        ValueError: Unknown profile name.
    """
    corpus = generate(profile, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    posts_path, annotations_path = out / POSTS_FILE, out / ANNOTATIONS_FILE
    corpus.posts.to_csv(posts_path, index=False, encoding="utf-8", lineterminator="\n")
    corpus.annotations.to_csv(annotations_path, index=False, encoding="utf-8", lineterminator="\n")
    return posts_path, annotations_path


def _write(plan: PostPlan, profile: CorpusProfile, seed: int) -> ComposedPost:
    # Each post has its own generator, so one post's text never shifts another's.
    return compose_post(plan, random.Random(f"{profile.name}/{seed}/{plan.post_id}"))
