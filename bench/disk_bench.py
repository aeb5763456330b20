"""Disk benchmark: what a MiniLM training run and a 12-trial study store, before and after.

"Before" is the first round's behaviour, reproduced by today's switches: the optimizer's
state in every checkpoint (``training.save_optimizer=true``) and every trial keeping its
checkpoint (``stage.keep_checkpoints=null``). "After" is today's default: weights-only
checkpoints, and only the best three trials keep theirs. Disk does not depend on how long
a model trains, so every case trains MiniLM for one epoch on 40 posts of the bundled
sample; what is measured is every byte a case leaves on disk but the sqlite database (run
artifacts and logged models alike).

    .venv/bin/python bench/disk_bench.py      # prints a table, writes bench/results/disk.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
POSTS = 40
N_TRIALS = 12
MB = 1024 * 1024
BEFORE = ["training.save_optimizer=true", "stage.keep_checkpoints=null"]
CASES: list[dict[str, Any]] = [
    {"case": "train, before", "job": "train", "overrides": BEFORE[:1]},
    {"case": "train, after", "job": "train", "overrides": []},
    {"case": f"{N_TRIALS}-trial study, before", "job": "hpo", "overrides": BEFORE},
    {"case": f"{N_TRIALS}-trial study, after", "job": "hpo", "overrides": []},
]


def _small_data(folder: Path) -> list[str]:
    """The first POSTS posts of the bundled sample (and their annotations) as CSVs."""
    import pandas as pd

    from psy_agents_noaug.data.sample import corpus_paths

    posts_path, annotations_path = corpus_paths("sample", folder)
    posts = pd.read_csv(posts_path).head(POSTS)
    annotations = pd.read_csv(annotations_path)
    annotations = annotations[annotations["post_id"].isin(posts["post_id"])]
    posts.to_csv(folder / "posts.csv", index=False)
    annotations.to_csv(folder / "annotations.csv", index=False)
    return [f"data.posts_path={folder / 'posts.csv'}",
            f"data.annotations_path={folder / 'annotations.csv'}"]  # fmt: skip


def _bytes_under(folder: Path) -> int:
    """Artifact bytes under a case's folder: everything but the sqlite store itself."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix != ".db")


def _run_case(case: dict[str, Any], data: list[str], workdir: Path) -> dict[str, Any]:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.hpo import run_hpo
    from psy_agents_noaug.jobs.train import run_train
    from psy_agents_noaug.tracking import shutdown

    store = workdir / "store"
    store.mkdir()
    overrides = [
        *data,
        "model=minilm",
        "training.num_epochs=1",
        "training.batch_size=8",
        "progress=false",
        f"mlflow.tracking_uri=sqlite:///{store / 'mlflow.db'}",
        f"mlflow.journal_dir={workdir / 'journal'}",
        *case["overrides"],
    ]
    started = time.perf_counter()
    previous = Path.cwd()
    os.chdir(workdir)  # anything a job writes relative to the cwd stays in the case
    try:
        if case["job"] == "train":
            run_train(load_config(overrides))
        else:
            hpo = ["stage=stage0", f"stage.n_trials={N_TRIALS}", "stage.num_epochs=1"]
            run_hpo(load_config([*overrides, *hpo]))
        shutdown()
    finally:
        os.chdir(previous)
    checkpoints = list(workdir.rglob("best_checkpoint.pt"))
    return {
        "case": case["case"],
        "total_mb": _bytes_under(workdir) / MB,
        "checkpoints": len(checkpoints),
        "checkpoint_mb": sum(p.stat().st_size for p in checkpoints) / MB,
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "disk.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="psy-disk-bench-") as tmp:
        data = _small_data(Path(tmp))
        for i, case in enumerate(CASES):
            workdir = Path(tmp) / f"case{i}"
            workdir.mkdir()
            rows.append(_run_case(case, data, workdir))
            print(f"{case['case']}: {rows[-1]['total_mb']:.0f} MB", flush=True)
    print()
    print("| case | artifacts on disk | checkpoints kept | checkpoint bytes |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['case']} | {row['total_mb']:.0f} MB | {row['checkpoints']} | "
              f"{row['checkpoint_mb']:.0f} MB |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"host": platform.node(), "posts": POSTS, "rows": rows}, indent=2) + "\n"
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
