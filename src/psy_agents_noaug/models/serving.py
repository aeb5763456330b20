"""The criteria classifier as an MLflow pyfunc: posts in, per-criterion decisions and evidence out.

A logged model bundles everything a server needs, and nothing pickled:

* ``weights.pt``: the classifier's ``state_dict`` (loaded with ``weights_only=True``);
* ``encoder/config.json``: the encoder's Hugging Face config, so the encoder is rebuilt
  offline with ``AutoModel.from_config`` (no download, no pretrained copy);
* ``tokenizer/``: the tokenizer files;
* ``criteria_model.json``: framing, aggregation, windowing, the per-criterion decision
  thresholds tuned on the validation split, and the criteria definitions.

MLflow loads it "from code" (a three-line file that calls
``mlflow.models.set_model(CriteriaPyfunc())``), not from a pickle, so it loads with
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``. Posts are read whole (windows of whole
sentences); each positive decision names the sentence that carried it: its index in the
post and its character offsets (``evidence_start``/``evidence_end``) in the input text.
The stored input example is a made-up sentence, never a real post, unless the caller
passes one explicitly.

Example:
    >>> import mlflow, pandas as pd  # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model("models:/criteria_classifier@production")  # doctest: +SKIP
    >>> posts = pd.DataFrame({"post_id": ["p1"], "text": ["I can't sleep."]})  # doctest: +SKIP
    >>> model.predict(posts)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
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
from psy_agents_noaug.data.dataset import EncodingSpec, PostWindowsDataset, WindowCollator
from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.registry.versions import canonical_stage, register_logged_model
from psy_agents_noaug.tracking.store import first_line, is_rejection

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 2
#: The name of the logged model a training run holds.
MODEL_NAME = "model"
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 16
NO_EVIDENCE = -1

INPUT_EXAMPLE = pd.DataFrame({"post_id": ["example-1"], "text": ["I have felt low for weeks."]})
"""The stored input example: a made-up sentence, so no real post ever reaches the store."""

OUTPUT_COLUMNS: tuple[str, ...] = (
    "post_id",
    "criterion_id",
    "criterion_name",
    "probability",
    "threshold",
    "prediction",
    "evidence_sentence",
    "evidence_start",
    "evidence_end",
)


def criteria_signature() -> ModelSignature:
    """The pyfunc's I/O: posts in, one row per (post, criterion) out.

    ``threshold`` (a request parameter) overrides every criterion's stored threshold; its
    schema default is negative, meaning "the stored ones".
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
                ColSpec("double", "threshold"),
                ColSpec("long", "prediction"),
                ColSpec("long", "evidence_sentence"),
                ColSpec("long", "evidence_start"),
                ColSpec("long", "evidence_end"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("threshold", "double", -1.0),
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
    """A classifier, its tokenizer, windowing and thresholds: posts -> decisions and evidence.

    Args:
        model: The trained classifier (used in eval mode, on its current device).
        tokenizer: Its tokenizer.
        encoding: How posts become windows (as in training).
        thresholds: Decision threshold per criterion id (default 0.5 each).
        criteria: The criteria it was trained on, in output order.

    Raises:
        ValueError: A threshold outside [0, 1], or no criteria.
    """

    def __init__(
        self,
        model: CriteriaClassifier,
        tokenizer: PreTrainedTokenizerBase,
        encoding: EncodingSpec,
        thresholds: Mapping[str, float] | None = None,
        criteria: Sequence[Criterion] = CRITERIA,
    ) -> None:
        if not criteria:
            raise ValueError("criteria must not be empty")
        self.model = model
        self.tokenizer = tokenizer
        self.encoding = encoding
        self.criteria = tuple(criteria)
        self.thresholds = {
            c.id: float((thresholds or {}).get(c.id, DEFAULT_THRESHOLD)) for c in self.criteria
        }
        for value in self.thresholds.values():
            _check_threshold(value)
        self._by_id = {c.id: c for c in self.criteria}

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
                f"is not supported (expected {BUNDLE_FORMAT_VERSION}); log the model again"
            )
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(bundle / _ENCODER_DIR))
        criteria = [Criterion(**c) for c in config["criteria"]]
        model = CriteriaClassifier(
            encoder,
            len(criteria),
            framing=config["encoding"]["framing"],
            aggregation=config["aggregation"],
            dropout=float(config["dropout"]),
        )
        state = torch.load(bundle / _WEIGHTS_FILE, map_location="cpu", weights_only=True)
        _load_state(model, state)
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        tokenizer = AutoTokenizer.from_pretrained(bundle / _TOKENIZER_DIR)
        encoding = EncodingSpec(**config["encoding"])
        return cls(model, tokenizer, encoding, config["thresholds"], criteria)

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> pd.DataFrame:
        """Probability, decision and evidence per (post, criterion).

        Args:
            frame: Column ``text`` (required); ``post_id`` (default: the row index as a
                string); ``criterion_id`` (only that criterion for that row; empty or
                missing means all criteria).
            threshold: One threshold for every criterion, instead of the stored ones
                (None or negative: the stored ones).
            batch_size: Posts per forward pass.

        Returns:
            One row per (post, criterion), in input order then criterion order, with
            columns :data:`OUTPUT_COLUMNS`; ``evidence_*`` is -1 for a negative decision.

        Raises:
            ValueError: No ``text`` column, an empty text, an unknown criterion id, or a
                bad threshold or batch size.
        """
        if threshold is not None and threshold >= 0:
            _check_threshold(threshold)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        posts, wanted = self._posts(frame)
        dataset = PostWindowsDataset(posts, self.tokenizer, self.encoding, self.criteria)
        stats = dataset.stats()
        if stats.posts_unreadable:
            log.warning(
                "%d post(s) have no word the tokenizer knows (only emoji, symbols or characters "
                "it drops); their scores come from unknown tokens alone",
                stats.posts_unreadable,
            )
        if stats.posts_cut:
            log.warning(
                "%d post(s) are longer than %d windows and were cut; %.2f%% of the tokens are "
                "not read",
                stats.posts_cut,
                self.encoding.max_windows,
                100 * (1.0 - stats.tokens_seen_fraction),
            )
        collate = WindowCollator(dataset, self.tokenizer.pad_token_id or 0)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            probs, evidence = self._score(collate(items))
            for offset, item in enumerate(items):
                index = start + offset
                post = item["post"]
                for c, criterion in enumerate(self.criteria):
                    if wanted[index] is not None and wanted[index] != criterion.id:
                        continue
                    cut = (
                        self.thresholds[criterion.id]
                        if threshold is None or threshold < 0
                        else float(threshold)
                    )
                    p = float(probs[offset, c])
                    positive = int(p >= cut)
                    sentence = int(evidence[offset, c]) if positive else NO_EVIDENCE
                    span = (
                        post.sentences[sentence]
                        if 0 <= sentence < len(post.sentences)
                        else (NO_EVIDENCE, NO_EVIDENCE)
                    )
                    rows.append(
                        (
                            dataset.post_ids[index],
                            criterion.id,
                            criterion.name,
                            p,
                            cut,
                            positive,
                            sentence if positive else NO_EVIDENCE,
                            span[0] if positive else NO_EVIDENCE,
                            span[1] if positive else NO_EVIDENCE,
                        )
                    )
        out = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
        for column in ("prediction", "evidence_sentence", "evidence_start", "evidence_end"):
            out[column] = out[column].astype("int64")
        for column in ("probability", "threshold"):
            out[column] = out[column].astype("float64")
        return out

    def _posts(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str | None]]:
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
        wanted: list[str | None] = []
        for criterion_id in (
            frame["criterion_id"] if "criterion_id" in frame.columns else [None] * len(texts)
        ):
            if _is_missing(criterion_id) or str(criterion_id).strip() == "":
                wanted.append(None)
            elif str(criterion_id).strip() in self._by_id:
                wanted.append(str(criterion_id).strip())
            else:
                raise ValueError(
                    f"unknown criterion_id {criterion_id!r}; valid ids: {', '.join(self._by_id)}"
                )
        return pd.DataFrame({"post_id": post_ids, "text": [str(t) for t in texts]}), wanted

    @torch.no_grad()
    def _score(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """[posts, criteria] probabilities, and each one's best sentence (index in its post)."""
        from psy_agents_noaug.training.evaluation import split_batch

        self.model.eval()
        device = next(self.model.parameters()).device
        inputs, _ = split_batch(batch, device)
        output = self.model(**inputs)
        probs = torch.sigmoid(output.logits.float()).cpu().numpy()
        sentence_post = output.sentence_post.cpu()
        scores = output.sentence_logits.float().cpu()
        first = torch.zeros(batch["n_posts"], dtype=torch.long)
        counts = torch.bincount(sentence_post, minlength=batch["n_posts"])
        first[1:] = torch.cumsum(counts, 0)[:-1]
        best = torch.zeros((batch["n_posts"], scores.shape[1]), dtype=torch.long)
        for post in range(batch["n_posts"]):
            rows = scores[first[post] : first[post] + counts[post]]
            if len(rows):
                best[post] = rows.argmax(dim=0)
        return probs, best.numpy()


class CriteriaPyfunc(PythonModel):
    """MLflow wrapper around :class:`CriteriaPredictor`; :func:`criteria_signature` is its I/O."""

    def load_context(self, context: Any) -> None:
        self.predictor = CriteriaPredictor.from_bundle(context.artifacts[_BUNDLE])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        threshold = params.get("threshold")
        return self.predictor.predict(
            model_input,
            threshold=None if threshold is None or float(threshold) < 0 else float(threshold),
            batch_size=int(params.get("batch_size") or DEFAULT_BATCH_SIZE),
        )


@dataclass(frozen=True)
class CriteriaModelInfo:
    """Where :func:`log_criteria_model` put the model, and its registry version if any.

    ``model_uri`` is ``models:/<model_id>`` for a logged model; when the store could not
    take it (``model_id`` None) the model waits in the run's journal as ``runs:/<run>/model``.
    """

    model_uri: str
    run_id: str
    model_id: str | None
    model_version: ModelVersion | None = None


def save_bundle(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: Mapping[str, Any],
    path: str | Path,
    *,
    encoding: EncodingSpec,
    thresholds: Mapping[str, float] | None = None,
    criteria: Sequence[Criterion] = CRITERIA,
) -> Path:
    """Write the files :meth:`CriteriaPredictor.from_bundle` reads (weights, configs, tokenizer).

    Args:
        model: The classifier; framing, aggregation and dropout are read from it.
        tokenizer: Its tokenizer.
        model_cfg: The ``model`` config group: ``encoder_name`` is required, ``name`` is
            recorded when present.
        path: A folder to create.
        encoding: How posts become windows.
        thresholds: Decision threshold per criterion id (default 0.5 each).
        criteria: The criteria definitions to store.

    Returns:
        The folder.

    Raises:
        ValueError: ``encoder_name`` is missing, or a threshold is bad.
    """
    values = {c.id: float((thresholds or {}).get(c.id, DEFAULT_THRESHOLD)) for c in criteria}
    for value in values.values():
        _check_threshold(value)
    if "encoder_name" not in model_cfg:
        raise ValueError("model_cfg lacks encoder_name")
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
        "aggregation": model.aggregation,
        "dropout": float(model.dropout.p),
        "encoding": asdict(encoding),
        "thresholds": values,
        "criterion_text": "description",
        "criteria": [
            {"id": c.id, "symptom": c.symptom, "name": c.name, "description": c.description}
            for c in criteria
        ],
    }
    (path / _CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return path


def save_criteria_model(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: Mapping[str, Any],
    path: str | Path,
    *,
    encoding: EncodingSpec,
    thresholds: Mapping[str, float] | None = None,
    input_example: pd.DataFrame | None = None,
) -> Path:
    """Write the whole MLflow model folder (``MLmodel``, the code file, the bundle) locally."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(
            model,
            tokenizer,
            model_cfg,
            Path(tmp, _BUNDLE),
            encoding=encoding,
            thresholds=thresholds,
        )
        code = Path(tmp, _CODE_FILE)
        code.write_text(_CODE)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(code),
            artifacts={_BUNDLE: str(bundle)},
            signature=criteria_signature(),
            input_example=INPUT_EXAMPLE if input_example is None else input_example,
            pip_requirements=_requirements(),
        )
    return Path(path)


def log_criteria_model(
    model: CriteriaClassifier,
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: Mapping[str, Any],
    name: str = MODEL_NAME,
    registered_model_name: str | None = None,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    step: int = 0,
    encoding: EncodingSpec | None = None,
    thresholds: Mapping[str, float] | None = None,
    metrics: Mapping[str, float] | None = None,
    metrics_timestamp_ms: int | None = None,
    dataset: tuple[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    input_example: pd.DataFrame | None = None,
    stage: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    aliases: Iterable[str] | None = None,
    archive_existing: bool = True,
    sink: Any | None = None,
) -> CriteriaModelInfo:
    """Log the text-in, decisions-out pyfunc as an MLflow 3 logged model of a run.

    The model gets its own id (``models:/<model_id>`` loads it), is linked to the run at
    ``step`` (the best checkpoint's), carries ``metrics`` (that epoch's validation scores,
    linked by ``model_id`` and ``dataset``) and ``params``, and is READY only once all its
    files are in: an interrupted upload leaves it FAILED, never a half model that looks
    whole. It writes a ``state_dict``, the tokenizer files and a small JSON config, never
    a pickled model, and skips MLflow's requirement inference.

    Args:
        model: The trained classifier (any device; weights are copied to CPU).
        tokenizer: Its tokenizer.
        model_cfg: The resolved ``model`` config group (``encoder_name``; ``name``).
        name: The logged model's name.
        registered_model_name: Also register it under this name.
        run_id: The run it comes from; ``None`` uses the caller thread's active run.
        tracking_uri: The store; ``None`` uses MLflow's current one.
        step: The run's step (epoch) the checkpoint is from.
        encoding: How posts become windows (default: ``max_length`` of ``model_cfg``).
        thresholds: Decision threshold per criterion id, tuned on validation.
        metrics: Scores to link to the model (keys as in the run, e.g. ``epoch/val_…``).
        metrics_timestamp_ms: Their timestamp in the run (so the run's history is not
            doubled by the link); default now.
        dataset: ``(name, digest)`` of the data the metrics were measured on.
        params: The logged model's params (e.g. encoder, windowing, thresholds).
        input_example: A frame to store as the example instead of the synthetic one (your
            explicit choice: it is written to the store as is).
        stage: Registry stage for the new version (only with ``registered_model_name``).
        tags: Version tags (only with ``registered_model_name``).
        description: Version description (only with ``registered_model_name``).
        aliases: Extra version aliases (only with ``registered_model_name``).
        archive_existing: See :func:`~psy_agents_noaug.registry.register_model`.
        sink: The run's metric sink: used only when the store cannot take the model now;
            it then waits in the run's journal (``psy-agents sync`` uploads it as the run's
            ``model/``).

    Returns:
        :class:`CriteriaModelInfo`.

    Raises:
        ValueError: No run, a bad ``model_cfg``, threshold or stage.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
    from mlflow.models import Model

    canonical_stage(stage)  # fail before any work
    if registered_model_name is None and (stage or tags or description or aliases):
        raise ValueError("stage, tags, description and aliases need registered_model_name")
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ValueError("log_criteria_model needs run_id or an active MLflow run")
        run_id = active.info.run_id
    encoding = encoding or EncodingSpec(max_length=int(model_cfg.get("max_length", 128)))
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = save_criteria_model(
            model,
            tokenizer,
            model_cfg,
            Path(tmp, "mlflow_model"),
            encoding=encoding,
            thresholds=thresholds,
            input_example=input_example,
        )
        try:
            experiment_id = client.get_run(run_id).info.experiment_id
            logged = client.create_logged_model(
                experiment_id,
                name=name,
                source_run_id=run_id,
                params={str(k): str(v) for k, v in (params or {}).items()},
                model_type="criteria-classifier",
            )
        except Exception as exc:
            if sink is None or is_rejection(exc):
                raise
            log.warning(
                "the store cannot take the model now (%s); it waits in the run's journal "
                "and `psy-agents sync` uploads it as the run's model/",
                first_line(exc),
            )
            sink.log_artifact(local, "model", mode="move")
            return CriteriaModelInfo(f"runs:/{run_id}/model", run_id, None)
        try:
            stamped = Model.load(str(local))
            stamped.model_id, stamped.run_id = logged.model_id, run_id
            stamped.save(str(local / "MLmodel"))
            client.log_model_artifacts(logged.model_id, str(local))
        except BaseException:
            with contextlib.suppress(Exception):
                client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    if metrics:
        when = metrics_timestamp_ms or int(time.time() * 1000)
        dataset_name, digest = dataset or (None, None)
        client.log_batch(
            run_id,
            metrics=[
                Metric(key, float(value), when, step, model_id=logged.model_id,
                       dataset_name=dataset_name, dataset_digest=digest)
                for key, value in metrics.items()
            ],
        )  # fmt: skip
    version = None
    if registered_model_name is not None:
        version = register_logged_model(
            logged.model_id,
            registered_model_name,
            stage=stage,
            tags=tags,
            description=description,
            aliases=aliases,
            archive_existing=archive_existing,
            tracking_uri=tracking_uri,
        )
    return CriteriaModelInfo(f"models:/{logged.model_id}", run_id, logged.model_id, version)


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
