"""Build the criteria classifier and its tokenizer from the ``model`` config group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import AutoModel, PreTrainedTokenizerBase

from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.models.encoders import encoder_config, load_encoder, load_tokenizer
from psy_agents_noaug.models.head_init import init_head_from_descriptions

__all__ = ["build_model", "freeze_bottom_layers", "model_from_checkpoint"]


def _get(node: Any, key: str, default: Any = None) -> Any:
    if isinstance(node, Mapping):
        return node.get(key, default)
    return getattr(node, key, default)


def _classifier(encoder: Any, model_cfg: Any) -> CriteriaClassifier:
    return CriteriaClassifier(
        encoder,
        len(CRITERIA),
        framing=str(_get(model_cfg, "framing", "multilabel")),
        aggregation=str(_get(model_cfg, "aggregation", "max")),
        dropout=float(_get(model_cfg, "dropout", 0.1)),
    )


def build_model(
    model_cfg: Any, *, seed: int | None = None
) -> tuple[CriteriaClassifier, PreTrainedTokenizerBase]:
    """The classifier (pretrained encoder weights from disk) and its tokenizer.

    With ``head_init: descriptions`` the head starts as a zero-shot classifier (each
    criterion's row at its description; see :mod:`psy_agents_noaug.models.head_init`).
    """
    name = str(_get(model_cfg, "encoder_name"))
    model, tokenizer = _classifier(load_encoder(name, seed=seed), model_cfg), load_tokenizer(name)
    if str(_get(model_cfg, "head_init", "random")) == "descriptions":
        init_head_from_descriptions(model, tokenizer, [c.description for c in CRITERIA])
    freeze_bottom_layers(model.encoder, int(_get(model_cfg, "frozen_layers", 0) or 0))
    return model, tokenizer


def freeze_bottom_layers(encoder: Any, n_layers: int) -> None:
    """Keep the embeddings and the bottom ``n_layers`` transformer layers as pretrained.

    The lower layers hold general language; the criteria are learned on top. On a small
    corpus that keeps more of what pretraining knew, and each step skips their gradients.

    Raises:
        ConfigError: More layers than the encoder has, or an encoder without
            ``embeddings`` and ``encoder.layer`` (BERT, RoBERTa, DeBERTa and MiniLM have them).
    """
    from psy_agents_noaug.config import ConfigError

    if n_layers <= 0:
        return
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    embeddings = getattr(encoder, "embeddings", None)
    if layers is None or embeddings is None:
        raise ConfigError(
            f"model.frozen_layers={n_layers}: this encoder ({type(encoder).__name__}) has no "
            "embeddings/encoder.layer to freeze; use model.frozen_layers=0"
        )
    if n_layers > len(layers):
        raise ConfigError(
            f"model.frozen_layers={n_layers} but the encoder has {len(layers)} layers; use at "
            f"most {len(layers)}"
        )
    for module in (embeddings, *layers[:n_layers]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def model_from_checkpoint(checkpoint: Mapping[str, Any]) -> CriteriaClassifier:
    """The classifier of a checkpoint: the encoder built from its config, then its weights.

    Raises:
        ValueError: The checkpoint's weights do not fit the model its config describes.
    """
    model_cfg = checkpoint["config"]["model"]
    model = _classifier(AutoModel.from_config(encoder_config(model_cfg["encoder_name"])), model_cfg)
    missing, unexpected = model.load_state_dict(checkpoint["model_state_dict"], strict=False)
    bad = [k for k in missing if not k.startswith("encoder.pooler.")] + list(unexpected)
    if bad:
        raise ValueError(
            f"checkpoint weights do not match a {model_cfg['encoder_name']} criteria "
            f"classifier: {bad[:10]}"
        )
    return model.eval()
