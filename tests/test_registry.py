"""Model Registry: save_model_to_mlflow, register_model, stages, aliases, archive, server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from psy_agents_noaug.utils.mlflow_utils import (
    canonical_stage,
    register_model,
    save_model_to_mlflow,
    synthetic_like,
)
from tests.tiny import TINY_MODEL_CFG

# Verification step 6 of the spec, byte for byte (run with `python -c`).
STEP6_SNIPPET = """
from psy_agents_noaug.utils.mlflow_utils import register_model
import mlflow
import torch
mlflow.set_tracking_uri('sqlite:///mlflow.db')
with mlflow.start_run():
    model = torch.nn.Linear(10, 2)
    register_model(model, 'test_model', stage='Staging')
"""


class InputIdsCriteria(nn.Module):
    """The criteria classifier, also callable on token ids alone (what the spec's example does).

    With a whole batch (the Trainer's call) it is the classifier. With ``input_ids`` alone
    each row is read as a post of one sentence, every non-padding token in it: the
    classifier's own scores for such a post, computed without the batch bookkeeping, so
    that ``torch.export`` can trace it for ``register_model``'s ``pt2`` format.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids, attention_mask=None, **batch):  # type: ignore[no-untyped-def]
        if batch:
            return self.classifier(input_ids, attention_mask, **batch)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        hidden = self.classifier.encoder(input_ids=input_ids, attention_mask=mask)
        weights = mask.unsqueeze(-1).to(hidden.last_hidden_state.dtype)
        pooled = (hidden.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier.head(self.classifier.dropout(pooled))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module (creating its schema costs seconds); tests use own names."""
    folder = tmp_path_factory.mktemp("registry_store")
    uri = f"sqlite:///{folder}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the default experiment's artifacts land in this folder
        MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def uri(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(store)
    yield store
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_verification_step6_snippet_leaves_version1_in_staging(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "always::FutureWarning"}
    done = subprocess.run(
        [sys.executable, "-c", STEP6_SNIPPET],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The deprecated-stage warning is silenced around the one call that raises it.
    assert "transition_model_version_stage" not in done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    version = client.get_model_version("test_model", "1")
    assert version.current_stage == "Staging"
    assert "staging" in version.aliases
    assert str(client.get_model_version_by_alias("test_model", "staging").version) == "1"
    assert version.run_id  # registered from inside the snippet's run


def test_usage_example_3_runs_verbatim_in_a_training_script(uri: str) -> None:
    from psy_agents_noaug.data.dataset import EncodingSpec, build_dataloaders
    from psy_agents_noaug.data.posts import CRITERION_IDS
    from psy_agents_noaug.data.sentences import sentence_spans
    from psy_agents_noaug.models.factory import build_model
    from psy_agents_noaug.training.losses import CriteriaLoss
    from psy_agents_noaug.training.tasks import CriteriaTask
    from psy_agents_noaug.training.train_loop import Trainer

    torch.manual_seed(0)
    classifier, tokenizer = build_model(SimpleNamespace(**TINY_MODEL_CFG), seed=0)
    model = InputIdsCriteria(classifier)
    posts = ["I sleep all day. I still feel tired.", "Nothing is fun anymore, not even music."]
    frame = pd.DataFrame(
        {
            "post_id": ["p1", "p2"],
            "text": posts,
            "labels": [[0, 0, 0, 1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0]],
            "evidence": [
                [(*sentence_spans(posts[0])[0], 3), (*sentence_spans(posts[0])[1], 5)],
                [(*sentence_spans(posts[1])[0], 1)],
            ],
        }
    )
    train_loader, val_loader = build_dataloaders(
        [frame, frame],
        tokenizer,
        EncodingSpec(max_length=48),
        batch_size=2,
        eval_batch_size=2,
        seed=0,
    )
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        CriteriaLoss(),
        "cpu",
        num_epochs=1,
        logging_steps=1,
        task=CriteriaTask(CRITERION_IDS),
    )

    # ---- usage example 3 of the spec, verbatim ----
    from psy_agents_noaug.utils.mlflow_utils import register_model

    # After training, register best model
    with mlflow.start_run(run_name="criteria_final"):
        # Train model
        trainer.train()

        # Get sample input for signature
        sample_batch = next(iter(val_loader))
        sample_input = sample_batch["input_ids"][:1]  # Single example

        # Register model
        model_version = register_model(
            model=model,
            model_name="criteria_classifier",
            sample_input=sample_input,
            stage="Production",
            tags={
                "task": "criteria",
                "encoder": "roberta-base",
                "f1_macro": "0.856",
            },
            description="Production criteria classifier with F1=0.856",
        )

        print(f"Registered model version: {model_version}")
    # ---- end of example ----

    client = MlflowClient()
    latest = client.get_model_version_by_alias("criteria_classifier", "production")
    assert str(latest.version) == str(model_version.version)
    assert latest.current_stage == "Production"
    assert latest.tags["f1_macro"] == "0.856" and latest.tags["task"] == "criteria"
    assert latest.description == "Production criteria classifier with F1=0.856"
    assert client.get_run(latest.run_id).info.run_name == "criteria_final"

    # Privacy: the stored example is synthetic, not the real token ids.
    model_uri = client.get_model_version_download_uri("criteria_classifier", latest.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    stored = np.asarray(json.loads(Path(local, "input_example.json").read_text()))
    real = sample_input.numpy()
    assert stored.shape[0] == 2 and stored.shape[1] == real.shape[1]
    assert not any(np.array_equal(row, real[0]) for row in stored)

    # The exported model takes other batch sizes and sequence lengths and matches the
    # trained classifier (each row read as a one-sentence post, every token in it).
    loaded = mlflow.pytorch.load_model("models:/criteria_classifier@production")
    ids = torch.randint(1000, 2000, (3, 11))
    rows = torch.arange(3)
    model.eval()
    with torch.no_grad():
        own = classifier(ids, torch.ones_like(ids), rows[:, None].expand(3, 11), rows, 3, 1)
        assert own.logits.shape == (3, 9)
        assert torch.allclose(model(ids), own.logits, atol=1e-5)
        assert torch.allclose(loaded(ids), own.logits, atol=1e-5)


def test_new_production_version_archives_old_one_and_moves_alias(uri: str) -> None:
    client = MlflowClient()
    with mlflow.start_run():
        first = register_model(nn.Linear(4, 2), "archive_model", stage="Production")
    with mlflow.start_run():
        second = register_model(
            nn.Linear(4, 2), "archive_model", stage="Production", archive_existing=True
        )
    assert (str(first.version), str(second.version)) == ("1", "2")
    assert client.get_model_version("archive_model", "1").current_stage == "Archived"
    assert client.get_model_version("archive_model", "1").aliases == []
    assert client.get_model_version("archive_model", "2").current_stage == "Production"
    assert str(client.get_model_version_by_alias("archive_model", "production").version) == "2"


def test_archive_existing_false_keeps_old_stage_but_moves_alias(uri: str) -> None:
    client = MlflowClient()
    register_model(nn.Linear(3, 2), "keep_model", stage="Staging")
    register_model(nn.Linear(3, 2), "keep_model", stage="Staging", archive_existing=False)
    assert client.get_model_version("keep_model", "1").current_stage == "Staging"
    assert str(client.get_model_version_by_alias("keep_model", "staging").version) == "2"


def test_register_model_outside_a_run_with_tags_description_and_aliases(uri: str) -> None:
    assert mlflow.active_run() is None
    version = register_model(
        nn.Linear(5, 3),
        "outside_model",
        stage="staging",
        tags={"task": "criteria", "f1_macro": 0.5},
        description="made outside any run",
        aliases=["candidate"],
    )
    assert mlflow.active_run() is None  # no run was left behind
    assert version.current_stage == "Staging"
    assert set(version.aliases) == {"staging", "candidate"}
    assert version.tags["f1_macro"] == "0.5"
    assert version.description == "made outside any run"
    loaded = mlflow.pytorch.load_model("models:/outside_model@candidate")
    assert loaded(torch.ones(4, 5)).shape == (4, 3)


def test_archived_stage_sets_no_alias(uri: str) -> None:
    version = register_model(nn.Linear(2, 2), "archived_model", stage="Archived")
    assert version.current_stage == "Archived"
    assert version.aliases == []


@pytest.mark.parametrize("bad", ["Prod", "staged", "", "None"])
def test_register_model_rejects_unknown_stage_before_logging(uri: str, bad: str) -> None:
    with pytest.raises(ValueError, match="stage must be one of Staging, Production, Archived"):
        register_model(nn.Linear(2, 2), "never_model", stage=bad)
    assert MlflowClient().search_registered_models(filter_string="name='never_model'") == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [("production", "Production"), ("STAGING", "Staging"), ("Archived", "Archived"), (None, None)],
)
def test_canonical_stage_is_case_insensitive(given: str | None, expected: str | None) -> None:
    assert canonical_stage(given) == expected


def test_stage_transition_raises_no_deprecation_warning(uri: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register_model(nn.Linear(2, 2), "quiet_model", stage="Production")
    stage_warnings = [w for w in caught if "transition_model_version_stage" in str(w.message)]
    assert stage_warnings == []


def test_model_without_derivable_example_falls_back_to_pickle(uri: str) -> None:
    conv = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten())
    with mlflow.start_run():
        info = save_model_to_mlflow(conv, "conv")
    assert info.flavors["pytorch"]  # logged; the pickle format needs no example
    assert info.saved_input_example_info is None
    loaded = mlflow.pytorch.load_model(info.model_uri)
    x = torch.ones(2, 2, 6)
    assert torch.allclose(loaded(x), conv(x))


def test_linear_without_sample_gets_synthetic_example_and_signature(uri: str) -> None:
    model = nn.Linear(10, 2)
    model.train()
    with mlflow.start_run():
        info = save_model_to_mlflow(model)
    assert model.training  # the caller's mode is restored after export
    inputs = info.signature.inputs.inputs[0]
    assert inputs.shape == (-1, 10) and inputs.type == np.dtype("float32")
    assert info.signature.outputs.inputs[0].shape == (-1, 2)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    assert pyfunc.predict(np.ones((5, 10), dtype=np.float32)).shape == (5, 2)


def test_explicit_input_example_is_stored_as_given(uri: str) -> None:
    example = np.arange(20, dtype=np.float32).reshape(2, 10)
    with mlflow.start_run():
        info = save_model_to_mlflow(nn.Linear(10, 2), input_example=example)
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri)
    stored = np.asarray(json.loads(Path(local, "input_example.json").read_text()))
    assert np.array_equal(stored, example)


def test_synthetic_like_keeps_shape_dtype_and_range_only() -> None:
    real = np.array([[101, 2023, 2003, 1037, 102]], dtype=np.int64)
    fake = synthetic_like(real)
    assert fake.shape == (2, 5) and fake.dtype == np.int64
    assert fake.min() >= 101 and fake.max() <= 2023
    assert not np.array_equal(fake[0], real[0])


def test_save_model_rejects_bad_arguments(uri: str) -> None:
    with pytest.raises(ValueError, match="serialization_format must be one of"):
        save_model_to_mlflow(nn.Linear(2, 2), serialization_format="onnx")
    with pytest.raises(ValueError, match=r"sample_input must be a torch\.Tensor"):
        save_model_to_mlflow(nn.Linear(2, 2), sample_input={"input_ids": [1, 2]})
    with pytest.raises(ValueError, match="needs an example"):
        save_model_to_mlflow(nn.Sequential(nn.Conv1d(1, 1, 1)), serialization_format="pt2")


@pytest.mark.slow
def test_register_model_against_an_mlflow_server(tmp_path: Path) -> None:
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(f"sqlite:///{tmp_path}/server.db", tmp_path)
    try:
        server.start()
        mlflow.set_tracking_uri(server.url)
        model = nn.Linear(6, 2)
        with mlflow.start_run():
            first = register_model(model, "served_model", stage="Production", tags={"k": "v"})
        second = register_model(nn.Linear(6, 2), "served_model", stage="Production")
        client = MlflowClient()
        assert first.tags == {"k": "v"}
        assert client.get_model_version("served_model", "1").current_stage == "Archived"
        production = client.get_model_version_by_alias("served_model", "production")
        assert str(production.version) == str(second.version) == "2"
        loaded = mlflow.pytorch.load_model(f"models:/served_model/{first.version}")
        x = torch.randn(3, 6)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-6)

        # The criteria pyfunc, stored in run artifacts, registers through the server too.
        from psy_agents_noaug.models.factory import build_model
        from psy_agents_noaug.models.serving import OUTPUT_COLUMNS, log_criteria_model

        criteria_model, tokenizer = build_model(SimpleNamespace(**TINY_MODEL_CFG), seed=0)
        with mlflow.start_run() as run:
            info = log_criteria_model(
                criteria_model,
                tokenizer,
                {**TINY_MODEL_CFG, "max_length": 32},
                registered_model_name="served_criteria",
                stage="Production",
            )
        assert info.model_version is not None and info.model_version.run_id == run.info.run_id
        served = mlflow.pyfunc.load_model("models:/served_criteria@production")
        out = served.predict(pd.DataFrame({"text": ["I cannot get out of bed."]}))
        assert list(out.columns) == list(OUTPUT_COLUMNS)
        assert len(out) == 9 and out["probability"].between(0, 1).all()
        assert (out["threshold"] == 0.5).all()  # logged without tuned thresholds
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        server.stop()
