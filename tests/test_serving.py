"""The criteria pyfunc: log, register from a run's checkpoint, load, serve over HTTP, predict.

The reference for every served or loaded prediction is an in-memory
:class:`CriteriaPredictor` around the trained model, one post at a time (no padding): what
comes out of the registry, a fresh process or ``mlflow models serve`` must match it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import pandas as pd
import pytest
import requests
import torch
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient

from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.data.dataset import EncodingSpec, PostWindowsDataset, WindowCollator
from psy_agents_noaug.data.sentences import sentence_spans
from psy_agents_noaug.jobs import predict as predict_job
from psy_agents_noaug.jobs.predict import predict_file
from psy_agents_noaug.jobs.register import register_from_run
from psy_agents_noaug.models.factory import build_model
from psy_agents_noaug.models.serving import (
    INPUT_EXAMPLE,
    OUTPUT_COLUMNS,
    CriteriaPredictor,
    log_criteria_model,
)
from psy_agents_noaug.training.checkpoints import CheckpointError, save_checkpoint
from psy_agents_noaug.training.losses import CriteriaLoss
from tests.mlflow_server import free_port
from tests.tiny import TINY_MODEL_CFG

ENCODING = EncodingSpec(max_length=48)
NAME = "criteria_classifier"
IDS = [c.id for c in CRITERIA]
TEXTS = [
    "I sleep twelve hours and still wake up exhausted. Work is fine, I guess.\n"
    "My cat keeps me company.",
    "Lately I enjoy nothing. I used to love music! Now it is just noise.",
]
POSTS = pd.DataFrame({"post_id": ["p1", "p2"], "text": TEXTS})
# What the tiny model is trained on: p1 shows A.4 and A.6 in its first sentence, p2 shows
# A.2 in its first; nobody shows A.1.
LABELS = [[0, 0, 0, 1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0]]
EVIDENCE = [
    [(*sentence_spans(TEXTS[0])[0], 3), (*sentence_spans(TEXTS[0])[0], 5)],
    [(*sentence_spans(TEXTS[1])[0], 1)],
]
# As tuned on a validation split: A.1 very low (so it fires on posts the model scores
# well under 0.5), A.9 very high.
THRESHOLDS = {**dict.fromkeys(IDS, 0.5), "A.1": 0.01, "A.9": 0.99}

# Loads the registered model in a process that has never seen the model object, with
# pickle deserialization forbidden: the model must load from code.
FRESH_PROCESS = """
import json, sys
import mlflow, pandas as pd
posts = pd.DataFrame(json.loads(open(sys.argv[1]).read()))
model = mlflow.pyfunc.load_model("models:/criteria_classifier@production")
model.predict(posts).to_json(sys.argv[2], orient="records")
"""
NO_PICKLE = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


class _Marker:
    """Pickles as `Path.touch(path)`: proof of code execution if a loader unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def tiny_trained_model(seed: int = 0, steps: int = 40) -> tuple[Any, Any]:
    """The tiny classifier after CriteriaLoss steps on POSTS: its weights are not the init's."""
    model, tokenizer = build_model(SimpleNamespace(**TINY_MODEL_CFG), seed=seed)
    frame = POSTS.assign(labels=LABELS, evidence=EVIDENCE)
    dataset = PostWindowsDataset(frame, tokenizer, ENCODING)
    batch = WindowCollator(dataset, tokenizer.pad_token_id)([dataset[0], dataset[1]])
    labels = batch.pop("labels")
    loss_fn = CriteriaLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(**batch), labels).backward()
        optimizer.step()
    return model.eval(), tokenizer


def reference(
    production: SimpleNamespace,
    frame: pd.DataFrame = POSTS,
    thresholds: dict[str, float] = THRESHOLDS,
    threshold: float | None = None,
) -> pd.DataFrame:
    """The in-memory predictor's answer, one post per forward pass (no padding)."""
    predictor = CriteriaPredictor(production.model, production.tokenizer, ENCODING, thresholds)
    return predictor.predict(frame, batch_size=1, threshold=threshold)


