"""The MLflow UI, in a real browser, shows what `psy-agents` logged.

One sqlite store is filled through the real CLI (``psy-agents train``, ``hpo`` and
``register``, each a subprocess), ``mlflow ui`` serves it, and headless Chromium opens the
pages a user would: the experiment's runs, a run's charts and artifacts, the HPO parent
with its nested trials, the registered model and its version. Every assertion is on the
rendered page text or layout, and every test saves a screenshot of its page under
``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mlflow import MlflowClient

from tests import warm_cli
from tests.browser import (
    MODEL_TRAINING,
    browser_missing,
    click,
    close_dialogs,
    make_driver,
    open_route,
    rendered_text,
    screenshot,
    start_mlflow_ui,
    type_into,
    wait_for_element,
    wait_for_text,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

_BROWSER_MISSING = browser_missing()
pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(_BROWSER_MISSING is not None, reason=str(_BROWSER_MISSING)),
]

MODEL_NAME = "criteria_classifier"
CLI_TIMEOUT_S = 240
TINY = ["model=tiny", "model.max_length=64", "progress=false"]


@dataclass(frozen=True)
class Store:
    """The store the CLI filled, and what the browser should find in it."""

    uri: str
    train_experiment_id: str
    train_run_id: str
    train_run_name: str
    hpo_experiment_id: str


def _psy_agents(args: list[str], cwd: Path) -> str:
    """Run ``psy-agents ARGS`` as a real process (forked warm: tests/warm_cli.py); its output."""
    env = {
        **os.environ,
        "PSY_AGENTS_JOURNAL_DIR": str(cwd / "journal"),
        "OMP_NUM_THREADS": "1",  # two shared cores: one thread is as fast and lighter
    }
    log = cwd / f"{args[0]}.log"
    proc = warm_cli.shared().start(args, cwd, log, env)
    try:
        code = proc.wait(CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    output = log.read_text(errors="replace")
    assert code == 0, f"psy-agents {args[0]} failed ({code}):\n{output[-3000:]}"
    return output


def _spec_step_6(uri: str, cwd: Path) -> None:
    """The spec's verification step 6, verbatim but for the store's URI."""
    code = f"""
from psy_agents_noaug.utils.mlflow_utils import register_model
import mlflow
import torch
mlflow.set_tracking_uri('{uri}')
with mlflow.start_run():
    model = torch.nn.Linear(10, 2)
    register_model(model, 'test_model', stage='Staging')
