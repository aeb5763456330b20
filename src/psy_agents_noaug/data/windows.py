"""Whole posts as encoder windows: every token of a post is read, at a cost linear in its length.

A post is tokenized once, its tokens are assigned to sentences
(:mod:`~psy_agents_noaug.data.sentences`), and whole sentences are packed into windows of
at most the encoder's ``max_length`` (special tokens, and in the pair framing the
criterion's description, included). A sentence longer than a window is split across
windows. With ``overlap`` > 0 a window starts with the last sentences of the one before,
so a sentence near a boundary is also read with what came before it. Only a pathological
post hits ``max_windows``: the rest of it is cut, and counted (``cut``).

The model pools each sentence's token states (across every window it appears in) and
scores the sentence; :class:`InputTemplate` adds the special tokens of any Hugging Face
tokenizer around a window's tokens without re-tokenizing them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psy_agents_noaug.data.sentences import Span, sentence_spans

__all__ = ["InputTemplate", "WindowedPost", "window_post"]


@dataclass(frozen=True)
class WindowedPost:
    """A post cut into windows of whole sentences.

    Attributes:
        windows: Content token ids of each window (no special tokens).
        token_sentence: For each window, the post's sentence index of each of its tokens.
        sentences: The character span of each sentence in the post.
        n_tokens: Content tokens in the whole post.
        n_seen: Distinct content tokens that are in some window (< n_tokens if cut).
        cut: The window cap cut the post.
        n_known: Content tokens other than the tokenizer's unknown token: 0 for a post
            of emoji or symbols the vocabulary lacks (or characters it drops).
    """

    windows: tuple[tuple[int, ...], ...]
    token_sentence: tuple[tuple[int, ...], ...]
    sentences: tuple[Span, ...]
    n_tokens: int
    n_seen: int
    cut: bool
    n_known: int = 0


def window_post(
    tokenizer: Any, text: str, *, budget: int, max_windows: int, overlap: int = 1
) -> WindowedPost:
    """Cut ``text`` into windows of at most ``budget`` content tokens.

    Args:
        tokenizer: A fast Hugging Face tokenizer (it gives character offsets).
        text: The post.
        budget: Content tokens per window (``max_length`` minus the special tokens and,
            in the pair framing, the criterion).
        max_windows: Windows kept per post; the rest of a longer post is cut.
        overlap: Sentences a window repeats from the one before (0: none).

    Raises:
        ValueError: ``budget`` or ``max_windows`` is not positive, ``overlap`` negative.
    """
    if budget < 1 or max_windows < 1 or overlap < 0:
        raise ValueError(
            f"budget and max_windows must be >= 1 and overlap >= 0, got budget={budget}, "
            f"max_windows={max_windows}, overlap={overlap}"
        )
    spans = sentence_spans(text)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids: list[int] = list(encoded["input_ids"])
    starts = [a for a, _ in spans]
    owner = [max(0, bisect.bisect_right(starts, a) - 1) for a, _ in encoded["offset_mapping"]]
    pieces = _pieces(owner, budget)
    packed = _pack(pieces, budget, overlap)
    cut = len(packed) > max_windows
    packed = packed[:max_windows] or [[]]  # no token at all: one empty window, still a post
    seen = {i for window in packed for a, b in window for i in range(a, b)}
    return WindowedPost(
        windows=tuple(tuple(ids[i] for a, b in w for i in range(a, b)) for w in packed),
        token_sentence=tuple(tuple(owner[i] for a, b in w for i in range(a, b)) for w in packed),
        sentences=tuple(spans),
        n_tokens=len(ids),
        n_seen=len(seen),
        cut=cut,
        n_known=sum(1 for i in ids if i != tokenizer.unk_token_id),
    )


def _pieces(owner: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Token ranges of whole sentences, a sentence longer than ``budget`` split in parts."""
    pieces: list[tuple[int, int]] = []
    start = 0
    for end in range(1, len(owner) + 1):
        if end == len(owner) or owner[end] != owner[start]:
            pieces.extend((a, min(a + budget, end)) for a in range(start, end, budget))
            start = end
    return pieces


def _pack(pieces: list[tuple[int, int]], budget: int, overlap: int) -> list[list[tuple[int, int]]]:
    """Greedy windows of whole pieces; each new one repeats up to ``overlap`` pieces."""
    windows: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size = 0
    for piece in pieces:
        length = piece[1] - piece[0]
        if current and size + length > budget:
            windows.append(current)
            carry = current[-overlap:] if overlap else []
            carried = sum(b - a for a, b in carry)
            if carried > budget // 2 or carried + length > budget:
                carry, carried = [], 0  # context must not crowd out the new text
            current, size = list(carry), carried
        current.append(piece)
        size += length
    if current:
        windows.append(current)
    return windows


@dataclass(frozen=True)
class InputTemplate:
    """The special tokens a tokenizer puts around one sequence, or a pair of them.

    Read once from the tokenizer itself (``[CLS] a [SEP] b [SEP]`` for BERT, ``<s> a </s>
    </s> b </s>`` for RoBERTa), then applied to token ids without re-tokenizing.
    """

    parts: tuple[tuple[int, ...], ...]  # specials before a, (between a and b,) after
    types: tuple[int, ...]  # token type of: each part, a, (b)
    pair: bool

    @classmethod
    def of(cls, tokenizer: Any, *, pair: bool) -> InputTemplate:
        probe = tokenizer("a", add_special_tokens=False)["input_ids"]
        if len(probe) != 1:
            raise ValueError("the tokenizer does not read 'a' as one token")
        texts = ("a", "a") if pair else ("a",)
        built = tokenizer(*texts, return_special_tokens_mask=True, return_token_type_ids=True)
        ids, mask = built["input_ids"], built["special_tokens_mask"]
        kinds = built.get("token_type_ids") or [0] * len(ids)
        parts: list[tuple[int, ...]] = [()]
        content_types = []
        types = []
        for token, special, kind in zip(ids, mask, kinds, strict=True):
            if special:
                parts[-1] = (*parts[-1], token)
                if len(parts[-1]) == 1:
                    types.append(kind)
            else:
                content_types.append(kind)
                parts.append(())
        while len(types) < len(parts):
            types.append(types[-1] if types else 0)
        return cls(tuple(parts), (*types, *content_types), pair)

    def build(self, a: Sequence[int], b: Sequence[int] = ()) -> tuple[list[int], list[int], int]:
        """(input ids, token type ids, offset of ``a``'s first token) for one window."""
        segments = [a, b] if self.pair else [a]
        ids: list[int] = list(self.parts[0])
        types = [self.types[0]] * len(self.parts[0])
        offset = len(ids)
        n_parts = len(self.parts)
        for index, segment in enumerate(segments):
            ids.extend(segment)
            types.extend([self.types[n_parts + index]] * len(segment))
            after = self.parts[index + 1]
            ids.extend(after)
            types.extend([self.types[index + 1]] * len(after))
        return ids, types, offset

    @property
    def n_special(self) -> int:
        return sum(len(p) for p in self.parts)