def model_scores(production: SimpleNamespace, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own [sentences, criteria] and [criteria] logits for one post."""
    frame = pd.DataFrame({"post_id": ["x"], "text": [text]})
    dataset = PostWindowsDataset(frame, production.tokenizer, ENCODING)
    batch = WindowCollator(dataset, production.tokenizer.pad_token_id)([dataset[0]])
    batch.pop("labels")
    with torch.no_grad():
        output = production.model.eval()(**batch)
    return output.sentence_logits, output.logits[0]


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same rows, decisions and evidence; probabilities equal up to float noise."""
    exact = [c for c in expected.columns if c != "probability" and c in got.columns]
    assert got[exact].astype(str).to_dict("records") == expected[exact].astype(str).to_dict(
        "records"
    )
    assert got["probability"].tolist() == pytest.approx(expected["probability"].tolist(), abs=1e-5)


def assert_evidence_is_a_sentence(out: pd.DataFrame, texts: dict[str, str]) -> None:
    """Positives point at a sentence of their post; negatives at nothing (-1)."""
    for row in out.itertuples():
        evidence = (row.evidence_sentence, row.evidence_start, row.evidence_end)
        if row.prediction == 0:
            assert evidence == (-1, -1, -1), row
            continue
        spans = sentence_spans(texts[row.post_id])
        assert 0 <= row.evidence_sentence < len(spans), row
        assert spans[row.evidence_sentence] == (row.evidence_start, row.evidence_end), row


def log_checkpoint_run(uri: str, model: torch.nn.Module, f1: float = 0.6123) -> str:
    """A training run holding checkpoints/best_checkpoint.pt in the Trainer's format."""
    client = MlflowClient(uri)
    run = client.create_run(experiment_id="0", run_name="criteria_tiny_test")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "best_checkpoint.pt")
        save_checkpoint(
            path,
            {
                "model_state_dict": model.state_dict(),
                "epoch": 2,
                "global_step": 12,
                "best_metric": f1,
                "metric_name": "val_f1_macro",
                "config": {
                    "model": dict(TINY_MODEL_CFG),
                    "data": {"max_windows_per_post": ENCODING.max_windows, "window_overlap": 1},
                    "task": {"name": "criteria"},
                    "training": {"batch_size": 2, "save_optimizer": False},
                    "seed": 0,
                },
                "thresholds": THRESHOLDS,
            },
        )
        client.log_artifact(run.info.run_id, str(path), "checkpoints")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("serving_store")
    uri = f"sqlite:///{folder}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the default experiment's artifacts land in this folder
        MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture(scope="module")
def production(store: str) -> SimpleNamespace:
    """A tiny trained model, checkpointed in a run, registered at Production from that run."""
    torch.manual_seed(0)
    model, tokenizer = tiny_trained_model()
    run_id = log_checkpoint_run(store, model)
    version = register_from_run(run_id, NAME, "Production", store)
    return SimpleNamespace(model=model, tokenizer=tokenizer, run_id=run_id, version=version)


