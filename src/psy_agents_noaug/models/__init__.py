"""Models: a Hugging Face encoder, sentence pooling, a per-criterion head, post aggregation."""

from psy_agents_noaug.models.classifier import CriteriaClassifier, CriteriaOutput
from psy_agents_noaug.models.factory import build_model, model_from_checkpoint

__all__ = ["CriteriaClassifier", "CriteriaOutput", "build_model", "model_from_checkpoint"]
