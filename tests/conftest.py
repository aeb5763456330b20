"""Shared fixtures: a real sqlite MLflow store per test, small ReDSM5 CSVs, tiny configs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Two pytest workers share two cores, and each starts training processes: torch's default
# of one thread per core would run four or more busy threads on two cores. One thread each
# (read when torch first loads, here and in every process the tests start).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _forget_mlflow_globals() -> None:
    """MLflow keeps the active experiment in a module global *and* MLFLOW_EXPERIMENT_ID;
    a test that set one would point the next test's fresh store at a missing experiment."""
    import mlflow
    from mlflow.tracking import fluent

    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        os.environ.pop(name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first, slow tests first within them, each file kept whole.

    ``make test`` runs two workers, each taking whole files (``-n 2 --dist loadfile``, in
    pyproject.toml; a file's module fixtures are then made once), in this order: so the
    long drills start at once on both workers and the many short files fill in after them.
    """

    def slow(item: pytest.Item) -> bool:
        return item.get_closest_marker("slow") is not None

    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    ordered = sorted(files.values(), key=lambda tests: -sum(map(slow, tests)))
    items[:] = [item for tests in ordered for item in sorted(tests, key=lambda i: not slow(i))]


@pytest.fixture(scope="session", autouse=True)
def _warm_cli_closed_at_the_end() -> Iterator[None]:
    """The warm CLI process (tests/warm_cli.py), if a test started it, ends with the session."""
    yield
    from tests.warm_cli import close_shared

    close_shared()


@pytest.fixture
def clis() -> Iterator[list]:
    """The CLI processes a drill starts (tests/drills.py ``Cli``); any still running at the
    end is killed, by its own pid."""
    started: list = []
    yield started
    for cli in started:
        cli.kill()


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    _forget_mlflow_globals()
    yield
    _forget_mlflow_globals()


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite store in tmp_path; the test runs with tmp_path as cwd."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSY_AGENTS_JOURNAL_DIR", str(tmp_path / "journal"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite file with its schema, made once (migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_db: Path) -> str:
    """Like `tracking_uri`, but the store is copied from a ready-made schema: much faster."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSY_AGENTS_JOURNAL_DIR", str(tmp_path / "journal"))
    shutil.copyfile(empty_mlflow_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first 40 posts of the bundled sample, as ReDSM5 CSVs (fast to train on)."""
    from psy_agents_noaug.data.sample import sample_paths

    posts_src, ann_src = sample_paths()
    out = tmp_path_factory.mktemp("small_data")
    posts = pd.read_csv(posts_src).head(40)
    ann = pd.read_csv(ann_src)
    ann = ann[ann["post_id"].isin(posts["post_id"])]
    posts.to_csv(out / "posts.csv", index=False)
    ann.to_csv(out / "annotations.csv", index=False)
    return out / "posts.csv", out / "annotations.csv"


@pytest.fixture
def tiny_overrides(small_data: tuple[Path, Path], tracking_uri: str) -> list[str]:
    """Overrides for a seconds-long tiny-model run on the small data, tracked in tmp."""
    from tests.tiny import tiny_overrides as overrides

    return overrides(small_data, tracking_uri)