@pytest.fixture
def uri(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(store)
    yield store
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def served(uri: str, production: SimpleNamespace) -> PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{NAME}@production")


def test_register_from_run_sets_stage_alias_tags_and_description(
    uri: str, production: SimpleNamespace
) -> None:
    version = production.version
    assert version.current_stage == "Production"
    assert "production" in version.aliases
    assert version.tags["task"] == "criteria"
    assert version.tags["encoder"] == "tiny"
    assert version.tags["f1_macro"] == "0.6123"
    assert "val_f1_macro=0.6123" in version.description
    assert "multilabel" in version.description
    assert production.run_id in version.description
    assert version.run_id == production.run_id
    client = MlflowClient()
    assert version.source.startswith("models:/m-")  # the version is the run's logged model
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == production.run_id and str(logged.status) == "READY"
    assert "best_model" not in {a.path for a in client.list_artifacts(production.run_id)}


def test_pyfunc_gives_probability_decision_and_evidence_per_post_and_criterion(
    served: PyFuncModel, production: SimpleNamespace
) -> None:
    frame = pd.DataFrame({"post_id": ["a", "b"], "text": TEXTS, "criterion_id": ["A.4", None]})
    out = served.predict(frame)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["post_id"].tolist() == ["a"] + ["b"] * 9
    assert out["criterion_id"].tolist() == ["A.4", *IDS]
    assert out["criterion_name"].iloc[0] == "Sleep disturbance"
    expected = reference(production, frame)
    assert_same_predictions(out, expected)
    full = reference(production, POSTS.assign(post_id=["a", "b"]))
    assert out["probability"].iloc[0] == pytest.approx(full["probability"].iloc[3], abs=1e-5)
    assert (out["prediction"] == (out["probability"] >= out["threshold"]).astype(int)).all()
    assert_evidence_is_a_sentence(out, {"a": TEXTS[0], "b": TEXTS[1]})

    # An empty criterion_id means all criteria; the default post id is the row index.
    everything = served.predict(
        pd.DataFrame({"text": ["x y z. a b c"], "criterion_id": [""]}), params={"threshold": 0.0}
    )
    assert everything["post_id"].tolist() == ["0"] * 9
    assert everything["criterion_id"].tolist() == IDS
    assert everything["prediction"].tolist() == [1] * 9


def test_stored_per_criterion_thresholds_decide_unless_the_request_overrides(
    served: PyFuncModel, production: SimpleNamespace
) -> None:
    out = served.predict(POSTS)
    assert out["threshold"].tolist() == [THRESHOLDS[c] for c in IDS] * 2
    assert (out["prediction"] == (out["probability"] >= out["threshold"]).astype(int)).all()
    a1 = out[out["criterion_id"] == "A.1"]
    assert a1["probability"].between(0.01, 0.5).all()  # 0.5 would call these negative ...
    assert a1["prediction"].tolist() == [1, 1]  # ... the stored 0.01 calls them positive
    assert out[out["criterion_id"] == "A.9"]["prediction"].tolist() == [0, 0]
    # The schema's default (-1) means "the stored thresholds" too.
    assert_same_predictions(served.predict(POSTS, params={"threshold": -1.0}), out)

    half = served.predict(POSTS, params={"threshold": 0.5})
    assert (half["threshold"] == 0.5).all()
    assert half[half["criterion_id"] == "A.1"]["prediction"].tolist() == [0, 0]
    assert (half["prediction"] == (half["probability"] >= 0.5).astype(int)).all()
    assert served.predict(POSTS, params={"threshold": 0.0})["prediction"].tolist() == [1] * 18
    assert served.predict(POSTS, params={"threshold": 1.0})["prediction"].tolist() == [0] * 18
    assert_same_predictions(half, reference(production, threshold=0.5))


def test_evidence_points_at_the_sentence_that_carried_the_decision(
    served: PyFuncModel, production: SimpleNamespace
) -> None:
    texts = dict(zip(POSTS["post_id"], TEXTS, strict=True))
    everything = served.predict(POSTS, params={"threshold": 0.0})
    assert (everything["evidence_sentence"] >= 0).all()
    assert_evidence_is_a_sentence(everything, texts)
    nothing = served.predict(POSTS, params={"threshold": 1.0})
    assert (nothing[["evidence_sentence", "evidence_start", "evidence_end"]] == -1).all().all()
    # The trained criteria fire on the sentence they were trained on (sentence 0 of each).
    stored = served.predict(POSTS)
    assert_evidence_is_a_sentence(stored, texts)
    trained = stored.set_index(["post_id", "criterion_id"]).loc[[("p1", "A.4"), ("p2", "A.2")]]
    assert trained["prediction"].tolist() == [1, 1]
    assert trained["evidence_sentence"].tolist() == [0, 0]
    first = TEXTS[0][: trained["evidence_end"].iloc[0]]
    assert first == "I sleep twelve hours and still wake up exhausted."
    # The evidence is the sentence whose score the post's (max) score is.
    for post_id, text in texts.items():
        sentence_logits, post_logits = model_scores(production, text)
        rows = everything[everything["post_id"] == post_id]
        best = sentence_logits.argmax(dim=0).tolist()
        assert rows["evidence_sentence"].tolist() == best
        assert torch.allclose(post_logits, sentence_logits[best, range(len(IDS))])


def test_batching_does_not_change_predictions(
    served: PyFuncModel, production: SimpleNamespace
) -> None:
    batched = served.predict(POSTS, params={"batch_size": 2})  # the posts padded together
    assert_same_predictions(batched, reference(production))  # one post per pass


def test_pyfunc_rejects_bad_inputs_with_one_line_errors(
    served: PyFuncModel, production: SimpleNamespace
) -> None:
    with pytest.raises(Exception, match=r"unknown criterion_id 'B\.1'"):
        served.predict(pd.DataFrame({"text": ["hello"], "criterion_id": ["B.1"]}))
    with pytest.raises(Exception, match="text"):
        served.predict(pd.DataFrame({"post": ["hello"]}))
    with pytest.raises(Exception, match=r"threshold must be in \[0, 1\]"):
        served.predict(POSTS, params={"threshold": 1.5})
    with pytest.raises(Exception, match=r"'text' is empty in row\(s\) \[0\]"):
        served.predict(pd.DataFrame({"text": [""]}))
    predictor = CriteriaPredictor(production.model, production.tokenizer, ENCODING)
    for empty in ("", "   \n "):
        with pytest.raises(ValueError, match=r"'text' is empty in row\(s\) \[1\]") as caught:
            predictor.predict(pd.DataFrame({"text": ["I am fine.", empty]}))
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"'text' is empty in row\(s\) \[0\]"):
        predictor.predict(pd.DataFrame({"text": [None]}))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        predictor.predict(POSTS, batch_size=0)


