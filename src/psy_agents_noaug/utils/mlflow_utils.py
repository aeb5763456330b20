"""The spec's path for model saving and the Model Registry (code: :mod:`psy_agents_noaug.registry`).

Example (the spec's verification step 6):
    >>> from psy_agents_noaug.utils.mlflow_utils import register_model  # doctest: +SKIP
    >>> with mlflow.start_run():  # doctest: +SKIP
    ...     register_model(torch.nn.Linear(10, 2), "test_model", stage="Staging")
"""

from psy_agents_noaug.registry import (
    SERIALIZATION_FORMATS,
    STAGE_ALIASES,
    STAGES,
    canonical_stage,
    derive_example,
    infer_tensor_signature,
    promote_model_version,
    register_logged_model,
    register_model,
    save_model_to_mlflow,
    synthetic_like,
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
