"""Start each criterion's head row at its description: a zero-shot classifier to refine.

Sentence encoders such as all-MiniLM-L6-v2 are trained so that the mean-pooled vectors of
texts with similar meaning point the same way. The classifier pools each sentence the same
way, so a head row set to the (normalised) vector of a criterion's description scores a
sentence by its cosine to that description: before any training step, a sentence about
sleeping badly already scores highest for the sleep criterion. Training then refines that
start instead of climbing out of the all-negative base rate first (one epoch of
fine-tuning gets most of the way, where a random head is still near the base rate).

Only the ``multilabel`` framing has a head row per criterion; the ``pair`` framing keeps
its random head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from psy_agents_noaug.models.classifier import CriteriaClassifier

__all__ = ["HEAD_INITS", "init_head_from_descriptions"]

HEAD_INITS = ("descriptions", "random")
#: Logit per unit of cosine: a sentence at cosine 1 scores about SCALE * (1 - COSINE_AT_HALF).
SCALE = 10.0
#: The cosine to a description at which a sentence starts at probability 0.5.
COSINE_AT_HALF = 0.3


@torch.no_grad()
def init_head_from_descriptions(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    descriptions: Sequence[str],
) -> None:
    """Set head row ``c`` to description ``c``'s direction, scaled so that its logit is
    ``SCALE * (cosine - COSINE_AT_HALF)`` for a sentence vector of typical length."""
    if model.framing != "multilabel" or len(descriptions) != model.n_criteria:
        return
    batch = tokenizer(list(descriptions), padding=True, truncation=True, return_tensors="pt")
    was_training = model.training
    model.eval()
    hidden = model.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    model.train(was_training)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    vectors = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    lengths = vectors.norm(dim=1, keepdim=True).clamp(min=1e-6)
    typical = lengths.mean()  # sentence vectors are about this long: cosine from a dot
    model.head.weight.copy_(SCALE * vectors / lengths / typical)
    model.head.bias.fill_(-SCALE * COSINE_AT_HALF)