def test_a_100000_character_post_predicts(served: PyFuncModel) -> None:
    many = ("I can't sleep. Nothing helps, not even music. " * 2200)[:100_000]
    one_line = ("so tired of everything " * 4400)[:100_000]  # no sentence boundary at all
    for text in (many, one_line, "x" * 100_000):  # ... and one 100,000-character "word"
        assert len(text) == 100_000
        started = time.perf_counter()
        out = served.predict(pd.DataFrame({"post_id": ["long"], "text": [text]}))
        assert time.perf_counter() - started < 30
        assert out["criterion_id"].tolist() == IDS
        assert out["probability"].between(0, 1).all()
        assert_evidence_is_a_sentence(out, {"long": text})


def test_sentences_cut_from_a_long_post_do_not_count() -> None:
    cfg = SimpleNamespace(**{**TINY_MODEL_CFG, "aggregation": "noisy_or"})
    model, tokenizer = build_model(cfg, seed=0)
    with torch.no_grad():  # every sentence that is read scores p = sigmoid(-4) = 0.018
        model.head.weight.zero_()
        model.head.bias.fill_(-4.0)
    spec = EncodingSpec(max_length=48, max_windows=2)
    text = "I am sad. " * 1000
    frame = pd.DataFrame({"post_id": ["long"], "text": [text]})
    post = PostWindowsDataset(frame, tokenizer, spec).posts[0]
    read = 1 + max(max(owners) for owners in post.token_sentence)
    assert post.cut and read < len(post.sentences)
    out = CriteriaPredictor(model.eval(), tokenizer, spec).predict(frame)
    expected = 1 - (1 - float(torch.sigmoid(torch.tensor(-4.0)))) ** read
    assert out["probability"].tolist() == pytest.approx([expected] * 9, abs=1e-4)


