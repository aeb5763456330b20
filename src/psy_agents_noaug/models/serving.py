"""The criteria classifier as an MLflow pyfunc: posts in, per-criterion probabilities out.

A logged model bundles everything a server needs, and nothing pickled:

* ``weights.pt`` – the classifier's ``state_dict`` (loaded with ``weights_only=True``);
* ``encoder/config.json`` – the encoder's Hugging Face config, so the encoder is
  rebuilt offline with ``AutoModel.from_config`` (no download, no pretrained copy);
* ``tokenizer/`` – the tokenizer files;
* ``criteria_model.json`` – pooling, ``max_length``, decision threshold and the
  criteria definitions the model was trained with.

MLflow loads it "from code" (a three-line file that calls
``mlflow.models.set_model(CriteriaPyfunc())``), not from a pickle. The input
example stored with it is a made-up sentence, never a real post, unless the
caller passes one explicitly.

Example:
    >>> import mlflow, pandas as pd  # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model("models:/criteria_classifier@production")  # doctest: +SKIP
    >>> posts = pd.DataFrame({"post_id": ["p1"], "text": ["I can't sleep."]})  # doctest: +SKIP
    >>> model.predict(posts)  # doctest: +SKIP
      post_id criterion_id       criterion_name  probability  prediction
    0      p1          A.1       Depressed mood     0.12...            0
    ...
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from psy_agents_noaug.data.criteria import CRITERIA, Criterion
from psy_agents_noaug.data.dataset import encode_pair, make_collate_fn
from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.registry.versions import canonical_stage, register_run_artifact

BUNDLE_FORMAT_VERSION = 1
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 32

INPUT_EXAMPLE = pd.DataFrame({"post_id": ["example-1"], "text": ["I have felt low for weeks."]})
"""The stored input example: a made-up sentence, so no real post ever reaches the store."""

OUTPUT_COLUMNS: tuple[str, ...] = (
    "post_id",
    "criterion_id",
    "criterion_name",
    "probability",
    "prediction",
)


def criteria_signature(threshold: float = DEFAULT_THRESHOLD) -> ModelSignature:
    """The pyfunc's I/O: posts in, one row per (post, criterion) out.

    MLflow fills params a request leaves out with their schema defaults, so the
    ``threshold`` default must be the one stored with the model.
    """
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "text"),
                ColSpec("string", "post_id", required=False),
                ColSpec("string", "criterion_id", required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("string", "post_id"),
                ColSpec("string", "criterion_id"),
                ColSpec("string", "criterion_name"),
                ColSpec("double", "probability"),
                ColSpec("long", "prediction"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("threshold", "double", float(threshold)),
                ParamSpec("batch_size", "long", DEFAULT_BATCH_SIZE),
            ]
        ),
    )


_CONFIG_FILE = "criteria_model.json"
_WEIGHTS_FILE = "weights.pt"
_ENCODER_DIR = "encoder"
_TOKENIZER_DIR = "tokenizer"
_BUNDLE = "bundle"
_CODE_FILE = "criteria_pyfunc.py"
_CODE = """\
# Written by psy_agents_noaug.models.serving: MLflow loads this model from code, not a pickle.
import mlflow

from psy_agents_noaug.models.serving import CriteriaPyfunc