"""
    env = {**os.environ, "PSY_AGENTS_JOURNAL_DIR": str(cwd / "journal")}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, small_data: tuple[Path, Path], empty_mlflow_db: Path
) -> Store:
    """Train, search (2 trials) and register through the CLI into one sqlite store."""
    folder = tmp_path_factory.mktemp("ui_store")
    shutil.copyfile(empty_mlflow_db, folder / "mlflow.db")  # the schema, without migrating
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    posts, ann = small_data
    common = [*TINY, f"data.posts_path={posts}", f"data.annotations_path={ann}",
              f"mlflow.tracking_uri={uri}"]  # fmt: skip
    _psy_agents(
        ["train", *common, "training.num_epochs=2", "training.batch_size=16",
         "training.logging_steps=1", "training.system_metrics_interval=5"],
        folder,
    )  # fmt: skip
    _psy_agents(
        ["hpo", "stage=stage0", "stage.n_trials=2", "stage.search_space.batch_size.choices=[32]",
         *common],
        folder,
    )  # fmt: skip
    client = MlflowClient(uri)
    train_exp = client.get_experiment_by_name("training_criteria")
    hpo_exp = client.get_experiment_by_name("hpo_criteria")
    assert train_exp is not None and hpo_exp is not None
    (run,) = client.search_runs([train_exp.experiment_id])
    _psy_agents(["register", f"run_id={run.info.run_id}", "stage=Production",
                 f"mlflow.tracking_uri={uri}"], folder)  # fmt: skip
    _spec_step_6(uri, folder)
    return Store(
        uri=uri,
        train_experiment_id=train_exp.experiment_id,
        train_run_id=run.info.run_id,
        train_run_name=run.info.run_name,
        hpo_experiment_id=hpo_exp.experiment_id,
    )


@pytest.fixture(scope="module")
def ui_url(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, stop = start_mlflow_ui(store.uri, workdir=tmp_path_factory.mktemp("mlflow_ui"))
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, ui_url: str) -> Iterator[WebDriver]:
    """One Chromium for the module; it depends on ``ui_url`` so it closes before the server."""
    browser = make_driver(tmp_path_factory.mktemp("chromium"))
    try:
        yield browser
    finally:
        browser.quit()


def test_training_experiment_lists_the_run_by_name(driver, ui_url: str, store: Store) -> None:
    assert re.fullmatch(r"criteria_tiny_\d{4}-\d{2}-\d{2}", store.train_run_name)
    open_route(driver, ui_url, f"experiments/{store.train_experiment_id}/runs?{MODEL_TRAINING}")
    shown = wait_for_text(driver, store.train_run_name)
    assert "training_criteria" in shown and "1 matching run" in shown
    screenshot(driver, "experiment_training_criteria")


def _chart(metric: str) -> str:
    """XPath of the line drawn in the chart card of ``metric`` (its legend ends in "(<key>)")."""
    return (
        "//*[@data-testid='experiment-view-compare-runs-card']"
        f"[.//text()[contains(., '({metric})')]]"
        "//*[contains(@class, 'js-plotly-plot')]//*[contains(@class, 'scatterlayer')]"
        "//*[contains(@class, 'trace')]"
    )


def test_run_charts_show_step_and_epoch_metrics(driver, ui_url: str, store: Store) -> None:
    route = f"experiments/{store.train_experiment_id}/runs/{store.train_run_id}"
    open_route(driver, ui_url, f"{route}/model-metrics?{MODEL_TRAINING}")
    # Each chart's legend says "<run name> (<metric key>)"; charts are grouped in sections
    # by prefix ("epoch", "final", "train") and drawn only once in view, so look for each one
    # as a user would: through the page's chart search.
    search = "//input[@placeholder='Search metric charts']"
    type_into(driver, search, "val_f1_macro")
    wait_for_text(driver, f"{store.train_run_name} (epoch/val_f1_macro)")
    wait_for_element(driver, _chart("epoch/val_f1_macro"))
    screenshot(driver, "run_model_metrics_epoch")
    type_into(driver, search, "loss_step")
    wait_for_element(driver, _chart("train/loss_step"))
    assert f"{store.train_run_name} (train/loss_step)" in rendered_text(driver)
    screenshot(driver, "run_model_metrics_train")


def test_run_overview_shows_description_datasets_and_logged_model(
    driver, ui_url: str, store: Store
) -> None:
    route = f"experiments/{store.train_experiment_id}/runs/{store.train_run_id}"
    open_route(driver, ui_url, f"{route}?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "criteria classifier, multilabel framing")  # the description
    assert "best validation macro F1" in shown
    wait_for_text(driver, "posts-train")  # the first dataset input (the others behind "+2")
    wait_for_text(driver, "Logged models")
    screenshot(driver, "run_overview")


def test_experiment_logged_models_view_lists_the_model(driver, ui_url: str, store: Store) -> None:
    open_route(driver, ui_url, f"experiments/{store.train_experiment_id}/models?{MODEL_TRAINING}")
    shown = wait_for_text(driver, store.train_run_name)  # the model's source run
    assert re.search(r"\bmodel\b", shown) and "Ready" in shown, shown[:1500]
    screenshot(driver, "experiment_logged_models")


def test_run_artifacts_show_the_figures(driver, ui_url: str, store: Store) -> None:
    route = f"experiments/{store.train_experiment_id}/runs/{store.train_run_id}"
    open_route(driver, ui_url, f"{route}/artifacts?{MODEL_TRAINING}")
    wait_for_text(driver, "figures")
    click(driver, "//*[normalize-space(text())='figures']")
    shown = wait_for_text(driver, "val_pr_curves.png")
    assert all(f"val_{name}.png" in shown for name in ("confusion", "reliability",
                                                       "threshold_sweep"))  # fmt: skip
    click(driver, "//*[normalize-space(text())='val_pr_curves.png']")
    wait_for_text(driver, "figures/val_pr_curves.png")  # the preview's title
    wait_for_element(driver, "//img[@src]")
    screenshot(driver, "run_figures")


def test_run_artifacts_show_config_and_checkpoint(driver, ui_url: str, store: Store) -> None:
    route = f"experiments/{store.train_experiment_id}/runs/{store.train_run_id}"
    open_route(driver, ui_url, f"{route}/artifacts?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "config.yaml")
    assert "checkpoints" in shown
    click(driver, "//*[normalize-space(text())='checkpoints']")
    wait_for_text(driver, "best_checkpoint.pt")
    screenshot(driver, "run_artifacts")


def test_hpo_parent_run_nests_its_trials(driver, ui_url: str, store: Store) -> None:
    open_route(driver, ui_url, f"experiments/{store.hpo_experiment_id}/runs?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "HPO_criteria_stage0")
    parent_cell = "//div[@role='gridcell'][.//a[normalize-space()='HPO_criteria_stage0']]"
    if "trial_0000" not in shown:  # children start collapsed under their parent's expander
        click(driver, f"{parent_cell}//button")
    wait_for_text(driver, "trial_0000")
    wait_for_text(driver, "trial_0001")

    def link_x(name: str) -> int:
        return int(wait_for_element(driver, f"//a[normalize-space()='{name}']").location["x"])

    # nested rows are indented under the parent's name
    assert link_x("trial_0000") > link_x("HPO_criteria_stage0")
    assert link_x("trial_0001") > link_x("HPO_criteria_stage0")
    screenshot(driver, "experiment_hpo_criteria")


def test_models_page_lists_the_registered_model(driver, ui_url: str, store: Store) -> None:
    open_route(driver, ui_url, f"models?{MODEL_TRAINING}")
    shown = wait_for_text(driver, MODEL_NAME)
    assert "Version 1" in shown
    close_dialogs(driver)  # a first visit opens a promotion of the new registry UI
    screenshot(driver, "models")


def test_model_version_page_shows_the_production_alias(driver, ui_url: str, store: Store) -> None:
    open_route(driver, ui_url, f"models/{MODEL_NAME}/versions/1?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "@ production")
    assert re.search(r"Aliases\s*:?\s*@ production", shown), shown[:1500]
    shown = wait_for_text(driver, store.train_run_name)  # "Source Run", fetched after the rest
    assert re.search(rf"Source Run\s*:?\s*{store.train_run_name}", shown), shown[:1500]
    screenshot(driver, "model_version_1")


def test_spec_step_7_models_tab_shows_test_model_version_1_in_staging(
    driver, ui_url: str, store: Store
) -> None:
    open_route(driver, ui_url, f"models?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "test_model")
    close_dialogs(driver)
    open_route(driver, ui_url, f"models/test_model/versions/1?{MODEL_TRAINING}")
    shown = wait_for_text(driver, "Staging")
    assert re.search(r"Stage\s*:?\s*Staging", shown) or "@ staging" in shown, shown[:1500]
    screenshot(driver, "test_model_version_1")