def test_stored_input_example_is_synthetic_and_nothing_is_pickled(
    uri: str, production: SimpleNamespace
) -> None:
    logged = MlflowClient().get_logged_model(production.version.source.removeprefix("models:/"))
    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location)
    stored = Path(local, "input_example.json").read_text()
    assert INPUT_EXAMPLE["text"].iloc[0] in stored
    assert not any(text in stored for text in TEXTS)
    assert not list(Path(local).rglob("*.pkl"))
    flavor = mlflow.models.Model.load(local).flavors["python_function"]
    assert "model_code_path" in flavor and "python_model" not in flavor  # models from code
    bundle = Path(local, "artifacts", "bundle")
    assert {p.name for p in bundle.iterdir()} == {
        "criteria_model.json",
        "encoder",
        "tokenizer",
        "weights.pt",
    }  # weights as a state_dict, no pickled model
    config = json.loads((bundle / "criteria_model.json").read_text())
    assert config["format_version"] == 2
    assert config["thresholds"] == THRESHOLDS  # the checkpoint's tuned thresholds
    assert config["encoding"] == {
        "max_length": 48,
        "max_windows": ENCODING.max_windows,
        "overlap": 1,
        "framing": "multilabel",
    }
    assert (config["aggregation"], config["dropout"]) == ("max", 0.1)
    weights = torch.load(bundle / "weights.pt", weights_only=True)
    trained = production.model.state_dict()
    # The rebuilt encoder may carry an unused pooler; every trained tensor is there, unchanged.
    assert all(torch.equal(weights[k], v) for k, v in trained.items())
    init, _ = build_model(SimpleNamespace(**TINY_MODEL_CFG), seed=0)
    assert not torch.equal(init.head.weight, weights["head.weight"])  # trained, not the init


def test_log_criteria_model_needs_a_run_and_valid_arguments(uri: str) -> None:
    model, tokenizer = build_model(SimpleNamespace(**TINY_MODEL_CFG), seed=0)
    with pytest.raises(ValueError, match="needs run_id or an active MLflow run"):
        log_criteria_model(model, tokenizer, TINY_MODEL_CFG)
    with mlflow.start_run() as run:
        with pytest.raises(ValueError, match="stage must be one of"):
            log_criteria_model(
                model, tokenizer, TINY_MODEL_CFG, registered_model_name="x", stage="Live"
            )
        with pytest.raises(ValueError, match="need registered_model_name"):
            log_criteria_model(model, tokenizer, TINY_MODEL_CFG, stage="Production")
        with pytest.raises(ValueError, match="lacks encoder_name"):
            log_criteria_model(model, tokenizer, {"name": "tiny", "max_length": 48})
        with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1\.5"):
            log_criteria_model(model, tokenizer, TINY_MODEL_CFG, thresholds={"A.3": 1.5})
    assert MlflowClient().list_artifacts(run.info.run_id) == []  # nothing half-logged


def test_thresholds_given_to_log_criteria_model_are_the_default_decision(
    uri: str, production: SimpleNamespace
) -> None:
    with mlflow.start_run():
        info = log_criteria_model(
            production.model,
            production.tokenizer,
            TINY_MODEL_CFG,
            encoding=ENCODING,
            thresholds={"A.1": 0.01},  # the others keep 0.5
        )
    assert info.model_uri == f"models:/{info.model_id}" and info.model_version is None
    model = mlflow.pyfunc.load_model(info.model_uri)
    out = model.predict(POSTS)
    assert out["threshold"].tolist() == [0.01 if c == "A.1" else 0.5 for c in IDS] * 2
    a1 = out[out["criterion_id"] == "A.1"]
    assert a1["probability"].between(0.01, 0.5).all() and a1["prediction"].tolist() == [1, 1]
    assert_same_predictions(out, reference(production, thresholds={"A.1": 0.01}))
    strict = model.predict(POSTS, params={"threshold": 1.0})
    assert strict["prediction"].tolist() == [0] * 18


