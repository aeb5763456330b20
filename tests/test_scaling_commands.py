"""The README's "Scaling out" commands, run as written (docs/scaling-out.md is the source).

Each ``<!-- cmd: NAME -->`` block of the doc runs through bash with the doc's settings
pointed at throwaway resources (a free port, uniquely named databases); only small test
settings (tiny model, small data, two trials) are appended to the command lines.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tests.mlflow_server import (
    PG_ADMIN,
    PG_DRIVER,
    PG_HOST,
    PG_PORT,
    REPO,
    drop_database,
    free_port,
    postgres_available,
)

DOC = REPO / "docs" / "scaling-out.md"
DISTRIBUTED_MARKER = REPO / "src" / "psy_agents_noaug" / "training" / "distributed.py"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(postgres_available() is not None, reason=str(postgres_available())),
]


def doc_commands() -> dict[str, str]:
    """``{name: command}`` from the doc's ``<!-- cmd: name -->`` bash blocks."""
    text = DOC.read_text()
    blocks = re.findall(r"<!-- cmd: ([\w-]+) -->\s*```bash\n(.*?)```", text, flags=re.S)
    return {name: body.replace("\\\n", " ").strip() for name, body in blocks}


def _bash(command: str, env: dict[str, str], cwd: Path, *extra: str, timeout: int = 600):
    """Run one doc command with ``extra`` arguments appended to it."""
    assert "\n" not in command, "one command per block"
    return subprocess.run(
        ["bash", "-c", f'{command} "$@"', "doc-command", *extra],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _popen(command: str, env: dict[str, str], cwd: Path, log: Path, *extra: str):
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-c", f'{command} "$@"', "doc-command", *extra],
            env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A working folder that looks like the repo (scripts/), and the doc's settings."""
    work = tmp_path_factory.mktemp("scaling")
    (work / "scripts").symlink_to(REPO / "scripts")
    suffix = uuid.uuid4().hex[:10]
    port = free_port()
    mlflow_db, study_db = f"psy_scale_mlflow_{suffix}", f"psy_scale_study_{suffix}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": PG_HOST,
        "PGPORT": str(PG_PORT),
        "PGUSER": PG_ADMIN,
        "PSY_MLFLOW": f"http://127.0.0.1:{port}",
        "PSY_STUDY_DB": study_db,
        # The server command's defaults, moved off the real port, folder and database.
        "PSY_TRACKING_PORT": str(port),
        "PSY_TRACKING_STATE": str(work / "server"),
        "PSY_TRACKING_DB_URL": f"{PG_DRIVER}://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{mlflow_db}",
        "PSY_TRACKING_WORKERS": "1",
        "PSY_AGENTS_JOURNAL_DIR": str(work / "journal"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONUNBUFFERED": "1",
    }
    info = {"work": work, "env": env, "port": port, "url": env["PSY_MLFLOW"],
            "mlflow_db": mlflow_db, "study_db": study_db}  # fmt: skip
    try:
        yield info
    finally:
        subprocess.run(["bash", "scripts/tracking_server.sh", "--stop"], env=env, cwd=work,
                       capture_output=True, timeout=60)  # fmt: skip
        drop_database(mlflow_db)
        drop_database(study_db)


@pytest.fixture(scope="module")
def server(site: dict) -> dict:
    """The doc's tracking-server command, run once for the module."""
    result = _bash(doc_commands()["tracking-server"], site["env"], site["work"])
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"tracking URI:  {site['url']}" in result.stdout
    assert requests.get(site["url"] + "/health", timeout=10).ok
    return site


def _small(small_data: tuple[Path, Path]) -> list[str]:
    posts, ann = small_data
    return ["model=tiny", "model.max_length=64", "training.logging_steps=1",
            f"data.posts_path={posts}", f"data.annotations_path={ann}",
            "progress=false"]  # fmt: skip


def test_doc_has_every_scaling_command() -> None:
    assert {"tracking-server", "study-db", "hpo-worker", "torchrun"} <= set(doc_commands())


def test_tracking_server_command_starts_postgres_server_and_stop_ends_it(
    server: dict, tmp_path: Path
) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname=server["mlflow_db"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'")
            assert cur.fetchone() == (1,)  # the script created the database, MLflow its tables
    finally:
        conn.close()
    assert (server["work"] / "server" / "server.pid").exists()
    # A second start is refused while the first runs.
    again = _bash(doc_commands()["tracking-server"], server["env"], server["work"])
    assert again.returncode == 2 and "already running" in again.stderr


def test_study_db_and_two_hpo_workers_share_one_study(
    server: dict, small_data: tuple[Path, Path]
) -> None:
    import optuna

    commands, env, work = doc_commands(), server["env"], server["work"]
    created = _bash(commands["study-db"], env, work)
    assert created.returncode == 0, created.stderr
    extra = [*_small(small_data), "stage.n_trials=2", "stage.num_epochs=1", "stage.pruner=none",
             "stage.heartbeat_interval=2"]  # fmt: skip
    logs = [work / f"worker{i}.log" for i in range(2)]
    workers = [_popen(commands["hpo-worker"], env, work, log, *extra) for log in logs]
    try:
        codes = [w.wait(timeout=600) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]

    storage = f"{PG_DRIVER}://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{server['study_db']}"
    study = optuna.load_study(study_name="criteria_stage1", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(server["url"])
    experiment = client.get_experiment_by_name("hpo_criteria")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "HPO_criteria_stage1"]
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["trial_0000", "trial_0001"]
    for child in children:
        total = int(child.data.metrics["final/total_steps"])
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id,
                                                                 "train/loss_step"))  # fmt: skip
        assert steps == list(range(1, total + 1))
    assert "secret" not in parent.data.tags["hpo.storage"]


