"""What data a run was trained on, as MLflow dataset inputs: shape and origin, never text.

Each split (train, validation, test) is logged as a dataset input (through the metric
sink, :meth:`~psy_agents_noaug.tracking.sink.MetricSink.log_inputs`): the source file,
a digest (of the files and the split's post ids), the row counts and per-criterion label
counts in the profile, and a schema of ids and labels only. Real posts are health data:
no text, and no token ids, reach the store.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.data.dataset import Dataset

__all__ = ["SplitDataset", "dataset_inputs", "file_digest", "split_digest"]

#: The run's split contexts, as the MLflow UI shows them next to the dataset.
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def file_digest(*paths: Path) -> str:
    """sha256 of the files' bytes (the source data, whatever its split)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def split_digest(source_digest: str, post_ids: Sequence[str]) -> str:
    """8 hex characters naming one split of one source exactly."""
    digest = hashlib.sha256(source_digest.encode())
    for post_id in sorted(post_ids):
        digest.update(post_id.encode() + b"\0")
    return digest.hexdigest()[:8]


class SplitDataset(Dataset):
    """One split as an MLflow dataset: its source, digest, schema and profile.

    Args:
        source: The posts file it was read from.
        name: e.g. ``sample-train``.
        digest: :func:`split_digest`.
        profile: Counts (posts, decisions, positives per criterion, token statistics).
        label_names: The label columns of the schema (the criteria ids).
    """

    def __init__(
        self,
        *,
        source: Path,
        name: str,
        digest: str,
        profile: Mapping[str, Any],
        label_names: Sequence[str],
    ) -> None:
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        self._profile = dict(profile)
        self._label_names = tuple(label_names)
        with warnings.catch_warnings():
            # MLflow registers its local-file source under two schemes ("" and "file") with
            # one class name, and warns that a path could be either; both are the same.
            warnings.filterwarnings("ignore", message="The specified dataset source can be")
            resolved = resolve_dataset_source(str(source.resolve()))
        super().__init__(resolved, name=name, digest=digest)

    def _compute_digest(self) -> str:
        raise NotImplementedError("a SplitDataset is always given its digest")

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    @property
    def schema(self) -> Any:
        from mlflow.types import ColSpec, Schema

        return Schema(
            [ColSpec("string", "post_id"), *(ColSpec("long", n) for n in self._label_names)]
        )

    def to_dict(self) -> dict[str, str]:
        out = super().to_dict()
        out["schema"] = json.dumps({"mlflow_colspec": self.schema.to_dict()})
        out["profile"] = json.dumps(self._profile)
        return out


def dataset_inputs(datasets: Sequence[tuple[Mapping[str, str], str]]) -> list[Any]:
    """MLflow ``DatasetInput`` entities from ``(Dataset.to_dict() fields, context)`` pairs:
    the form in which dataset inputs travel to the metric writer and wait in journals."""
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    return [
        DatasetInput(
            DatasetEntity(
                name=fields["name"],
                digest=fields["digest"],
                source_type=fields["source_type"],
                source=fields["source"],
                schema=fields.get("schema"),
                profile=fields.get("profile"),
            ),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)],
        )
        for fields, context in datasets
    ]
