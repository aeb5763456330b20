"""Log a PyTorch model to MLflow and register it (the spec's ``register_model``).

Two ideas shape this module:

* MLflow 3 saves PyTorch models in the ``pt2`` (``torch.export``) format by default,
  which needs an input example to trace the graph. We always have one: the
  caller's explicit ``input_example``, or a synthetic tensor shaped like
  ``sample_input``, or one derived from the model's first layer. Only when none
  can be found do we fall back to the ``pickle`` format, which needs none.
* Real posts are sensitive. A ``sample_input`` (for example real ``input_ids``)
  is used only for its shape and dtype; the example stored with the model is
  synthetic unless the caller passes ``input_example`` explicitly.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec
from torch import nn

from psy_agents_noaug.registry.versions import (
    canonical_stage,
    check_aliases,
    promote_model_version,
)

_logger = logging.getLogger(__name__)

SERIALIZATION_FORMATS: tuple[str, ...] = ("pt2", "pickle")

_EXAMPLE_BATCH = 2  # > 1, or torch.export specialises the batch dimension to a constant 1
_EXAMPLE_SEQ_LEN = 8
_SEED = 0


def save_model_to_mlflow(
    model: nn.Module,
    artifact_path: str = "model",
    sample_input: torch.Tensor | np.ndarray | None = None,
    signature: ModelSignature | None = None,
    registered_model_name: str | None = None,
    *,
    input_example: torch.Tensor | np.ndarray | None = None,
    serialization_format: str | None = None,
    pip_requirements: list[str] | None = None,
) -> ModelInfo:
    """Log a PyTorch model to MLflow with a signature and a (synthetic) input example.

    Logged as an MLflow 3 logged model: linked to the active run when there is
    one (none is started otherwise), loadable by ``info.model_uri`` (``models:/<model_id>``).

    Args:
        model: The model; it is exported on CPU in eval mode (its own mode and
            device are left as they were).
        artifact_path: Name of the logged model.
        sample_input: One real input (a tensor or array, e.g. ``input_ids[:1]``).
            Only its shape, dtype and value range are used: the stored example
            is synthetic, so no real post or its token ids reach the store.
        signature: Explicit signature; inferred from the example when ``None``.
        registered_model_name: Also register the model under this name.
        input_example: An example to store as is (your explicit choice to
            store it); it is also used for tracing.
        serialization_format: ``"pt2"`` (safe, traced graph) or ``"pickle"``;
            ``None`` picks ``"pt2"`` when an example exists, else ``"pickle"``.
        pip_requirements: Requirements to record; defaults to pinned torch
            (plus cloudpickle for ``pickle``), which skips MLflow's slow inference.

    Returns:
        MLflow's :class:`~mlflow.models.model.ModelInfo` (``model_uri``, ``run_id``…).

    Raises:
        ValueError: Unknown ``serialization_format``, or ``"pt2"`` with no example
            to trace, or a ``sample_input``/``input_example`` that is not a tensor/array.

    Example:
        >>> with mlflow.start_run():  # doctest: +SKIP
        ...     info = save_model_to_mlflow(torch.nn.Linear(10, 2))
        >>> mlflow.pytorch.load_model(info.model_uri)(torch.ones(3, 10)).shape  # doctest: +SKIP
        torch.Size([3, 2])
    """
    if serialization_format is not None and serialization_format not in SERIALIZATION_FORMATS:
        raise ValueError(
            f"serialization_format must be one of {SERIALIZATION_FORMATS} or None, "
            f"got {serialization_format!r}"
        )
    with _exportable(model) as export_model:
        if input_example is not None:
            example: np.ndarray | None = _as_array(input_example, "input_example")
        elif sample_input is not None:
            example = synthetic_like(_as_array(sample_input, "sample_input"))
        else:
            example = derive_example(export_model)
        fmt = serialization_format or ("pt2" if example is not None else "pickle")
        if fmt == "pt2" and example is None:
            raise ValueError(
                "serialization_format='pt2' traces the model and needs an example: pass "
                "sample_input or input_example, or use serialization_format='pickle'"
            )
        if example is None and serialization_format is None:
            _logger.warning(
                "no input example for %s (pass sample_input): saving it in the 'pickle' "
                "format, which needs none",
                type(model).__name__,
            )
        if signature is None and example is not None:
            signature = infer_tensor_signature(export_model, example)
        return mlflow.pytorch.log_model(
            export_model,
            name=artifact_path,
            input_example=example,
            signature=signature,
            serialization_format=fmt,
            registered_model_name=registered_model_name,
            pip_requirements=pip_requirements or _default_requirements(fmt),
        )


def register_model(
    model: nn.Module,
    model_name: str,
    sample_input: torch.Tensor | np.ndarray | None = None,
    stage: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    *,
    archive_existing: bool = True,
    artifact_path: str = "model",
    input_example: torch.Tensor | np.ndarray | None = None,
    serialization_format: str | None = None,
) -> ModelVersion:
    """Log ``model`` and register it as a new version of ``model_name`` in the Model Registry.

    Works inside an active run (the version links to it) and outside one (the
    logged model then belongs to the active experiment only).

    ``stage`` sets the legacy registry stage, which MLflow has deprecated but
    still shows in its UI; the ``FutureWarning`` MLflow raises for it is
    silenced around that one call only. The matching lowercase alias
    (``staging``, ``production``) is set too, so ``models:/<name>@production``
    always loads the newest Production version.

    Args:
        model: The trained model.
        model_name: Registered model name (created on first use).
        sample_input: One real input, used for the signature only (see
            :func:`save_model_to_mlflow`); the stored example is synthetic.
        stage: ``"Staging"``, ``"Production"``, ``"Archived"`` (any case) or ``None``.
        tags: Tags for the new version (values are stored as strings).
        description: Description of the new version.
        aliases: Extra aliases to point at the new version.
        archive_existing: With stage Staging/Production, move the versions
            already in that stage to Archived, so stage and alias agree.
        artifact_path: Name of the logged model.
        input_example: An example to store as is (see :func:`save_model_to_mlflow`).
        serialization_format: See :func:`save_model_to_mlflow`.

    Returns:
        The new :class:`~mlflow.entities.model_registry.ModelVersion`, read back
        after its stage, aliases, tags and description were set.

    Raises:
        ValueError: Unknown ``stage``, an empty ``model_name`` or a bad alias.

    Example:
        >>> mlflow.set_tracking_uri("sqlite:///mlflow.db")  # doctest: +SKIP
        >>> with mlflow.start_run():  # doctest: +SKIP
        ...     mv = register_model(torch.nn.Linear(10, 2), "test_model", stage="Staging")
        >>> mlflow.pytorch.load_model("models:/test_model@staging")  # doctest: +SKIP
    """
    canonical = canonical_stage(stage)
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    alias_list = check_aliases(aliases)
    info = save_model_to_mlflow(
        model,
        artifact_path,
        sample_input=sample_input,
        input_example=input_example,
        serialization_format=serialization_format,
    )
    version = mlflow.register_model(info.model_uri, model_name)
    return promote_model_version(
        model_name,
        version.version,
        stage=canonical,
        tags=tags,
        description=description,
        aliases=alias_list,
        archive_existing=archive_existing,
    )


def synthetic_like(sample: np.ndarray) -> np.ndarray:
    """A made-up array with ``sample``'s dtype, trailing shape and value range.

    The batch dimension becomes 2 (``torch.export`` fixes size-1 dimensions),
    integer arrays of rank ≥ 2 (token ids) get a sequence length of at least 2,
    and the values are drawn at random, so nothing of the real input survives
    except its shape, dtype and range.
    """
    rng = np.random.default_rng(_SEED)
    shape = [_EXAMPLE_BATCH, *sample.shape[1:]] if sample.ndim else [_EXAMPLE_BATCH]
    if np.issubdtype(sample.dtype, np.integer) and sample.ndim >= 2:
        shape[1] = max(shape[1], 2)
    if sample.dtype == np.bool_:
        return np.zeros(shape, dtype=np.bool_)
    if np.issubdtype(sample.dtype, np.integer):
        low, high = (int(sample.min()), int(sample.max())) if sample.size else (0, 1)
        return rng.integers(low, high, size=shape, endpoint=True).astype(sample.dtype)
    return rng.standard_normal(shape).astype(sample.dtype)


def derive_example(model: nn.Module) -> np.ndarray | None:
    """A synthetic input from the model's first layer, or ``None`` when it cannot tell.

    ``nn.Linear`` → floats ``[2, in_features]``; ``nn.Embedding`` (e.g. a text
    encoder) → token ids ``[2, 8]``. The example is kept only if the model
    accepts it.
    """
    first = next(
        (m for m in model.modules() if not list(m.children()) and list(m.parameters(False))),
        None,
    )
    rng = np.random.default_rng(_SEED)
    if isinstance(first, nn.Linear) and first.weight.dtype in (torch.float32, torch.float64):
        dtype = np.float32 if first.weight.dtype == torch.float32 else np.float64
        example = rng.standard_normal((_EXAMPLE_BATCH, first.in_features)).astype(dtype)
    elif isinstance(first, nn.Embedding):
        size = (_EXAMPLE_BATCH, _EXAMPLE_SEQ_LEN)
        example = rng.integers(0, first.num_embeddings, size=size).astype(np.int64)
    else:
        return None
    try:
        with torch.no_grad():
            model(torch.from_numpy(example))
    except Exception as exc:  # any failure means "this guess is not a valid input"
        _logger.info("derived example %s rejected by the model: %s", example.shape, exc)
        return None
    return example


def infer_tensor_signature(model: nn.Module, example: np.ndarray) -> ModelSignature:
    """Tensor signature with a variable batch size (and sequence length for token ids)."""
    dynamic = [0, 1] if np.issubdtype(example.dtype, np.integer) and example.ndim >= 2 else [0]
    in_shape = tuple(-1 if i in dynamic else d for i, d in enumerate(example.shape))
    inputs = Schema([TensorSpec(example.dtype, in_shape)])
    with torch.no_grad():
        output = model(torch.from_numpy(example))
    if not isinstance(output, torch.Tensor):
        return ModelSignature(inputs=inputs)
    out = output.detach().cpu().numpy()
    return ModelSignature(
        inputs=inputs, outputs=Schema([TensorSpec(out.dtype, (-1, *out.shape[1:]))])
    )


def _as_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ValueError(
        f"{name} must be a torch.Tensor or numpy.ndarray (e.g. batch['input_ids'][:1]), "
        f"got {type(value).__name__}"
    )


def _default_requirements(fmt: str) -> list[str]:
    """Pinned torch (without a local tag like +cpu, so pip can install it)."""
    names = ["torch", "cloudpickle"] if fmt == "pickle" else ["torch"]
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in names]


@contextmanager
def _exportable(model: nn.Module) -> Iterator[nn.Module]:
    """The model on CPU in eval mode; the caller's model keeps its own mode and device."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    target = model if on_cpu else copy.deepcopy(model).cpu()
    was_training = target.training
    target.eval()
    try:
        yield target
    finally:
        target.train(was_training)
