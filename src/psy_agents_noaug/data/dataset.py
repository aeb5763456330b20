"""Posts as PyTorch data: every post windowed once, batches of whole posts.

A batch holds whole posts, so each post's windows, sentences and labels travel together:

* ``input_ids``/``attention_mask`` (and ``token_type_ids``): one row per window (pair
  framing: per window and criterion), padded to the batch's longest row;
* ``token_sentence``: each token's sentence, numbered across the batch (-1: special or
  padding), which is how the model pools sentences and points at evidence;
* ``sentence_post``: each sentence's post in the batch; ``n_posts``, ``max_sentences``;
* ``labels``: ``{"posts": [P, 9], "sentences": [S, 9]}`` (float 0/1).

Two framings share this: ``multilabel`` (one encoder pass per window, a score per
criterion; the default) and ``pair`` (each window paired with each criterion's
description: nine passes per window, a score each).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from psy_agents_noaug.data.criteria import CRITERIA, Criterion
from psy_agents_noaug.data.windows import InputTemplate, WindowedPost, window_post

__all__ = [
    "FRAMINGS",
    "EncodingSpec",
    "PostWindowsDataset",
    "WindowCollator",
    "WindowStats",
    "build_dataloaders",
]

FRAMINGS = ("multilabel", "pair")


@dataclass(frozen=True)
class EncodingSpec:
    """How posts become encoder inputs (from the ``model`` and ``data`` config).

    Attributes:
        max_length: Tokens per encoder row, special tokens (and the criterion) included.
        max_windows: Windows kept per post (a longer post is cut, and counted).
        overlap: Sentences a window repeats from the one before.
        framing: ``multilabel`` or ``pair``.
    """

    max_length: int = 128
    max_windows: int = 128
    overlap: int = 1
    framing: str = "multilabel"

    def __post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {self.framing!r}")


@dataclass(frozen=True)
class WindowStats:
    """What windowing did to a split: logged as ``data/<split>/*`` params."""

    posts: int
    pairs: int
    tokens_p50: float
    tokens_p95: float
    tokens_max: int
    windows_per_post: float
    windows_max: int
    tokens_seen_fraction: float
    posts_cut: int
    #: Posts with no token the tokenizer knows (only emoji or unknown symbols).
    posts_unreadable: int = 0

    def as_params(self, split: str) -> dict[str, str]:
        return {f"data/{split}/{k}": f"{v:g}" for k, v in self.__dict__.items()}


def _budget(template: InputTemplate, spec: EncodingSpec, criterion_ids: Sequence[list[int]]) -> int:
    longest = max((len(c) for c in criterion_ids), default=0) if spec.framing == "pair" else 0
    budget = spec.max_length - template.n_special - longest
    if budget < 8:
        from psy_agents_noaug.config import ConfigError

        raise ConfigError(
            f"model.max_length={spec.max_length} leaves {budget} tokens for the post after the "
            "special tokens" + (" and the criterion" if longest else "") + "; use a larger one"
        )
    return budget


class PostWindowsDataset(Dataset):
    """Posts windowed for the encoder, with post labels and sentence labels.

    Args:
        frame: Columns ``post_id``, ``text``, and for training ``labels`` (nine 0/1) and
            ``evidence`` ((start, end, criterion index) spans); without them, all zero.
        tokenizer: The encoder's fast tokenizer.
        spec: The windowing.
        criteria: The criteria, in output order.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        tokenizer: Any,
        spec: EncodingSpec,
        criteria: Sequence[Criterion] = CRITERIA,
    ) -> None:
        self.spec = spec
        self.criteria = tuple(criteria)
        self.template = InputTemplate.of(tokenizer, pair=spec.framing == "pair")
        self.criterion_ids = [
            list(tokenizer(c.description, add_special_tokens=False)["input_ids"])
            for c in self.criteria
        ]
        budget = _budget(self.template, spec, self.criterion_ids)
        n = len(self.criteria)
        labels = frame["labels"] if "labels" in frame else [[0] * n] * len(frame)
        evidence = frame["evidence"] if "evidence" in frame else [[]] * len(frame)
        self.post_ids = [str(p) for p in frame["post_id"]]
        self.posts: list[WindowedPost] = []
        self.labels: list[list[int]] = []
        self.sentence_labels: list[list[list[int]]] = []
        for text, post_labels, spans in zip(frame["text"], labels, evidence, strict=True):
            post = window_post(
                tokenizer,
                str(text),
                budget=budget,
                max_windows=spec.max_windows,
                overlap=spec.overlap,
            )
            self.posts.append(post)
            self.labels.append([int(v) for v in post_labels])
            self.sentence_labels.append(_sentence_labels(post, spans, n))

    def __len__(self) -> int:
        return len(self.posts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "post": self.posts[index],
            "labels": self.labels[index],
            "sentence_labels": self.sentence_labels[index],
        }

    def stats(self) -> WindowStats:
        tokens = sorted(p.n_tokens for p in self.posts) or [0]
        windows = [len(p.windows) for p in self.posts] or [0]
        total = sum(tokens)
        return WindowStats(
            posts=len(self.posts),
            pairs=len(self.posts) * len(self.criteria),
            tokens_p50=float(statistics.median(tokens)),
            tokens_p95=float(tokens[min(len(tokens) - 1, int(0.95 * len(tokens)))]),
            tokens_max=tokens[-1],
            windows_per_post=round(statistics.fmean(windows), 3),
            windows_max=max(windows),
            tokens_seen_fraction=round(sum(p.n_seen for p in self.posts) / total, 6)
            if total
            else 1.0,
            posts_cut=sum(p.cut for p in self.posts),
            posts_unreadable=sum(p.n_known == 0 for p in self.posts),
        )


def _sentence_labels(
    post: WindowedPost, evidence: Sequence[tuple[int, int, int]], n_criteria: int
) -> list[list[int]]:
    """For each sentence, the criteria whose evidence span overlaps it."""
    out = [[0] * n_criteria for _ in post.sentences]
    for start, end, criterion in evidence:
        for index, (a, b) in enumerate(post.sentences):
            if a < end and b > start:
                out[index][criterion] = 1
    return out


class WindowCollator:
    """Pads a list of dataset items into one batch of encoder rows (see the module doc)."""

    def __init__(self, dataset: PostWindowsDataset, pad_token_id: int) -> None:
        self.template = dataset.template
        self.pair = dataset.spec.framing == "pair"
        self.criterion_ids = dataset.criterion_ids
        self.pad = pad_token_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        rows: list[tuple[list[int], list[int], list[int], int]] = []
        sentence_post: list[int] = []
        first_sentence = 0
        max_sentences = 1
        for post_index, item in enumerate(items):
            post: WindowedPost = item["post"]
            for window, owners in zip(post.windows, post.token_sentence, strict=True):
                criteria = range(len(self.criterion_ids)) if self.pair else [-1]
                for criterion in criteria:
                    extra = self.criterion_ids[criterion] if criterion >= 0 else ()
                    ids, types, offset = self.template.build(window, extra)
                    sentence = [-1] * len(ids)
                    for i, owner in enumerate(owners):
                        sentence[offset + i] = first_sentence + owner
                    rows.append((ids, types, sentence, criterion))
            n_sentences = max(1, len(post.sentences))
            sentence_post.extend([post_index] * n_sentences)
            first_sentence += n_sentences
            max_sentences = max(max_sentences, n_sentences)
        width = max(len(r[0]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        token_sentence = torch.full((len(rows), width), -1, dtype=torch.long)
        for r, (ids, kinds, sentence, _) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            token_types[r, : len(ids)] = torch.tensor(kinds)
            mask[r, : len(ids)] = 1
            token_sentence[r, : len(ids)] = torch.tensor(sentence)
        sentence_labels = [
            labels
            for item in items
            for labels in (item["sentence_labels"] or [[0] * len(item["labels"])])
        ]
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_sentence": token_sentence,
            "sentence_post": torch.tensor(sentence_post, dtype=torch.long),
            "n_posts": len(items),
            "max_sentences": max_sentences,
            "labels": {
                "posts": torch.tensor([item["labels"] for item in items], dtype=torch.float32),
                "sentences": torch.tensor(sentence_labels, dtype=torch.float32),
            },
        }
        if self.pair:
            batch["token_type_ids"] = token_types
            batch["row_criterion"] = torch.tensor([r[3] for r in rows], dtype=torch.long)
        return batch


def build_dataloaders(
    frames: Sequence[pd.DataFrame],
    tokenizer: Any,
    spec: EncodingSpec,
    *,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    num_workers: int = 0,
    shuffle_first: bool = True,
) -> list[DataLoader]:
    """A loader per frame: the first shuffles (seeded; ``shuffle_first``), the others keep
    their order.

    Raises:
        ValueError: A batch size is not positive or ``num_workers`` is negative.
    """
    for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive int, got {value}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    loaders = []
    for index, frame in enumerate(frames):
        dataset = PostWindowsDataset(frame, tokenizer, spec)
        shuffle = index == 0 and shuffle_first
        loaders.append(
            DataLoader(
                dataset,
                batch_size=batch_size if index == 0 and shuffle_first else eval_batch_size,
                shuffle=shuffle,
                generator=generator if shuffle else None,
                collate_fn=WindowCollator(dataset, tokenizer.pad_token_id or 0),
                num_workers=num_workers,
                persistent_workers=num_workers > 0,
            )
        )
    return loaders