@pytest.mark.skipif(
    not DISTRIBUTED_MARKER.exists(), reason="DDP support (training/distributed.py) not landed"
)
def test_torchrun_command_trains_one_run_from_two_processes(
    server: dict, small_data: tuple[Path, Path]
) -> None:
    command = doc_commands()["torchrun"]
    assert "--nproc_per_node=4" in command
    command = command.replace("--nproc_per_node=4", "--nproc_per_node=2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        master_port = s.getsockname()[1]
    env = {**server["env"], "MASTER_PORT": str(master_port), "OMP_NUM_THREADS": "1"}
    command = command.replace("torchrun ", f"torchrun --master_port={master_port} ", 1)
    result = _bash(command, env, server["work"], *_small(small_data), "device=cpu",
                   "training.num_epochs=1", "mlflow.run_name=torchrun_drill")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    client = MlflowClient(server["url"])
    experiment = client.get_experiment_by_name("training_criteria")
    runs = [r for r in client.search_runs([experiment.experiment_id])
            if r.info.run_name == "torchrun_drill"]  # fmt: skip
    assert len(runs) == 1, "only rank 0 may create a run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    total = int(run.data.metrics["final/total_steps"])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step"))
    assert steps == list(range(1, total + 1))


def test_load_test_counts_every_point_exactly(server: dict, tmp_path: Path) -> None:
    """bench/load_test.py, small, against the doc's server: what `make bench` runs."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import load_test
    finally:
        sys.path.remove(str(REPO / "bench"))
    with_db = f"{PG_DRIVER}://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{server['study_db']}"
    result = load_test.run_load_test(
        hpo_workers=2, trials_per_worker=1, steps=40, training_steps=60,
        tracking_uri=server["url"], storage=with_db, workdir=tmp_path,
    )  # fmt: skip
    assert result.exact, result
    assert result.points_sent == 2 * load_test.points_per_run(40) + load_test.points_per_run(60)
    assert result.points_stored == result.points_sent and result.runs == 3
    assert result.points_per_s > 0
    assert "points/s" in result.table()