mlflow.models.set_model(CriteriaPyfunc())
"""


class CriteriaPredictor:
    """A classifier, its tokenizer and its criteria: turns posts into per-criterion decisions.

    Args:
        model: The trained classifier (used in eval mode, on its current device).
        tokenizer: Its tokenizer.
        criteria: The criteria it was trained on, in output order.
        max_length: Maximum tokens per (post, criterion) pair, as in training.
        threshold: Probability at or above which ``prediction`` is 1.

    Raises:
        ValueError: ``threshold`` outside [0, 1], ``max_length`` < 1 or no criteria.
    """

    def __init__(
        self,
        model: CriteriaClassifier,
        tokenizer: PreTrainedTokenizerBase,
        criteria: Sequence[Criterion] = CRITERIA,
        *,
        max_length: int = 128,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        _check_threshold(threshold)
        if max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if not criteria:
            raise ValueError("criteria must not be empty")
        self.model = model
        self.tokenizer = tokenizer
        self.criteria = tuple(criteria)
        self.max_length = int(max_length)
        self.threshold = float(threshold)
        self._by_id = {c.id: c for c in self.criteria}
        self._collate = make_collate_fn(tokenizer)

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> CriteriaPredictor:
        """Rebuild a predictor from a folder written by :func:`save_bundle` (offline, no pickle).

        Raises:
            ValueError: The folder is not a bundle this version can read.
        """
        bundle = Path(bundle)
        config = json.loads((bundle / _CONFIG_FILE).read_text())
        if config.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise ValueError(
                f"{bundle / _CONFIG_FILE}: format_version {config.get('format_version')!r} "
                f"is not supported (expected {BUNDLE_FORMAT_VERSION})"
            )
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(bundle / _ENCODER_DIR))
        model = CriteriaClassifier(
            encoder,
            int(config["num_labels"]),
            pooling=config["pooling"],
            dropout=float(config["dropout"]),
        )
        state = torch.load(bundle / _WEIGHTS_FILE, map_location="cpu", weights_only=True)
        _load_state(model, state)
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        tokenizer = AutoTokenizer.from_pretrained(bundle / _TOKENIZER_DIR)
        criteria = [Criterion(**c) for c in config["criteria"]]
        return cls(
            model,
            tokenizer,
            criteria,
            max_length=int(config["max_length"]),
            threshold=float(config["threshold"]),
        )

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> pd.DataFrame:
        """Probability and 0/1 decision per (post, criterion).

        Args:
            frame: Column ``text`` (required); ``post_id`` (default: the row
                index as a string); ``criterion_id`` (only that criterion for
                that row; empty or missing means all criteria).
            threshold: Overrides the stored decision threshold.
            batch_size: Pairs per forward pass.

        Returns:
            One row per (post, criterion), in input order then criterion order,
            with columns :data:`OUTPUT_COLUMNS`.

        Raises:
            ValueError: No ``text`` column, an empty text, an unknown criterion
                id, or a bad threshold/batch size.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        _check_threshold(threshold)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        pairs = self._pairs(frame)
        probabilities = self._probabilities([(text, c) for _, text, c in pairs], batch_size)
        return pd.DataFrame(
            {
                "post_id": [p for p, _, _ in pairs],
                "criterion_id": [c.id for _, _, c in pairs],
                "criterion_name": [c.name for _, _, c in pairs],
                "probability": pd.Series(probabilities, dtype="float64"),
                "prediction": pd.Series(
                    [int(p >= threshold) for p in probabilities], dtype="int64"
                ),
            },
            columns=list(OUTPUT_COLUMNS),
        )

    def _pairs(self, frame: pd.DataFrame) -> list[tuple[str, str, Criterion]]:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"input must be a pandas DataFrame, got {type(frame).__name__}")
        if "text" not in frame.columns:
            raise ValueError(
                f"input needs a 'text' column (optional: 'post_id', 'criterion_id'); "
                f"got columns {list(frame.columns)}"
            )
        texts = list(frame["text"])
        empty = [i for i, t in enumerate(texts) if _is_missing(t) or not str(t).strip()]
        if empty:
            raise ValueError(f"'text' is empty in row(s) {empty[:10]}")
        if "post_id" in frame.columns:
            given = zip(frame["post_id"], frame.index, strict=True)
            post_ids = [str(index if _is_missing(p) else p) for p, index in given]
        else:
            post_ids = [str(index) for index in frame.index]
        wanted: list[Any] = (
            list(frame["criterion_id"]) if "criterion_id" in frame.columns else [None] * len(texts)
        )
        pairs: list[tuple[str, str, Criterion]] = []
        for post_id, text, criterion_id in zip(post_ids, texts, wanted, strict=True):
            if _is_missing(criterion_id) or str(criterion_id).strip() == "":
                pairs.extend((post_id, str(text), c) for c in self.criteria)
                continue
            criterion = self._by_id.get(str(criterion_id).strip())
            if criterion is None:
                raise ValueError(
                    f"unknown criterion_id {criterion_id!r}; valid ids: {', '.join(self._by_id)}"
                )
            pairs.append((post_id, str(text), criterion))
        return pairs

    @torch.no_grad()
    def _probabilities(self, pairs: list[tuple[str, Criterion]], batch_size: int) -> list[float]:
        self.model.eval()
        device = next(self.model.parameters()).device
        out: list[float] = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            items = [
                encode_pair(self.tokenizer, text, c.description, self.max_length)
                for text, c in chunk
            ]
            batch = {k: v.to(device) for k, v in self._collate(items).items()}
            logits = self.model(**batch)
            out.extend(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().tolist())
        return out


