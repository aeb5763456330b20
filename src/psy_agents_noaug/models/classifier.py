"""The criteria classifier: reads every sentence of a post, scores it per criterion.

The encoder reads a post's windows (:mod:`psy_agents_noaug.data.windows`); each sentence's
vector is the mean of its tokens' states, across every window it appears in; a linear
head scores the sentence for each criterion. A post's score for a criterion is the
aggregate of its sentences' scores:

* ``max`` (default): the post shows the criterion if one sentence does. A needle in a
  long post counts as much as in a short one, and the argmax is the evidence sentence.
* ``noisy_or``: the post shows it unless every sentence fails to
  (``1 - prod(1 - p_s)``); many weak sentences add up.
* ``lse``: a smooth max (``log-sum-exp``), between the two.

In the ``pair`` framing the encoder reads each window paired with each criterion's
description and the head gives one score per (sentence, criterion): nine passes per
window instead of one.

Example:
    >>> from psy_agents_noaug.models.encoders import load_encoder
    >>> model = CriteriaClassifier(load_encoder("tiny"), n_criteria=9)
    >>> model.aggregation, model.framing
    ('max', 'multilabel')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

__all__ = ["AGGREGATIONS", "CriteriaClassifier", "CriteriaOutput"]

AGGREGATIONS = ("max", "noisy_or", "lse")
FRAMINGS = ("multilabel", "pair")


#: The score of a sentence the encoder never read (after a post's window cap): it can
#: neither carry a decision nor be evidence.
UNREAD = -30.0


@dataclass
class CriteriaOutput:
    """Post scores (``logits``, ``[posts, criteria]``) and the sentence scores behind them."""

    logits: torch.Tensor
    sentence_logits: torch.Tensor  # [sentences in the batch, criteria]
    sentence_post: torch.Tensor  # [sentences]: the post of each sentence
    sentence_read: torch.Tensor  # [sentences]: False for a sentence cut by the window cap


class CriteriaClassifier(nn.Module):
    """A Hugging Face encoder, sentence pooling, a per-criterion head, post aggregation.

    Args:
        encoder: The encoder (BERT, RoBERTa, MiniLM, …).
        n_criteria: Criteria scored.
        framing: ``multilabel`` (one pass per window) or ``pair`` (a pass per window and
            criterion, the criterion's description after the window).
        aggregation: ``max``, ``noisy_or`` or ``lse`` (see the module doc).
        dropout: Dropout before the head.

    Raises:
        ValueError: An unknown framing or aggregation, or a bad dropout.
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        n_criteria: int = 9,
        *,
        framing: str = "multilabel",
        aggregation: str = "max",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if n_criteria < 1:
            raise ValueError(f"n_criteria must be >= 1, got {n_criteria}")
        self.encoder = encoder
        self.n_criteria = n_criteria
        self.framing = framing
        self.aggregation = aggregation
        self.dropout = nn.Dropout(dropout)
        width = encoder.config.hidden_size
        self.head = nn.Linear(width, 1 if framing == "pair" else n_criteria)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_sentence: torch.Tensor | None = None,
        sentence_post: torch.Tensor | None = None,
        n_posts: int | None = None,
        max_sentences: int | None = None,
        token_type_ids: torch.Tensor | None = None,
        row_criterion: torch.Tensor | None = None,
    ) -> Any:
        """Score a batch of windowed posts (a :class:`CriteriaOutput`).

        Called with ``input_ids`` (and ``attention_mask``) alone, each row is one post of
        one sentence and the result is the logits tensor ``[rows, criteria]``: the form
        ``torch.export`` (and the spec's ``register_model(model, sample_input=...)``) takes.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state  # [rows, tokens, width]
        if token_sentence is None or sentence_post is None or n_posts is None:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled_rows = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(self.dropout(pooled_rows))
        n_sentences = sentence_post.shape[0]
        groups = n_sentences * (self.n_criteria if self.framing == "pair" else 1)
        key = token_sentence
        if self.framing == "pair":
            assert row_criterion is not None, "the pair framing needs row_criterion"
            key = torch.where(
                token_sentence >= 0, token_sentence * self.n_criteria + row_criterion[:, None], -1
            )
        pooled, counts = _segment_mean(hidden, key, groups)  # [groups, width], [groups]
        scores = self.head(self.dropout(pooled))
        sentence_logits = scores.view(n_sentences, self.n_criteria)
        read = counts.view(n_sentences, -1).amax(dim=1) > 0
        sentence_logits = torch.where(read[:, None], sentence_logits, UNREAD)
        logits = self._aggregate(sentence_logits, sentence_post, n_posts, max_sentences or 1)
        return CriteriaOutput(logits, sentence_logits, sentence_post, read)

    def _aggregate(
        self, sentence_logits: torch.Tensor, sentence_post: torch.Tensor, n_posts: int, width: int
    ) -> torch.Tensor:
        """[sentences, criteria] -> [posts, criteria], sentences grouped by their post."""
        starts = torch.zeros(n_posts, dtype=torch.long, device=sentence_post.device)
        counts = torch.bincount(sentence_post, minlength=n_posts)
        starts[1:] = torch.cumsum(counts, 0)[:-1]
        position = torch.arange(sentence_post.shape[0], device=sentence_post.device)
        position = position - starts[sentence_post]
        fill = -math.inf if self.aggregation != "noisy_or" else 0.0
        dense = sentence_logits.new_full((n_posts, width, self.n_criteria), fill)
        if self.aggregation == "noisy_or":
            # log P(no sentence shows it) = sum log(1 - p_s); the post's logit from that.
            dense = dense.index_put((sentence_post, position), nn.functional.logsigmoid(
                -sentence_logits
            ))  # fmt: skip
            log_none = dense.sum(dim=1).clamp(max=-1e-6)
            return torch.log(-torch.expm1(log_none)) - log_none
        dense = dense.index_put((sentence_post, position), sentence_logits)
        if self.aggregation == "lse":
            return torch.logsumexp(dense, dim=1)
        return dense.amax(dim=1)


def _segment_mean(
    hidden: torch.Tensor, key: torch.Tensor, groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the token states with each key (keys < 0 are left out), and token counts."""
    width = hidden.shape[-1]
    flat_key = key.reshape(-1)
    keep = flat_key >= 0
    states = hidden.reshape(-1, width)[keep]
    index = flat_key[keep]
    sums = hidden.new_zeros((groups, width)).index_add_(0, index, states)
    counts = hidden.new_zeros((groups,)).index_add_(0, index, hidden.new_ones(index.shape))
    return sums / counts.clamp(min=1.0)[:, None], counts
