"""Post-grouped, reproducible train/validation/test splits.

Splits are made over posts, never over (post, criterion) decisions, so no post's text is
seen in training and judged in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Splits", "split_by_post"]


@dataclass
class Splits:
    """Train, validation and test rows; each post is in exactly one of them."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split_by_post(
    pairs: pd.DataFrame,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
) -> Splits:
    """Split rows into train/val/test by post, reproducibly.

    Post ids are shuffled with ``seed`` and cut by the fractions (rounded to whole
    posts), so all rows of a post land in one split. The result depends only on the set
    of post ids and the seed, not on row order.

    Args:
        pairs: A frame with a ``post_id`` column (posts, or one row per decision).
        val_fraction: Share of posts for validation, in (0, 1).
        test_fraction: Share of posts for test, in (0, 1).
        seed: Seed of the post shuffle.

    Returns:
        :class:`Splits` with the rows of each split in their original order.

    Raises:
        ValueError: A fraction is outside (0, 1), the two add up to 1 or more, or a
            split would get no posts.

    Example:
        >>> pairs = pd.DataFrame({"post_id": [f"p{i}" for i in range(20)], "label": 0})
        >>> splits = split_by_post(pairs, val_fraction=0.2, test_fraction=0.2, seed=0)
        >>> len(splits.train), len(splits.val), len(splits.test)
        (12, 4, 4)
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 to leave posts for training, "
            f"got {val_fraction} + {test_fraction}"
        )
    if "post_id" not in pairs.columns:
        raise ValueError(f"pairs need a 'post_id' column; got columns {list(pairs.columns)}")
    post_ids = np.array(sorted(pairs["post_id"].astype(str).unique()))
    n_posts = len(post_ids)
    n_val = round(n_posts * val_fraction)
    n_test = round(n_posts * test_fraction)
    n_train = n_posts - n_val - n_test
    for name, count, fraction in (
        ("val", n_val, val_fraction),
        ("test", n_test, test_fraction),
        ("train", n_train, 1.0 - val_fraction - test_fraction),
    ):
        if count < 1:
            raise ValueError(
                f"the {name} split would be empty: {n_posts} posts x {fraction:g} rounds to "
                f"{count} posts; use more posts or a larger {name} share"
            )
    shuffled = np.random.default_rng(seed).permutation(post_ids)
    val_ids = set(shuffled[:n_val])
    test_ids = set(shuffled[n_val : n_val + n_test])
    post_col = pairs["post_id"].astype(str)
    in_val = post_col.isin(val_ids)
    in_test = post_col.isin(test_ids)
    return Splits(
        train=pairs[~in_val & ~in_test].reset_index(drop=True),
        val=pairs[in_val].reset_index(drop=True),
        test=pairs[in_test].reset_index(drop=True),
    )
