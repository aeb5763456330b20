"""The criteria pyfunc: log, register from a run's checkpoint, load, serve over HTTP, predict."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
import requests
import torch
from mlflow.tracking import MlflowClient

from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.jobs.predict import predict_file
from psy_agents_noaug.jobs.register import register_from_run
from psy_agents_noaug.models.factory import build_model
from psy_agents_noaug.models.serving import INPUT_EXAMPLE, log_criteria_model
from tests.mlflow_server import free_port

MODEL_CFG = {"name": "tiny", "encoder_name": "tiny", "pooling": "mean", "dropout": 0.1}
MAX_LENGTH = 48
NAME = "criteria_classifier"
POSTS = pd.DataFrame(
    {
        "post_id": ["p1", "p2"],
        "text": ["I sleep twelve hours and still wake up exhausted.", "Lately I enjoy nothing."],
    }
)

# Loads the registered model in a process that has never seen the model object.
FRESH_PROCESS = """
import json, sys
import mlflow, pandas as pd
posts = pd.DataFrame(json.loads(open(sys.argv[1]).read()))
model = mlflow.pyfunc.load_model("models:/criteria_classifier@production")
model.predict(posts).to_json(sys.argv[2], orient="records")
"""


class _Marker:
    """Pickles as `Path.touch(path)`: proof of code execution if a loader unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def tiny_trained_model(seed: int = 0):  # type: ignore[no-untyped-def]
    """The tiny classifier after a few optimizer steps, so its weights are not the init's."""
    model, tokenizer = build_model(SimpleNamespace(**MODEL_CFG), seed=seed)
    texts = [t for t in POSTS["text"] for _ in CRITERIA]
    criteria = [c.description for _ in POSTS["text"] for c in CRITERIA]
    batch = tokenizer(
        texts,
        criteria,
        truncation="only_first",
        max_length=MAX_LENGTH,
        padding=True,
        return_tensors="pt",
    )
    labels = torch.tensor([i % 2 for i in range(len(texts))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**batch), labels).backward()
        optimizer.step()
    return model.eval(), tokenizer


