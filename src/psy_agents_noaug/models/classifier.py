"""Encoder + classification head: the criteria classifier."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

POOLINGS = ("cls", "mean")


class CriteriaClassifier(nn.Module):
    """A Hugging Face encoder with a pooled dropout + linear head.

    Called with the tokenizer's tensors (``input_ids``, ``attention_mask``,
    optionally ``token_type_ids``); returns logits of shape ``[batch, num_labels]``.

    Example:
        >>> from psy_agents_noaug.models.encoders import load_encoder
        >>> model = CriteriaClassifier(load_encoder("tiny"), num_labels=2)
        >>> model(input_ids=torch.tensor([[101, 2023, 102]])).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        num_labels: int = 2,
        *,
        pooling: str = "mean",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.encoder = encoder
        self.pooling = pooling
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        return self.head(self.dropout(pool(hidden, attention_mask, self.pooling)))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence vector from token states: [CLS] or the mask-weighted mean."""
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
