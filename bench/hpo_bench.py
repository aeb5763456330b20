"""HPO benchmark: wall time of one fixed small study, with/without pruning, 1 vs 2 workers.

Every case is the same study: 12 trials x 5 epochs, the 12 parameter sets enqueued up front
from a fixed seed, so every case trains the same configurations. The objective does a fixed
amount of real CPU work per epoch (a small MLP on synthetic data, one torch thread) and
reports a synthetic learning curve that depends on the learning rate, so the median pruner
has bad trials to stop. Each case runs as worker processes (1 or 2) sharing a JournalStorage
file and one sqlite MLflow store, so process start-up is in every number alike. Wall time is
from launching the workers until the last one exits.

    .venv/bin/python bench/hpo_bench.py        # prints a table, writes bench/results/hpo.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

RESULTS = Path(__file__).parent / "results"
N_TRIALS = 12
EPOCHS = 5
STEPS_PER_EPOCH = 300
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "hidden": {"type": "categorical", "choices": [32, 64]},
}
CASES = [
    {"case": "1 worker, no pruning", "workers": 1, "pruner": "none"},
    {"case": "1 worker, median pruning", "workers": 1, "pruner": "median"},
    {"case": "2 workers, no pruning", "workers": 2, "pruner": "none"},
    {"case": "2 workers, median pruning", "workers": 2, "pruner": "median"},
]


def _epoch_work(hidden: int, seed: int) -> None:
    """A fixed amount of real training work (same for every trial and epoch)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(STEPS_PER_EPOCH):
        x = torch.randn(256, 64, generator=gen)
        y = (x[:, 0] > 0).long()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _worker(storage: str, tracking_uri: str, pruner: str, study: str) -> None:
    import optuna
    import torch

    from psy_agents_noaug.hpo import OptunaRunner, make_pruner, make_pruning_callback

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial, params: dict[str, Any]) -> float:
        report = make_pruning_callback(trial, "val_f1_macro")
        # best near lr=1e-2; the curve rises with epochs
        quality = 0.9 - 0.12 * abs(math.log10(params["learning_rate"]) + 2.0)
        value = 0.0
        for epoch in range(1, EPOCHS + 1):
            _epoch_work(params["hidden"], seed=trial.number * 100 + epoch)
            value = quality * (1 - math.exp(-epoch / 2))
            report(epoch, {"val_f1_macro": value})
        return value

    runner = OptunaRunner(
        study,
        "maximize",
        "val_f1_macro",
        storage=storage,
        sampler="random",
        pruner=make_pruner(pruner, n_startup_trials=3),
        seed=0,
        plot_interval_s=None,
    )
    runner.optimize(
        objective,
        N_TRIALS,
        SPACE,
        mlflow_tracking_uri=tracking_uri,
        mlflow_experiment_name="hpo_bench",
        show_progress_bar=False,
        print_summary=False,
    )


def _run_case(case: dict[str, Any], folder: Path, tracking_uri: str) -> dict[str, Any]:
    import optuna

    from psy_agents_noaug.hpo.storage import open_storage

    study = case["case"].replace(" ", "_").replace(",", "")
    storage = f"journal:{folder / (study + '.journal')}"
    handle = open_storage(storage, study, heartbeat_interval=None)
    fixed = optuna.create_study(study_name=study, storage=handle.storage, direction="maximize")
    rng = random.Random(0)
    for _ in range(N_TRIALS):
        fixed.enqueue_trial(
            {"learning_rate": 10 ** rng.uniform(-4, -1), "hidden": rng.choice([32, 64])}
        )
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--storage",
        storage,
        "--tracking-uri",
        tracking_uri,
        "--pruner",
        case["pruner"],
        "--study",
        study,
    ]
    env = {**os.environ, "PSY_AGENTS_JOURNAL_DIR": str(folder / "journal")}
    load_before = os.getloadavg()[0]  # other work on the machine skews wall times
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=folder, env=env) for _ in range(case["workers"])]
    codes = [p.wait(timeout=900) for p in procs]
    wall = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"{case['case']}: worker exit codes {codes}")

    loaded = optuna.load_study(
        study_name=study, storage=open_storage(storage, study, heartbeat_interval=None).storage
    )
    trials = loaded.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    epochs_run = sum((max(t.intermediate_values) if t.intermediate_values else 0) for t in trials)
    return {
        **case,
        "n_trials": len(trials),
        "completed": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "epochs_run": int(epochs_run),
        "best_value": round(loaded.best_value, 4),
        "wall_s": round(wall, 2),
        "load_avg_1m_before": round(load_before, 2),
    }


def run_hpo_bench() -> list[dict[str, Any]]:
    """Run every case once; one row per case.

    Returns:
        Rows with ``case``, ``workers``, ``pruner``, ``n_trials``, ``completed``, ``pruned``,
        ``epochs_run`` (of ``n_trials * 5``), ``best_value``, ``wall_s`` and the machine's
        1-minute load average before the case.
    """
    from mlflow.tracking import MlflowClient

    rows = []
    with tempfile.TemporaryDirectory(prefix="hpo_bench_") as tmp:
        folder = Path(tmp)
        tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        MlflowClient(tracking_uri).search_experiments()  # schema once, outside the timing
        for case in CASES:
            rows.append(_run_case(case, folder, tracking_uri))
            print(f"  {rows[-1]['case']}: {rows[-1]['wall_s']} s", file=sys.stderr)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "case",
        "workers",
        "pruner",
        "completed",
        "pruned",
        "epochs_run",
        "best_value",
        "wall_s",
    ]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storage")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--pruner")
    parser.add_argument("--study")
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.storage, args.tracking_uri, args.pruner, args.study)
        return 0
    rows = run_hpo_bench()
    print(_table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "hpo",
        "study": {"n_trials": N_TRIALS, "epochs": EPOCHS, "steps_per_epoch": STEPS_PER_EPOCH},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rows": rows,
    }
    (RESULTS / "hpo.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'hpo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