def reference_probabilities(model, tokenizer, texts: list[str]) -> list[float]:  # type: ignore[no-untyped-def]
    """Class-1 probability per (post, criterion), one unpadded pair at a time, in memory."""
    model.eval()
    out = []
    with torch.no_grad():
        for text in texts:
            for criterion in CRITERIA:
                enc = tokenizer(
                    text,
                    criterion.description,
                    truncation="only_first",
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                out.append(float(torch.softmax(model(**enc), dim=-1)[0, 1]))
    return out


def log_checkpoint_run(uri: str, model: torch.nn.Module, f1: float = 0.6123) -> str:
    """A training run holding checkpoints/best_checkpoint.pt in the Trainer's format."""
    client = MlflowClient(uri)
    run = client.create_run(experiment_id="0", run_name="criteria_tiny_test")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "best_checkpoint.pt")
        torch.save(
            {
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": {},
                "epoch": 2,
                "global_step": 12,
                "best_metric": f1,
                "metric_name": "val_f1_macro",
                "config": {
                    "model": {**MODEL_CFG, "max_length": MAX_LENGTH},
                    "task": {"name": "criteria", "num_labels": 2},
                },
            },
            path,
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
    assert production.run_id in version.description
    assert version.run_id == production.run_id
    names = {a.path for a in MlflowClient().list_artifacts(production.run_id, "best_model")}
    assert "best_model/MLmodel" in names


def test_pyfunc_gives_probability_and_decision_per_post_and_criterion(
    uri: str, production: SimpleNamespace
) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@production")
    frame = pd.DataFrame(
        {
            "post_id": ["a", "b"],
            "text": POSTS["text"].tolist(),
            "criterion_id": ["A.4", None],
        }
    )
    out = model.predict(frame)
    assert list(out.columns) == [
        "post_id",
        "criterion_id",
        "criterion_name",
        "probability",
        "prediction",
    ]
    assert out["post_id"].tolist() == ["a"] + ["b"] * 9
    assert out["criterion_id"].tolist() == ["A.4"] + [c.id for c in CRITERIA]
    assert out["criterion_name"].iloc[0] == "Sleep disturbance"
    expected = reference_probabilities(production.model, production.tokenizer, POSTS["text"])
    assert out["probability"].iloc[0] == pytest.approx(expected[3], abs=1e-5)
    assert out["probability"].iloc[1:].tolist() == pytest.approx(expected[9:], abs=1e-5)
    assert (out["prediction"] == (out["probability"] >= 0.5).astype(int)).all()

    everything = model.predict(pd.DataFrame({"text": ["x y z"]}), params={"threshold": 0.0})
    assert everything["post_id"].tolist() == ["0"] * 9  # default id: the row index
    assert everything["prediction"].tolist() == [1] * 9


def test_pyfunc_rejects_unknown_criterion_and_missing_text(
    uri: str, production: SimpleNamespace
) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@production")
    with pytest.raises(Exception, match=r"unknown criterion_id 'B\.1'"):
        model.predict(pd.DataFrame({"text": ["hello"], "criterion_id": ["B.1"]}))
    with pytest.raises(Exception, match="text"):
        model.predict(pd.DataFrame({"post": ["hello"]}))


def test_stored_input_example_is_synthetic(uri: str, production: SimpleNamespace) -> None:
    local = mlflow.artifacts.download_artifacts(f"runs:/{production.run_id}/best_model")
    stored = Path(local, "input_example.json").read_text()
    assert INPUT_EXAMPLE["text"].iloc[0] in stored
    assert not any(text in stored for text in POSTS["text"])
    bundle = Path(local, "artifacts", "bundle")
    assert {p.name for p in bundle.iterdir()} == {
        "criteria_model.json",
        "encoder",
        "tokenizer",
        "weights.pt",
    }  # weights as a state_dict, no pickled model
    weights = torch.load(bundle / "weights.pt", weights_only=True)
    trained = production.model.state_dict()
    # The rebuilt encoder may carry an unused pooler; every trained tensor is there, unchanged.
    assert all(torch.equal(weights[k], v) for k, v in trained.items())


def test_log_criteria_model_needs_a_run_and_valid_arguments(uri: str) -> None:
    model, tokenizer = build_model(SimpleNamespace(**MODEL_CFG), seed=0)
    cfg = {**MODEL_CFG, "max_length": MAX_LENGTH}
    with pytest.raises(ValueError, match="needs run_id or an active MLflow run"):
        log_criteria_model(model, tokenizer, cfg)
    with mlflow.start_run():
        with pytest.raises(ValueError, match="stage must be one of"):
            log_criteria_model(model, tokenizer, cfg, registered_model_name="x", stage="Live")
        with pytest.raises(ValueError, match="need registered_model_name"):
            log_criteria_model(model, tokenizer, cfg, stage="Production")
        with pytest.raises(ValueError, match="max_length"):
            log_criteria_model(model, tokenizer, MODEL_CFG)


def test_stored_threshold_is_the_default_decision_threshold(
    uri: str, production: SimpleNamespace
) -> None:
    cfg = {**MODEL_CFG, "max_length": MAX_LENGTH}
    with mlflow.start_run():
        info = log_criteria_model(production.model, production.tokenizer, cfg, threshold=0.0)
    model = mlflow.pyfunc.load_model(info.model_uri)
    assert info.model_uri.endswith("/model") and info.model_version is None
    assert model.predict(POSTS)["prediction"].tolist() == [1] * 18
    strict = model.predict(POSTS, params={"threshold": 1.0})
    assert strict["prediction"].tolist() == [0] * 18


def test_registering_the_same_run_again_reuses_its_model_and_archives(
    uri: str, production: SimpleNamespace
) -> None:
    first = register_from_run(production.run_id, "criteria_copy", "Production", uri)
    second = register_from_run(production.run_id, "criteria_copy", "Production", uri)
    client = MlflowClient()
    assert first.source == second.source  # the run's best_model/ is logged once
    assert client.get_model_version("criteria_copy", str(first.version)).current_stage == (
        "Archived"
    )
    production_version = client.get_model_version_by_alias("criteria_copy", "production")
    assert str(production_version.version) == str(second.version)


def test_register_from_run_errors_name_the_problem(uri: str) -> None:
    bare = MlflowClient().create_run(experiment_id="0").info.run_id
    with pytest.raises(ValueError, match=r"has no artifact checkpoints/best_checkpoint\.pt"):
        register_from_run(bare, "nope", None, uri)
    with pytest.raises(ValueError, match="no run 'deadbeef'"):
        register_from_run("deadbeef", "nope", None, uri)
    with pytest.raises(ValueError, match="stage must be one of"):
        register_from_run(bare, "nope", "Live", uri)


def test_checkpoint_is_loaded_with_weights_only(uri: str, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    path = tmp_path / "best_checkpoint.pt"
    torch.save({"model_state_dict": {}, "config": {"model": {}}, "x": _Marker(marker)}, path)
    client.log_artifact(run_id, str(path), "checkpoints")
    with pytest.raises(pickle.UnpicklingError):
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
    assert list(result.columns) == ["post_id", "criterion_id", "probability", "prediction"]
    assert result["post_id"].tolist() == ["p1"] * 9 + ["p2"] * 9
    expected = reference_probabilities(production.model, production.tokenizer, POSTS["text"])
    assert result["probability"].tolist() == pytest.approx(expected, abs=1e-5)
    assert not any(text in out.read_text() for text in POSTS["text"])  # no post text written


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
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = pd.DataFrame(json.loads((tmp_path / "pred.json").read_text()))
    expected = reference_probabilities(production.model, production.tokenizer, POSTS["text"])
    assert loaded["probability"].tolist() == pytest.approx(expected, abs=1e-5)
    assert loaded["prediction"].tolist() == [int(p >= 0.5) for p in expected]


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_probabilities_per_criterion(
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
        assert predictions.groupby("post_id").size().to_dict() == {"p1": 9, "p2": 9}
        assert predictions["criterion_id"].tolist() == [c.id for c in CRITERIA] * 2
        expected = reference_probabilities(production.model, production.tokenizer, POSTS["text"])
        assert predictions["probability"].tolist() == pytest.approx(expected, abs=1e-5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        log.close()