def test_registering_the_same_run_again_reuses_its_model_and_archives(
    uri: str, production: SimpleNamespace
) -> None:
    first = register_from_run(production.run_id, "criteria_copy", "Production", uri)
    second = register_from_run(production.run_id, "criteria_copy", "Production", uri)
    client = MlflowClient()
    assert first.source == second.source  # the run's model is logged once
    assert client.get_model_version("criteria_copy", str(first.version)).current_stage == (
        "Archived"
    )
    production_version = client.get_model_version_by_alias("criteria_copy", "production")
    assert str(production_version.version) == str(second.version)


def test_register_from_run_errors_name_the_problem(uri: str, tmp_path: Path) -> None:
    client = MlflowClient()
    bare = client.create_run(experiment_id="0").info.run_id
    with pytest.raises(ValueError, match=r"has no artifact checkpoints/best_checkpoint\.pt"):
        register_from_run(bare, "nope", None, uri)
    with pytest.raises(ValueError, match="no run 'deadbeef'"):
        register_from_run("deadbeef", "nope", None, uri)
    with pytest.raises(ValueError, match="stage must be one of"):
        register_from_run(bare, "nope", "Live", uri)
    old = client.create_run(experiment_id="0").info.run_id
    save_checkpoint(
        tmp_path / "best_checkpoint.pt",
        {"model_state_dict": {}, "config": {"model": {"encoder_name": "tiny", "dropout": 0.1}}},
    )
    client.log_artifact(old, str(tmp_path / "best_checkpoint.pt"), "checkpoints")
    with pytest.raises(ValueError, match=r"cannot rebuild the model.*\['max_length'\]"):
        register_from_run(old, "nope", None, uri)


