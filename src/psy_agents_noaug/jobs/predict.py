"""The `predict` job: a CSV of posts in, per-criterion decisions and their evidence out.

The output holds ids, probabilities, thresholds, 0/1 decisions and, for each positive
decision, the sentence that carried it (its index in the post and its character offsets
in the input text), never the post text. Rows without text are left out, and counted.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from psy_agents_noaug.models.serving import OUTPUT_COLUMNS as MODEL_OUTPUT_COLUMNS

INPUT_COLUMNS: tuple[str, ...] = ("post_id", "text", "criterion_id")
"""Columns read from the input CSV: ``text`` is required, the others optional."""

# The served model's columns, less the criterion's name (the id says it; one row per
# (post, criterion) keeps the file small).
OUTPUT_COLUMNS: tuple[str, ...] = tuple(c for c in MODEL_OUTPUT_COLUMNS if c != "criterion_name")

log = logging.getLogger(__name__)


def predict_file(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    tracking_uri: str | None = None,
    *,
    threshold: float | None = None,
) -> Path:
    """Score every post of a CSV against the criteria with a logged or registered model.

    Args:
        model_uri: Any MLflow model URI of a criteria pyfunc, e.g.
            ``models:/criteria_classifier@production``, ``models:/criteria_classifier/3``,
            ``runs:/<run_id>/model`` or a local folder.
        input_path: CSV with ``post_id,text`` (optionally ``criterion_id`` to score
            one criterion per row). All values are read as strings.
        output_path: CSV to write: :data:`OUTPUT_COLUMNS` (evidence -1 for a negative).
        tracking_uri: The store (and registry) to resolve ``models:/``/``runs:/`` URIs
            in; ``None`` uses MLflow's current one.
        threshold: Decision threshold; ``None`` uses the one stored with the model.

    Returns:
        The path written.

    Raises:
        ValueError: The input file is missing, has no ``text`` column, or the
            model does not return per-criterion predictions.

    Example:
        >>> predict_file("models:/criteria_classifier@production", "posts.csv",  # doctest: +SKIP
        ...              "predictions.csv", tracking_uri="sqlite:///mlflow.db")
        PosixPath('predictions.csv')
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise ValueError(f"input file {input_path} does not exist (expected a CSV: post_id,text)")
    posts = pd.read_csv(input_path, dtype=str, keep_default_na=False)
    if "text" not in posts.columns:
        raise ValueError(
            f"{input_path} needs a 'text' column (and usually 'post_id'); "
            f"got columns {list(posts.columns)}"
        )
    posts = posts[[c for c in INPUT_COLUMNS if c in posts.columns]]
    empty = posts["text"].str.strip() == ""
    if empty.all():
        raise ValueError(f"{input_path} has no row with text")
    if empty.any():
        rows = [int(i) + 2 for i in posts.index[empty][:10]]  # file lines, header = 1
        log.warning("%d row(s) of %s have no text and are left out (lines %s)",
                    int(empty.sum()), input_path, rows)  # fmt: skip
        posts = posts[~empty]
    params = None if threshold is None else {"threshold": float(threshold)}
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=tmp,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        model = mlflow.pyfunc.load_model(local)
        predictions = pd.DataFrame(model.predict(posts, params=params))
    missing = [c for c in OUTPUT_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"model {model_uri} returned columns {list(predictions.columns)}, not "
            f"{list(OUTPUT_COLUMNS)}: is it a criteria model (log_criteria_model)?"
        )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    predictions[list(OUTPUT_COLUMNS)].to_csv(output_path, index=False)
    return output_path