class CriteriaPyfunc(PythonModel):
    """MLflow wrapper around :class:`CriteriaPredictor`; :func:`criteria_signature` is its I/O."""

    def load_context(self, context: Any) -> None:
        self.predictor = CriteriaPredictor.from_bundle(context.artifacts[_BUNDLE])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        return self.predictor.predict(
            model_input,
            threshold=params.get("threshold"),
            batch_size=int(params.get("batch_size") or DEFAULT_BATCH_SIZE),
        )


@dataclass(frozen=True)
class CriteriaModelInfo:
    """Where :func:`log_criteria_model` put the model, and its registry version if any."""

    model_uri: str
    run_id: str
    artifact_path: str
    model_version: ModelVersion | None = None


def save_bundle(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: Mapping[str, Any],
    path: str | Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    criteria: Sequence[Criterion] = CRITERIA,
) -> Path:
    """Write the files :meth:`CriteriaPredictor.from_bundle` reads (weights, configs, tokenizer).

    Args:
        model: The classifier; pooling, dropout and label count are read from it.
        tokenizer: Its tokenizer.
        model_cfg: The ``model`` config group: ``encoder_name`` and ``max_length``
            are required, ``name`` is recorded when present.
        path: A folder to create.
        threshold: Decision threshold to store.
        criteria: The criteria definitions to store.

    Returns:
        The folder.

    Raises:
        ValueError: A required key is missing from ``model_cfg`` or the threshold is bad.
    """
    _check_threshold(threshold)
    missing = [k for k in ("encoder_name", "max_length") if k not in model_cfg]
    if missing:
        raise ValueError(f"model_cfg lacks {missing}; it needs encoder_name and max_length")
    path = Path(path)
    path.mkdir(parents=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, path / _WEIGHTS_FILE)
    model.encoder.config.save_pretrained(path / _ENCODER_DIR)
    tokenizer.save_pretrained(str(path / _TOKENIZER_DIR))
    config = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": model_cfg.get("name"),
        "encoder_name": model_cfg["encoder_name"],
        "pooling": model.pooling,
        "dropout": float(model.dropout.p),
        "num_labels": int(model.num_labels),
        "max_length": int(model_cfg["max_length"]),
        "threshold": float(threshold),
        "criterion_text": "description",
        "criteria": [
            {"id": c.id, "symptom": c.symptom, "name": c.name, "description": c.description}
            for c in criteria
        ],
    }
    (path / _CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return path


def log_criteria_model(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: Mapping[str, Any],
    artifact_path: str = "model",
    registered_model_name: str | None = None,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    input_example: pd.DataFrame | None = None,
    stage: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    archive_existing: bool = True,
    sink: Any | None = None,
) -> CriteriaModelInfo:
    """Log the text-in, probabilities-out pyfunc into a run's artifacts (the run's ``model/``).

    Fast enough to run at the end of every training run: it writes a
    ``state_dict``, the tokenizer files and a small JSON config, never a pickled
    model, and skips MLflow's requirement inference.

    Args:
        model: The trained classifier (any device; weights are copied to CPU).
        tokenizer: Its tokenizer.
        model_cfg: The resolved ``model`` config group as a dict (``encoder_name``,
            ``max_length``; ``name`` optional).
        artifact_path: Folder in the run's artifacts.
        registered_model_name: Also register it under this name.
        run_id: The run to log into; ``None`` uses the caller thread's active run.
        tracking_uri: The store; ``None`` uses MLflow's current one.
        threshold: Decision threshold stored with the model.
        input_example: A frame to store as the example instead of the synthetic
            one (your explicit choice: it is written to the store as is).
        stage: Registry stage for the new version (only with ``registered_model_name``).
        tags: Version tags (only with ``registered_model_name``).
        description: Version description (only with ``registered_model_name``).
        aliases: Extra version aliases (only with ``registered_model_name``).
        archive_existing: See :func:`~psy_agents_noaug.registry.register_model`.
        sink: The run's metric sink: the writer process uploads the model (atomically for
            readers of the run: it is complete in the store, or waits in the journal, once
            the run ends); None uploads it now, from this process.

    Returns:
        :class:`CriteriaModelInfo` with ``model_uri`` ``runs:/<run_id>/<artifact_path>``.

    Raises:
        ValueError: No run to log into, a bad ``model_cfg``, threshold or stage.

    Example:
        >>> with mlflow.start_run():  # doctest: +SKIP
        ...     cfg = {"encoder_name": "tiny", "max_length": 128}
        ...     info = log_criteria_model(model, tokenizer, cfg)
        >>> loaded = mlflow.pyfunc.load_model(info.model_uri)  # doctest: +SKIP
        >>> loaded.predict(pd.DataFrame({"text": ["I feel empty."]}))  # doctest: +SKIP
    """
    canonical_stage(stage)  # fail before any work
    if registered_model_name is None and (stage or tags or description or aliases):
        raise ValueError("stage, tags, description and aliases need registered_model_name")
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ValueError("log_criteria_model needs run_id or an active MLflow run")
        run_id = active.info.run_id
    example = INPUT_EXAMPLE if input_example is None else input_example
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(model, tokenizer, model_cfg, Path(tmp, _BUNDLE), threshold=threshold)
        code = Path(tmp, _CODE_FILE)
        code.write_text(_CODE)
        local = Path(tmp, "mlflow_model")
        mlflow.pyfunc.save_model(
            path=str(local),
            python_model=str(code),
            artifacts={_BUNDLE: str(bundle)},
            signature=criteria_signature(threshold),
            input_example=example,
            pip_requirements=_requirements(),
        )
        if sink is not None:
            sink.log_artifact(local, artifact_path, mode="move")
        else:
            MlflowClient(tracking_uri).log_artifacts(run_id, str(local), artifact_path)
    version = None
    if registered_model_name is not None:
        if sink is not None:
            sink.flush()
        version = register_run_artifact(
            run_id,
            artifact_path,
            registered_model_name,
            stage=stage,
            tags=tags,
            description=description,
            aliases=aliases,
            archive_existing=archive_existing,
            tracking_uri=tracking_uri,
        )
    return CriteriaModelInfo(f"runs:/{run_id}/{artifact_path}", run_id, artifact_path, version)


def _load_state(model: CriteriaClassifier, state: Mapping[str, torch.Tensor]) -> None:
    """Strict load, except for an encoder pooler that the classifier never uses."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("encoder.pooler.")] + list(unexpected)
    if bad:
        raise ValueError(f"weights do not match the model: {bad[:10]}")


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")


def _is_missing(value: Any) -> bool:
    """None, NaN or pd.NA: how an absent optional cell arrives from CSV, JSON or pandas."""
    return not isinstance(value, str) and bool(pd.isna(value))


def _requirements() -> list[str]:
    """Pinned versions (no local tags such as +cpu) of what loading the model imports."""
    names = ("psy-agents-noaug", "torch", "transformers", "tokenizers", "pandas")
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in names]