def test_checkpoint_is_loaded_with_weights_only(uri: str, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    path = tmp_path / "best_checkpoint.pt"
    torch.save({"model_state_dict": {}, "config": {"model": {}}, "x": _Marker(marker)}, path)
    client.log_artifact(run_id, str(path), "checkpoints")
    with pytest.raises(CheckpointError, match="Weights only load failed"):  # nothing unpickled
        register_from_run(run_id, "unsafe", None, uri)
    assert not marker.exists()


def test_predict_file_writes_one_row_per_post_and_criterion(
    uri: str, production: SimpleNamespace, tmp_path: Path
) -> None:
    posts = POSTS.assign(label=["1", "0"])  # extra columns are ignored
    posts.to_csv(tmp_path / "posts.csv", index=False)
    out = predict_file(
        f"models:/{NAME}@production", tmp_path / "posts.csv", tmp_path / "out" / "pred.csv", uri
    )
    result = pd.read_csv(out, dtype={"post_id": str})
    assert list(result.columns) == list(predict_job.OUTPUT_COLUMNS)
    assert list(result.columns) == [c for c in OUTPUT_COLUMNS if c != "criterion_name"]
    assert result["post_id"].tolist() == ["p1"] * 9 + ["p2"] * 9
    assert_same_predictions(result, reference(production))
    assert_evidence_is_a_sentence(result, dict(zip(POSTS["post_id"], TEXTS, strict=True)))
    written = out.read_text()
    assert not any(s in written for t in TEXTS for s in t.splitlines())  # no post text written

    model_uri = f"models:/{NAME}@production"
    overridden = predict_file(
        model_uri, tmp_path / "posts.csv", tmp_path / "half.csv", uri, threshold=0.5
    )
    half = pd.read_csv(overridden, dtype={"post_id": str})
    assert (half["threshold"] == 0.5).all()
    assert (half["prediction"] == (half["probability"] >= 0.5).astype(int)).all()


def test_predict_file_skips_rows_without_text_and_counts_them(
    uri: str, production: SimpleNamespace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = pd.DataFrame(
        {
            "post_id": ["p1", "empty", "p2", "blank"],
            "text": [TEXTS[0], "", TEXTS[1], "   "],
            "criterion_id": ["", "", "A.2", ""],
        }
    )
    rows.to_csv(tmp_path / "posts.csv", index=False)
    with caplog.at_level(logging.WARNING, logger=predict_job.__name__):
        out = predict_file(
            f"models:/{NAME}@production", tmp_path / "posts.csv", tmp_path / "pred.csv", uri
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 row(s)" in warnings[0] and "lines [3, 5]" in warnings[0]
    result = pd.read_csv(out, dtype={"post_id": str})
    assert result["post_id"].tolist() == ["p1"] * 9 + ["p2"]
    assert result["criterion_id"].tolist() == [*IDS, "A.2"]
    expected = reference(production, pd.DataFrame(rows.iloc[[0, 2]]))
    assert_same_predictions(result, expected)

    (tmp_path / "none.csv").write_text("post_id,text\n1,\n2,  \n")
    with pytest.raises(ValueError, match="has no row with text"):
        predict_file(f"models:/{NAME}@production", tmp_path / "none.csv", tmp_path / "o.csv", uri)


def test_predict_file_rejects_bad_input(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        predict_file(f"models:/{NAME}@production", tmp_path / "missing.csv", tmp_path / "o.csv")
    (tmp_path / "bad.csv").write_text("post_id,body\n1,hello\n")
    with pytest.raises(ValueError, match="needs a 'text' column"):
        predict_file(f"models:/{NAME}@production", tmp_path / "bad.csv", tmp_path / "o.csv")


@pytest.mark.slow
def test_production_model_in_a_fresh_process_matches_the_in_memory_model(
    store: str, production: SimpleNamespace, tmp_path: Path
) -> None:
    (tmp_path / "posts.json").write_text(POSTS.to_json(orient="columns"))
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, "posts.json", "pred.json"],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": store, **NO_PICKLE},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = pd.DataFrame(json.loads((tmp_path / "pred.json").read_text()))
    assert_same_predictions(loaded, reference(production))


@pytest.mark.slow
def test_mlflow_models_serve_answers_per_post_and_criterion(
    store: str, production: SimpleNamespace, tmp_path: Path
) -> None:
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@production",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=tmp_path,
        # `mlflow models serve` execs `uvicorn`, so the venv's bin must be on PATH.
        env={
            **os.environ,
            **NO_PICKLE,
            "MLFLOW_TRACKING_URI": store,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "scoring server not ready in 180 s"
            try:
                if requests.get(url + "/ping", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.25)  # polling a readiness probe with a deadline
        body = {"dataframe_split": POSTS.to_dict(orient="split", index=False)}
        response = requests.post(url + "/invocations", json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = pd.DataFrame(response.json()["predictions"])
        assert list(predictions.columns) == list(OUTPUT_COLUMNS)
        assert predictions.groupby("post_id").size().to_dict() == {"p1": 9, "p2": 9}
        assert predictions["criterion_id"].tolist() == IDS * 2
        assert_same_predictions(predictions, reference(production))

        # A request's threshold overrides the stored ones; criterion_id picks one criterion.
        one = POSTS.assign(criterion_id=["A.1", ""])  # "": all criteria
        body = {"dataframe_split": one.to_dict(orient="split", index=False)}
        response = requests.post(
            url + "/invocations", json={**body, "params": {"threshold": 0.5}}, timeout=60
        )
        assert response.status_code == 200, response.text
        predictions = pd.DataFrame(response.json()["predictions"])
        assert predictions["criterion_id"].tolist() == ["A.1", *IDS]
        assert (predictions["threshold"] == 0.5).all()
        assert_same_predictions(predictions, reference(production, one, threshold=0.5))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        log.close()
