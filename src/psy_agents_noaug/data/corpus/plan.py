"""What each post of a corpus will be: its symptoms, its length, its theme.

The plan is drawn before any text is written, so the corpus meets its
profile exactly: the number of posts without a symptom, each criterion's
post count, and the length distribution (mean, tail, the one outlier) do
not depend on how the sentences come out.

Posts with a symptom carry one to three criteria. Multi-criterion posts are
drawn first, each criterion weighted by how many of its posts are still
unassigned; whatever is left then goes one per post to the single-criterion
posts, so every count comes out exact.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from psy_agents_noaug.data.corpus.profiles import CorpusProfile
from psy_agents_noaug.data.criteria import CRITERIA

THEMES_WITHOUT_SYMPTOM: tuple[tuple[str, float], ...] = (
    ("support", 0.3),
    ("recovery", 0.2),
    ("question", 0.25),
    ("life", 0.25),
)
"""What a post without a symptom is about: helping someone, getting better, asking, living."""

THREE_SYMPTOM_SHARE = 0.2
"""Of the labels beyond one per post, the share that goes to three-symptom posts."""

_ORDER = {c.symptom: i for i, c in enumerate(CRITERIA)}


@dataclass(frozen=True)
class PostPlan:
    """One post to write.

    Attributes:
        post_id: Its id, ``<profile>_<nnnn>``.
        symptoms: Criterion symptom labels it shows evidence of, in A.1 … A.9 order.
        target_words: How long it should be.
        theme: ``"vent"`` for a post with symptoms, else a theme of
            :data:`THEMES_WITHOUT_SYMPTOM`.
    """

    post_id: str
    symptoms: tuple[str, ...]
    target_words: int
    theme: str


def plan_corpus(profile: CorpusProfile, seed: int) -> list[PostPlan]:
    """Draw the plan of every post of a corpus.

    Args:
        profile: The corpus shape.
        seed: Random seed; the same seed gives the same plan.

    Returns:
        One :class:`PostPlan` per post, in post id order.
    """
    rng = random.Random(f"{profile.name}/{seed}/plan")
    symptom_sets = _assign_symptoms(profile, rng)
    no_symptom: list[tuple[str, ...]] = [() for _ in range(profile.n_no_symptom)]
    posts = symptom_sets + no_symptom
    rng.shuffle(posts)
    lengths = _draw_lengths(profile, posts, rng)
    themes = [t for t, _ in THEMES_WITHOUT_SYMPTOM]
    weights = [w for _, w in THEMES_WITHOUT_SYMPTOM]
    plans = []
    for index, (symptoms, length) in enumerate(zip(posts, lengths, strict=True), 1):
        theme = "vent" if symptoms else rng.choices(themes, weights=weights)[0]
        plans.append(PostPlan(f"{profile.name}_{index:04d}", symptoms, length, theme))
    return plans


def _assign_symptoms(profile: CorpusProfile, rng: random.Random) -> list[tuple[str, ...]]:
    remaining = {c.symptom: profile.positives[c.id] for c in CRITERIA}
    n_posts = profile.n_with_symptom
    extra = sum(remaining.values()) - n_posts
    n_three = min(round(extra * THREE_SYMPTOM_SHARE / 2), extra // 2)
    n_two = extra - 2 * n_three
    if n_two + n_three > n_posts:  # very dense profiles: use more three-symptom posts
        n_three = extra - n_posts
        n_two = extra - 2 * n_three
    posts: list[tuple[str, ...]] = []
    for size in [3] * n_three + [2] * n_two:
        chosen: list[str] = []
        for _ in range(size):
            options = [s for s, n in remaining.items() if n > 0 and s not in chosen]
            pick = rng.choices(options, weights=[remaining[s] for s in options])[0]
            chosen.append(pick)
            remaining[pick] -= 1
        posts.append(tuple(sorted(chosen, key=_ORDER.__getitem__)))
    singles = [s for s, n in remaining.items() for _ in range(n)]
    posts.extend((s,) for s in singles)
    if len(posts) != n_posts:
        raise RuntimeError(f"symptom plan made {len(posts)} posts, expected {n_posts}")
    return posts


def _draw_lengths(
    profile: CorpusProfile, posts: list[tuple[str, ...]], rng: random.Random
) -> list[int]:
    """Target words per post: log-normal, cut, scaled to the profile's mean."""
    mu = math.log(profile.median_words)
    raw = [rng.lognormvariate(mu, profile.sigma) for _ in posts]
    # Posts that carry more criteria tend to be longer.
    raw = [value * (1.0 + 0.2 * max(0, len(s) - 1)) for value, s in zip(raw, posts, strict=True)]
    outlier = -1
    if profile.outlier_words is not None:
        outlier = rng.choice([i for i, s in enumerate(posts) if s])
    n_regular = len(posts) - (outlier >= 0)
    wanted_total = profile.mean_words * len(posts) - (profile.outlier_words or 0)
    wanted_mean = wanted_total / n_regular
    lengths = raw
    for _ in range(8):
        cut = [min(max(v, profile.min_words), profile.max_words) for v in lengths]
        regular = [v for i, v in enumerate(cut) if i != outlier]
        lengths = [v * wanted_mean / (sum(regular) / n_regular) for v in lengths]
    final = [round(min(max(v, profile.min_words), profile.max_words)) for v in lengths]
    if outlier >= 0 and profile.outlier_words is not None:
        final[outlier] = profile.outlier_words
    return final
