"""Build (model, tokenizer) from the `model` config group."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.models.encoders import load_encoder, load_tokenizer


def build_model(
    model_cfg: Any, num_labels: int = 2, *, seed: int | None = None
) -> tuple[CriteriaClassifier, PreTrainedTokenizerBase]:
    """The classifier and its tokenizer for `model_cfg` (encoder_name, pooling, dropout)."""
    encoder = load_encoder(model_cfg.encoder_name, seed=seed)
    tokenizer = load_tokenizer(model_cfg.encoder_name)
    model = CriteriaClassifier(
        encoder, num_labels, pooling=model_cfg.pooling, dropout=model_cfg.dropout
    )
    return model, tokenizer
