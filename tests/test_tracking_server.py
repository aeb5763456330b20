"""Tracking-server mode: `scripts/tracking_server.sh` on PostgreSQL, proxied artifacts, basic auth.

One server per module (started by the script, as the README does it): with MLflow's
basic-auth app when it is installed, plain otherwise. Training runs in-process through the
CLI's `main()` against it; the checks read PostgreSQL, the artifact folder and the store.
"""

from __future__ import annotations

import io
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from psy_agents_noaug.tracking.store import mask_uri
from tests.mlflow_server import (
    SCRIPT,
    MlflowServer,
    basic_auth_available,
    postgres_available,
    postgres_database,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(postgres_available() is not None, reason=str(postgres_available())),
]

USER, PASSWORD = "alice", f"alice-{uuid.uuid4().hex}"
EXPERIMENT = "training_criteria"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The script's server on a database the script itself creates."""
    workdir = tmp_path_factory.mktemp("tracking_server")
    auth = basic_auth_available() is None
    with postgres_database("psy_ts", create=False) as db_url:
        srv = MlflowServer(db_url, workdir, via_script=True, auth=auth)
        try:
            srv.start()
            if auth:
                srv.create_user(USER, PASSWORD)
            yield srv
        finally:
            srv.kill()  # nothing to shut down gracefully: the database goes next


@pytest.fixture
def as_user(server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """The test process (and the metric writer it starts) talks to the server as alice."""
    if server.auth:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    return server


@pytest.fixture(autouse=True)
def _clean_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import mlflow

    from psy_agents_noaug.tracking import sink as metric_sink

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSY_AGENTS_JOURNAL_DIR", str(tmp_path / "journal"))
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    metric_sink.shutdown()  # this test's writer process ends with it
    mlflow.set_tracking_uri(None)


def _train_args(small_data: tuple[Path, Path], uri: str, tmp_path: Path) -> list[str]:
    posts, ann = small_data
    return ["train", "model=tiny", "model.max_length=64", "training.num_epochs=1",
            "training.logging_steps=1", f"data.posts_path={posts}",
            f"data.annotations_path={ann}", f"mlflow.tracking_uri={uri}", "progress=false",
            f"training.save_dir={tmp_path / 'ckpt'}"]  # fmt: skip


def _runs(server: MlflowServer) -> list:
    """The experiment's runs, read from the backend database (no credentials needed)."""
    client = MlflowClient(server.backend_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _assert_secret_nowhere(client: MlflowClient, run_id: str, secret: str, files: list) -> None:
    """Not in params, tags, metric names, nor any byte of any artifact (zips opened too)."""
    run = client.get_run(run_id)
    texts = [*run.data.params, *run.data.params.values(), *run.data.tags,
             *run.data.tags.values(), *run.data.metrics]  # fmt: skip
    assert not [t for t in texts if secret in t]
    assert any(p.name == "config.yaml" for p in files)
    needle = secret.encode()
    for path in files:
        data = path.read_bytes()
        assert needle not in data, path
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for member in zf.namelist():
                    assert needle not in zf.read(member), f"{path}:{member}"


# ----------------------------------------------------------------------------- the script
def test_script_creates_the_database_and_serves_artifacts_by_proxy(
    as_user: MlflowServer, small_data: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    import psycopg2

    server = as_user
    assert main(_train_args(small_data, server.url, tmp_path)) == 0
    out, err = capsys.readouterr()
    assert f"open              : {server.url}" in out
    (run,) = _runs(server)
    assert run.info.status == "FINISHED"
    # Artifacts went through the server into --artifacts-destination, not to a client path.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = {p.name for p in server.artifacts.rglob("*") if p.is_file()}
    assert {"config.yaml", "best_checkpoint.pt", "MLmodel"} <= stored
    # The run lives in the PostgreSQL database the script created.
    name = server.backend_uri.rsplit("/", 1)[1]
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
            assert cur.fetchone() == ("FINISHED",)
    finally:
        conn.close()
    steps = int(run.data.metrics["final/total_steps"])
    client = MlflowClient(server.backend_uri)
    history = client.get_metric_history(run.info.run_id, "train/loss_step")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))
    if server.auth:
        assert PASSWORD not in out + err
        files = [p for p in server.artifacts.rglob("*") if p.is_file()]
        _assert_secret_nowhere(client, run.info.run_id, PASSWORD, files)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "http"], "--port must be a number"),
        (["--workers", "0"], "--workers must be a number >= 1"),
        (["--db-url", "sqlite:///mlflow.db"], "must be a postgresql:// URL"),
        (["--db-url", "postgresql+psycopg2://postgres@127.0.0.1:1/x"], "cannot connect"),
        (["--colour", "blue"], "unknown option --colour"),
    ],
)
def test_script_rejects_bad_options_with_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--state", str(tmp_path / "state"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_script_help_lists_its_options() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--db-url", "--port", "--auth", "--background", "--stop", "--artifacts"):
        assert option in result.stdout


# ----------------------------------------------------------------------------- basic auth
@pytest.fixture
def auth_server(server: MlflowServer) -> MlflowServer:
    if not server.auth:
        pytest.skip(str(basic_auth_available()))
    return server


@pytest.mark.parametrize("password", ["wrong-password-123", None])
def test_wrong_or_missing_password_is_one_line_before_training(
    auth_server: MlflowServer,
    password: str | None,
    small_data: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    before = {r.info.run_id for r in _runs(auth_server)}
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    if password is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    assert main(_train_args(small_data, auth_server.url, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "401" in err and "MLFLOW_TRACKING_PASSWORD" in err
    assert password is None or password not in err
    assert {r.info.run_id for r in _runs(auth_server)} == before
    assert not (tmp_path / "ckpt").exists()


# ----------------------------------------------------------------------------- masking
@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgresql://u:s3cret@db:5432/mlflow", "postgresql://u:***@db:5432/mlflow"),
        ("postgresql+psycopg2://u:s3cret@db/m", "postgresql+psycopg2://u:***@db/m"),
        ("http://alice:pw@host:5000", "http://alice:***@host:5000"),
        ("postgresql://u:p@ss@db/m", "postgresql://u:***@db/m"),
        ("http://host:5000", "http://host:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_mask_uri_hides_the_whole_password(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


def test_password_in_the_tracking_uri_reaches_no_param_tag_artifact_or_output(
    small_data: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """A database URL with a password, used directly as the store (trust auth ignores it)."""
    secret = f"pw-{uuid.uuid4().hex}"
    with postgres_database("psy_mask") as db_url:
        uri = db_url.replace("postgres@", f"postgres:{secret}@", 1)
        assert main(_train_args(small_data, uri, tmp_path)) == 0
        out, err = capsys.readouterr()
        assert secret not in out + err
        assert mask_uri(uri) in out
        client = MlflowClient(db_url)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        (run,) = client.search_runs([experiment.experiment_id])
        assert "mlflow.tracking_uri" not in run.data.params  # where it logs shapes no training
        local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
        files = [p for p in local.rglob("*") if p.is_file()]
        _assert_secret_nowhere(client, run.info.run_id, secret, files)
        from psy_agents_noaug.tracking import sink as metric_sink

        metric_sink.shutdown()  # the writer's connections go before the database does
