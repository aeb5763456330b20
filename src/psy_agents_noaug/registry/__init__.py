"""Log, register and promote models: the Model Registry side of psy-agents.

``psy_agents_noaug.utils.mlflow_utils`` (the spec's path) re-exports these names.
"""

from __future__ import annotations

from psy_agents_noaug.registry.pytorch import (
    SERIALIZATION_FORMATS,
    derive_example,
    infer_tensor_signature,
    register_model,
    save_model_to_mlflow,
    synthetic_like,
)
from psy_agents_noaug.registry.versions import (
    STAGE_ALIASES,
    STAGES,
    canonical_stage,
    promote_model_version,
    register_logged_model,
)

__all__ = [
    "SERIALIZATION_FORMATS",
    "STAGES",
    "STAGE_ALIASES",
    "canonical_stage",
    "derive_example",
    "infer_tensor_signature",
    "promote_model_version",
    "register_logged_model",
    "register_model",
    "save_model_to_mlflow",
    "synthetic_like",
]
