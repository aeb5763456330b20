"""Load test: 4 HPO workers + 1 training run write to one tracking server; count every point.

    python bench/load_test.py                 # start a server on PostgreSQL, run, print, stop
    python bench/load_test.py --steps 200     # smaller
    python bench/load_test.py --tracking-uri http://127.0.0.1:5000 --storage postgresql+psycopg2://…

Every process logs a fixed number of steps through the metric sink as fast as it can (the
spec's metric names: four ``train/*`` per step, six ``system/*`` every 10 steps), after a
start barrier, and then flushes. Throughput is points stored / seconds from the barrier to
the last flush, so it measures what the tracking server ingests, not how fast Python loops.
Afterwards every run's history is read back and must hold exactly the points sent.

The table is printed and written to ``bench/results/load_test.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPT = REPO / "scripts" / "tracking_server.sh"
RESULTS = HERE / "results" / "load_test.json"
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
TRAIN_KEYS = ("train/loss_step", "train/accuracy_step", "train/learning_rate",
              "train/batch_time_seconds")  # fmt: skip
SYSTEM_KEYS = ("system/cpu_percent", "system/memory_used_gb", "system/memory_percent",
               "system/memory_available_gb", "system/process_memory_rss_gb",
               "system/process_cpu_percent")  # fmt: skip
SYSTEM_EVERY = 10
STUDY = "load_test"
HPO_EXPERIMENT = "hpo_load_test"
TRAIN_EXPERIMENT = "training_load_test"


def points_per_run(steps: int) -> int:
    """Points one run logs for ``steps`` steps."""
    return steps * len(TRAIN_KEYS) + (steps // SYSTEM_EVERY) * len(SYSTEM_KEYS)


def log_steps(sink: Any, steps: int) -> None:
    """The synthetic training loop: the spec's per-step and system metrics, no model."""
    for step in range(1, steps + 1):
        sink.log_dict(
            {
                TRAIN_KEYS[0]: 1.0 / step,
                TRAIN_KEYS[1]: 0.5,
                TRAIN_KEYS[2]: 1e-4,
                TRAIN_KEYS[3]: 0.01,
            },
            step=step,
        )
        if step % SYSTEM_EVERY == 0:
            sink.log_dict(dict.fromkeys(SYSTEM_KEYS, float(step)), step=step)


