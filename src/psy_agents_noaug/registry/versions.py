"""Model Registry versions: register a logged model, set its stage, aliases, tags and description.

Registry stages (``Staging``/``Production``/``Archived``) are deprecated in MLflow but
still shown in its UI, so :func:`promote_model_version` sets both the stage and the
matching alias (``@staging``, ``@production``), MLflow's current way to point at "the
production model".
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from psy_agents_noaug.tracking import tags as tags_

STAGES: tuple[str, ...] = ("Staging", "Production", "Archived")
"""Registry stages accepted (case-insensitive)."""

STAGE_ALIASES: dict[str, str] = {"Staging": "staging", "Production": "production"}
"""The alias set alongside each stage; ``Archived`` has none (nothing should point at it)."""


def canonical_stage(stage: str | None) -> str | None:
    """``"production"`` → ``"Production"``; ``None`` stays ``None``.

    Raises:
        ValueError: If ``stage`` is not one of :data:`STAGES`.
    """
    if stage is None:
        return None
    for known in STAGES:
        if isinstance(stage, str) and stage.lower() == known.lower():
            return known
    raise ValueError(f"stage must be one of {', '.join(STAGES)} or None, got {stage!r}")


def register_logged_model(
    model_id: str,
    model_name: str,
    *,
    stage: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    archive_existing: bool = True,
    tracking_uri: str | None = None,
    model_description: str | None = None,
) -> ModelVersion:
    """Register an MLflow 3 logged model (``models:/<model_id>``) and promote it.

    The version points at the logged model itself: one copy of the files, and the logged
    model lists its versions (the ``mlflow.modelVersions`` tag MLflow's UI reads).

    Args:
        model_id: A READY logged model.
        model_name: Registered model name (created on first use).
        stage: See :func:`promote_model_version`.
        tags: Version tags.
        description: Version description.
        aliases: Extra aliases.
        archive_existing: See :func:`promote_model_version`.
        tracking_uri: The store (its registry too); ``None`` uses MLflow's current one.
        model_description: The registered model's description, when it has none yet.

    Raises:
        ValueError: Unknown ``stage``, an empty name, a bad alias, or a model that is not
            READY (its upload failed or was interrupted).
    """
    from mlflow.entities import LoggedModelStatus

    canonical = canonical_stage(stage)
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    alias_list = check_aliases(aliases)
    client = _client(tracking_uri)
    logged = client.get_logged_model(model_id)
    if logged.status != LoggedModelStatus.READY:
        raise ValueError(
            f"logged model {model_id} is {logged.status}, not READY (its upload failed or was "
            "interrupted): only a complete model can be registered"
        )
    _ensure_registered_model(client, model_name, model_description)
    with _process_tracking_uri(tracking_uri):
        version = client.create_model_version(
            model_name, f"models:/{model_id}", run_id=logged.source_run_id, model_id=model_id
        )
    listed = json.loads(logged.tags.get(tags_.MODEL_VERSIONS) or "[]")
    listed.append({"name": model_name, "version": str(version.version)})
    client.set_logged_model_tags(model_id, {tags_.MODEL_VERSIONS: json.dumps(listed)})
    return promote_model_version(
        model_name,
        version.version,
        stage=canonical,
        tags=tags,
        description=description,
        aliases=alias_list,
        archive_existing=archive_existing,
        client=client,
    )


def promote_model_version(
    model_name: str,
    version: str | int,
    *,
    stage: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    archive_existing: bool = True,
    client: MlflowClient | None = None,
) -> ModelVersion:
    """Set a version's description, tags, stage and aliases; read it back.

    The stage alias (``production`` for Production, ``staging`` for Staging)
    moves to this version. The legacy stage transition is deprecated in MLflow;
    its ``FutureWarning`` is silenced for that call only.

    Args:
        model_name: Registered model name.
        version: The version to promote.
        stage: See :func:`register_model`.
        tags: Version tags (values stored as strings).
        description: Version description.
        aliases: Extra aliases for this version.
        archive_existing: With stage Staging/Production, archive the versions already there.
        client: The client to use; ``None`` uses MLflow's current store.

    Returns:
        The version as the registry now has it.

    Raises:
        ValueError: Unknown ``stage`` or a bad alias.
    """
    canonical = canonical_stage(stage)
    alias_list = check_aliases(aliases)
    client = client or MlflowClient()
    version = str(version)
    if description is not None:
        client.update_model_version(model_name, version, description=description)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, version, str(key), str(value))
    if canonical is not None:
        with warnings.catch_warnings():
            # Stages are deprecated (aliases replace them) but still shown in the UI.
            warnings.filterwarnings(
                "ignore", category=FutureWarning, message=r".*transition_model_version_stage"
            )
            client.transition_model_version_stage(
                model_name,
                version,
                canonical,
                archive_existing_versions=archive_existing and canonical in STAGE_ALIASES,
            )
        if canonical in STAGE_ALIASES:
            alias_list = [STAGE_ALIASES[canonical], *alias_list]
    for alias in dict.fromkeys(alias_list):
        client.set_registered_model_alias(model_name, alias, version)
    return client.get_model_version(model_name, version)


def check_aliases(aliases: Iterable[str] | None) -> list[str]:
    if aliases is None:
        return []
    if isinstance(aliases, str):
        aliases = [aliases]
    out = list(aliases)
    bad = [a for a in out if not isinstance(a, str) or not a.strip()]
    if bad:
        raise ValueError(f"aliases must be non-empty strings, got {bad!r}")
    return out


@contextlib.contextmanager
def _process_tracking_uri(tracking_uri: str | None) -> Iterator[None]:
    """MLflow's SQL registry resolves ``models:/<id>`` through the process-wide tracking URI
    (a TODO in its code), not the client's: point it at this store for the call."""
    if tracking_uri is None:
        yield
        return
    before = os.environ.get("MLFLOW_TRACKING_URI")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)


def _client(tracking_uri: str | None) -> MlflowClient:
    if tracking_uri is None:
        return MlflowClient()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _ensure_registered_model(
    client: MlflowClient, name: str, description: str | None = None
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:
        exists = {ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS)}
        if exc.error_code not in exists:
            raise
        if description and not client.get_registered_model(name).description:
            client.update_registered_model(name, description=description)
