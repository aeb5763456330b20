"""Tokenised (post, criterion) pairs for PyTorch, and loaders with dynamic padding.

Pairs are tokenised once, up front, without padding; each batch is padded
only to its own longest example, which on short posts is far less work than
padding everything to ``max_length``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from psy_agents_noaug.data.pairs import Splits

_PAIR_INPUT_COLUMNS = ("text", "criterion_text", "label")


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, post_text: str, criterion_text: str, max_length: int
) -> dict[str, list[int]]:
    """Tokenise one (post, criterion) pair the way the model is trained and served.

    The post comes first and the criterion description second; only the post is
    truncated, so the model always sees the whole criterion.

    Args:
        tokenizer: The encoder's tokenizer.
        post_text: The post.
        criterion_text: The criterion description.
        max_length: Maximum number of tokens, special tokens included.

    Returns:
        ``input_ids``, ``attention_mask`` and, if the tokenizer makes them,
        ``token_type_ids``, as unpadded lists of ints.

    Raises:
        ValueError: ``max_length`` is not a positive int, or too small to hold the
            criterion description and the special tokens.

    Example:
        >>> from psy_agents_noaug.models.encoders import load_tokenizer
        >>> tokenizer = load_tokenizer("tiny")
        >>> encoded = encode_pair(tokenizer, "I sleep all day.", "Sleep problems.", 128)
        >>> sorted(encoded)
        ['attention_mask', 'input_ids', 'token_type_ids']
    """
    return _encode(tokenizer, [post_text], [criterion_text], max_length)[0]


def _encode(
    tokenizer: PreTrainedTokenizerBase,
    post_texts: list[str],
    criterion_texts: list[str],
    max_length: int,
) -> list[dict[str, list[int]]]:
    """Batched :func:`encode_pair`: one fast tokenizer call for many pairs."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    if not post_texts:
        return []
    too_small = (
        f"max_length={max_length} is too small: it cannot hold the criterion description and "
        "the special tokens with room left for the post; use a larger max_length"
    )
    try:
        encoded = tokenizer(
            post_texts, criterion_texts, truncation="only_first", max_length=max_length
        )
    except Exception as exc:  # the Rust tokenizer raises a bare Exception for this
        if "truncat" not in str(exc).lower():
            raise
        raise ValueError(too_small) from exc
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    items = [{key: list(encoded[key][i]) for key in keys} for i in range(len(post_texts))]
    too_long = max((len(item["input_ids"]) for item in items), default=0)
    if too_long > max_length:  # slow tokenizers only warn and return the pair too long
        raise ValueError(too_small)
    return items


class CriteriaPairDataset(Dataset):
    """(post, criterion) pairs tokenised with :func:`encode_pair`, with int labels.

    Items are dicts of lists (``input_ids``, ``attention_mask``, ``token_type_ids``
    when the tokenizer makes them) plus ``labels`` (int); batch them with
    :func:`make_collate_fn`.

    Args:
        pairs: A frame with ``text``, ``criterion_text`` and ``label`` columns, e.g. one
            split from :func:`~psy_agents_noaug.data.pairs.split_by_post`.
        tokenizer: The encoder's tokenizer.
        max_length: Maximum tokens per pair; longer posts are cut.

    Raises:
        ValueError: A column is missing, a label is not 0/1, or ``max_length`` is invalid.

    Example:
        >>> from psy_agents_noaug.models.encoders import load_tokenizer
        >>> frame = pd.DataFrame({"text": ["I cannot sleep."], "criterion_text": ["Sleep."],
        ...                       "label": [1]})
        >>> CriteriaPairDataset(frame, load_tokenizer("tiny"), max_length=32)[0]["labels"]
        1
    """

    def __init__(
        self, pairs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> None:
        missing = [c for c in _PAIR_INPUT_COLUMNS if c not in pairs.columns]
        if missing:
            raise ValueError(
                f"pairs frame lacks column(s) {missing}; it needs {list(_PAIR_INPUT_COLUMNS)} "
                "(build it with build_criteria_pairs)"
            )
        labels = pairs["label"].tolist()
        bad = sorted({repr(v) for v in labels if v not in (0, 1)})
        if bad:
            raise ValueError(f"labels must be 0 or 1, got {', '.join(bad[:5])}")
        self.max_length = max_length
        self._labels = [int(v) for v in labels]
        self._encoded = _encode(
            tokenizer,
            [str(t) for t in pairs["text"]],
            [str(t) for t in pairs["criterion_text"]],
            max_length,
        )

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self._encoded[index], "labels": self._labels[index]}


def make_collate_fn(
    tokenizer: PreTrainedTokenizerBase, *, pad_to_multiple_of: int | None = None
) -> DataCollatorWithPadding:
    """A collate function that pads each batch to its own longest example.

    Args:
        tokenizer: The tokenizer that encoded the items (its pad token is used).
        pad_to_multiple_of: Round the padded length up to a multiple of this
            (8 helps tensor cores on GPU); ``None`` pads to the longest item exactly.

    Returns:
        A picklable callable mapping a list of dataset items to a dict of
        ``torch.long`` tensors, ``labels`` included.

    Example:
        >>> from psy_agents_noaug.models.encoders import load_tokenizer
        >>> collate = make_collate_fn(load_tokenizer("tiny"))
        >>> batch = collate([{"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "labels": 1},
        ...                  {"input_ids": [101, 102], "attention_mask": [1, 1], "labels": 0}])
        >>> tuple(batch["input_ids"].shape), batch["labels"].tolist()
        ((2, 3), [1, 0])
    """
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        raise ValueError(
            f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of}"
        )
    return DataCollatorWithPadding(
        tokenizer, padding="longest", pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
    )


def build_dataloaders(
    splits: Splits,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train, validation and test loaders over the three splits.

    The train loader shuffles with its own generator seeded from ``seed``, so the
    batch order is the same on every run with that seed whatever else draws
    random numbers; the evaluation loaders keep the split order.

    Args:
        splits: Post-grouped splits from :func:`~psy_agents_noaug.data.pairs.split_by_post`.
        tokenizer: The encoder's tokenizer.
        max_length: Maximum tokens per pair.
        batch_size: Training batch size.
        eval_batch_size: Batch size for validation and test.
        seed: Seed of the training shuffle.
        num_workers: DataLoader worker processes (0 loads in the main process).

    Returns:
        ``(train_loader, val_loader, test_loader)``.

    Raises:
        ValueError: A batch size is not positive or ``num_workers`` is negative.
    """
    for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive int, got {value}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    collate = make_collate_fn(tokenizer)
    generator = torch.Generator()
    generator.manual_seed(seed)

    def loader(frame: pd.DataFrame, size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            CriteriaPairDataset(frame, tokenizer, max_length),
            batch_size=size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            collate_fn=collate,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )

    return (
        loader(splits.train, batch_size, True),
        loader(splits.val, eval_batch_size, False),
        loader(splits.test, eval_batch_size, False),
    )
