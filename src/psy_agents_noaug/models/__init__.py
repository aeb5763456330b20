"""Models: a Hugging Face encoder plus a classification head."""

from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.models.factory import build_model

__all__ = ["CriteriaClassifier", "build_model"]