# ------------------------------------------------------------------------ the processes
def _wait_for_go(go: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start signal ({go}) within {timeout_s} s")
        threading.Event().wait(0.05)


def _hpo_worker(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from psy_agents_noaug.hpo import OptunaRunner
    from psy_agents_noaug.tracking import sink as metric_sink

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timing: dict[str, float] = {}

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        log_steps(metric_sink.get_sink(), args.steps)
        return -((params["x"] - 1.0) ** 2)

    metric_sink.prestart(args.tracking_uri)
    Path(args.ready).touch()
    _wait_for_go(Path(args.go))
    timing["start"] = time.time()
    runner = OptunaRunner(STUDY, "maximize", "score", storage=args.storage, sampler="random",
                          pruner="none", heartbeat_interval=10)  # fmt: skip
    runner.optimize(
        objective, args.trials, {"x": {"type": "float", "low": -2.0, "high": 3.0}},
        mlflow_tracking_uri=args.tracking_uri, mlflow_experiment_name=HPO_EXPERIMENT,
        show_progress_bar=False, print_summary=False,
    )  # fmt: skip
    flushed = metric_sink.flush_all(timeout=600)
    timing["end"] = time.time()
    return {"role": "hpo", "flushed": flushed, **timing}


def _train_process(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow

    from psy_agents_noaug.tracking import sink as metric_sink

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(TRAIN_EXPERIMENT)
    run = mlflow.start_run(run_name="load_test_training")
    sink = metric_sink.get_sink(run.info.run_id)
    sink.own_run()
    Path(args.ready).touch()
    _wait_for_go(Path(args.go))
    start = time.time()
    log_steps(sink, args.steps)
    flushed = sink.flush(timeout=600)
    end = time.time()
    mlflow.end_run("FINISHED")
    return {"role": "train", "flushed": bool(flushed), "start": start, "end": end,
            "run_id": run.info.run_id}  # fmt: skip


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["hpo", "train"])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--storage")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--trials", type=int, default=0, help="trials in the whole study")
    parser.add_argument("--ready", required=True)
    parser.add_argument("--go", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = _hpo_worker(args) if args.role == "hpo" else _train_process(args)
    Path(args.out).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------ the server
def _admin_sql(*statements: tuple[str, tuple[str, ...]]) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
    finally:
        conn.close()


@contextmanager
def _database(prefix: str, *, create: bool) -> Iterator[str]:
    """A uniquely named PostgreSQL database (created unless the server script does it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if create:
        _admin_sql((f'CREATE DATABASE "{name}"', ()))
    try:
        yield f"{PG_ADMIN_URL}/{name}"
    finally:
        _admin_sql(
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ),
            (f'DROP DATABASE IF EXISTS "{name}"', ()),
        )


@contextmanager
def _tracking_server(state: Path, db_url: str) -> Iterator[str]:
    """`scripts/tracking_server.sh --background` on a free port; `--stop` afterwards."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--state", str(state), "--port", str(port), "--db-url", db_url]
    subprocess.run(["bash", str(SCRIPT), "--background", *common], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(SCRIPT), "--stop", "--state", str(state)], check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip


# ------------------------------------------------------------------------ the test
@dataclass
class LoadTestResult:
    """What one load test measured; ``exact`` is True when every point was stored once."""

    hpo_workers: int
    trials_per_worker: int
    steps_per_trial: int
    training_steps: int
    runs: int
    points_sent: int
    points_stored: int
    exact: bool
    seconds: float
    points_per_s: float
    tracking_server: str
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {os.cpu_count()} cores")

    def table(self) -> str:
        rows = [
            ("writers", f"{self.hpo_workers} HPO workers + 1 training run"),
            ("runs", f"{self.runs} ({self.hpo_workers * self.trials_per_worker} trials "
                     f"x {self.steps_per_trial} steps, training x {self.training_steps} steps)"),
            ("points sent", f"{self.points_sent:,}"),
            ("points stored", f"{self.points_stored:,} ({'exact' if self.exact else 'MISMATCH'})"),
            ("wall time", f"{self.seconds:.1f} s"),
            ("ingested", f"{self.points_per_s:,.0f} points/s"),
            ("server", self.tracking_server),
            ("machine", self.machine),
        ]  # fmt: skip
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _count_points(tracking_uri: str) -> tuple[int, int, list[str]]:
    """(points stored, runs checked, problems) over every run the load test made."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    stored, runs, problems = 0, 0, []
    for name in (HPO_EXPERIMENT, TRAIN_EXPERIMENT):
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            problems.append(f"experiment {name} was never created")
            continue
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            if run.data.tags.get("mlflow.runName", "").startswith("HPO_"):
                continue  # the parent holds the study summary, not training points
            runs += 1
            for key in (*TRAIN_KEYS, *SYSTEM_KEYS):
                steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                stored += len(steps)
                if len(steps) != len(set(steps)):
                    problems.append(f"{run.info.run_name}: {key} has duplicate steps")
    return stored, runs, problems


def run_load_test(
    *,
    hpo_workers: int = 4,
    trials_per_worker: int = 2,
    steps: int = 1000,
    training_steps: int = 4000,
    tracking_uri: str | None = None,
    storage: str | None = None,
    workdir: Path | None = None,
) -> LoadTestResult:
    """Run the load test; start a tracking server (and study database) when none is given.

    Args:
        hpo_workers: HPO worker processes sharing one study.
        trials_per_worker: Trials each worker runs (the study has workers x this).
        steps: Steps logged per trial.
        training_steps: Steps of the training run.
        tracking_uri: An existing tracking server; None: start one on PostgreSQL.
        storage: Optuna storage shared by the workers; None: a new PostgreSQL database.
        workdir: Folder for logs and the server state (default: a temporary one).

    Returns:
        The measurements; ``exact`` tells whether every point was stored exactly once.

    Raises:
        RuntimeError: A worker failed (its log is named).
    """
    with tempfile.TemporaryDirectory(prefix="psy-load-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with (
            _maybe(tracking_uri, lambda: _server_on_new_db(work)) as uri,
            _maybe(storage, lambda: _database("psy_load_study", create=True)) as study_storage,
        ):
            return _run(uri, study_storage, work, hpo_workers, trials_per_worker, steps,
                        training_steps)  # fmt: skip


@contextmanager
def _maybe(given: str | None, make: Any) -> Iterator[str]:
    if given is not None:
        yield given
        return
    with make() as made:
        yield made


@contextmanager
def _server_on_new_db(work: Path) -> Iterator[str]:
    with (
        _database("psy_load_mlflow", create=False) as db_url,
        _tracking_server(work / "server", db_url) as uri,
    ):
        yield uri


def _start_together(
    procs: list[subprocess.Popen[bytes]], readies: list[Path], logs: list[Path], go: Path
) -> None:
    """Wait until every process is set up, then release them all at once."""
    deadline = time.monotonic() + 600
    while not all(r.exists() for r in readies):
        failed = [log for p, log in zip(procs, logs, strict=True) if p.poll() not in (None, 0)]
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"a load-test process did not get ready; see {failed or logs}")
        threading.Event().wait(0.05)
    go.touch()


def _run(uri: str, storage: str, work: Path, hpo_workers: int, trials_per_worker: int,
         steps: int, training_steps: int) -> LoadTestResult:  # fmt: skip
    go = work / f"go-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PSY_AGENTS_JOURNAL_DIR": str(work / "journal"), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    outs, readies, logs = [], [], []
    # n_trials is the size of the shared study, not of one worker's share.
    study_trials = hpo_workers * trials_per_worker
    roles = [("hpo", steps, study_trials)] * hpo_workers + [("train", training_steps, 0)]
    for i, (role, n_steps, trials) in enumerate(roles):
        out, ready, log = (work / f"{role}{i}.{ext}" for ext in ("json", "ready", "log"))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", role,
               "--tracking-uri", uri, "--storage", storage, "--steps", str(n_steps),
               "--trials", str(trials), "--ready", str(ready), "--go", str(go),
               "--out", str(out)]  # fmt: skip
        with open(log, "wb") as fh:
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=work, stdout=fh, stderr=subprocess.STDOUT)
            )
        outs.append(out)
        readies.append(ready)
        logs.append(log)
    try:
        _start_together(procs, readies, logs, go)
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait(timeout=1800) != 0:
                raise RuntimeError(f"a load-test process failed; see {log}")
    finally:
        for proc in procs:  # on any failure: no process of ours outlives the test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = [json.loads(o.read_text()) for o in outs]
    start, end = min(r["start"] for r in results), max(r["end"] for r in results)
    sent = hpo_workers * trials_per_worker * points_per_run(steps) + points_per_run(training_steps)
    stored, runs, problems = _count_points(uri)
    exact = stored == sent and not problems and all(r["flushed"] for r in results)
    seconds = end - start
    return LoadTestResult(
        hpo_workers=hpo_workers,
        trials_per_worker=trials_per_worker,
        steps_per_trial=steps,
        training_steps=training_steps,
        runs=runs,
        points_sent=sent,
        points_stored=stored,
        exact=exact,
        seconds=seconds,
        points_per_s=stored / seconds if seconds > 0 else float("nan"),
        tracking_server="mlflow server (scripts/tracking_server.sh, 2 workers) on PostgreSQL",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials-per-worker", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="steps per trial")
    parser.add_argument("--training-steps", type=int, default=4000)
    parser.add_argument("--tracking-uri", help="use this server instead of starting one")
    parser.add_argument("--storage", help="Optuna storage instead of a new PostgreSQL database")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp folder)")
    args = parser.parse_args(argv)
    try:
        result = run_load_test(
            hpo_workers=args.workers, trials_per_worker=args.trials_per_worker,
            steps=args.steps, training_steps=args.training_steps,
            tracking_uri=args.tracking_uri, storage=args.storage, workdir=args.workdir,
        )  # fmt: skip
    except Exception as exc:  # e.g. no PostgreSQL: one clear line, not a traceback
        print(f"error: load test failed: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"written to {args.output}")
    return 0 if result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
