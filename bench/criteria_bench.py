"""Model benchmark: whole posts against truncation, and the classifier's design choices.

Two tables, each row a real training run (``train_from_config``, no tracking) in its own
process, so its peak memory is its own:

* ``redsm5``: on the ``redsm5`` corpus profile (1,484 posts of the real data's shape:
  mean about 300 words, up to about 7,000), truncation at 128 and at 512 tokens (one
  window per post, what the dataset's own baseline did) against whole-post windows of 128
  tokens, with the tiny encoder and with MiniLM.
* ``design``: on the bundled sample, MiniLM, the multilabel framing against the pair
  framing, the three aggregations, and the sentence-level evidence loss against post
  labels alone.

Per row: seconds per epoch (training and validation), peak memory (RSS), the fraction of
the training split's tokens the model read, and the best epoch's validation macro F1 and
per-criterion F1. CPU rows train for a few epochs only (``--epochs``), which is enough to
compare rows with each other, not to reach the best F1 a longer run gets.

    .venv/bin/python bench/criteria_bench.py                 # both tables
    .venv/bin/python bench/criteria_bench.py --table redsm5 --epochs 2
    .venv/bin/python bench/criteria_bench.py --table design --set data.max_train_posts=800
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
CRITERIA = tuple(f"A.{i}" for i in range(1, 10))
WHOLE = "data.max_windows_per_post=128"
TRUNCATED = "data.max_windows_per_post=1"  # the first window only: truncation
TABLES: dict[str, list[tuple[str, list[str]]]] = {
    "redsm5": [
        (f"{encoder}, {label}", ["data.profile=redsm5", f"model={encoder}", *extra])
        for encoder in ("tiny", "minilm")
        for label, extra in (
            ("truncated at 128 tokens", ["model.max_length=128", TRUNCATED]),
            ("truncated at 512 tokens", ["model.max_length=512", TRUNCATED]),
            ("whole post, windows of 128", ["model.max_length=128", WHOLE]),
        )
    ],
    "design": [
        ("multilabel, max, sentence loss (default)", []),
        ("pair framing", ["model.framing=pair"]),
        ("noisy_or aggregation", ["model.aggregation=noisy_or"]),
        ("lse aggregation", ["model.aggregation=lse"]),
        ("post labels only (no sentence loss)", ["training.sentence_loss_weight=0"]),
    ],
}


def train_row(overrides: list[str]) -> dict[str, Any]:
    """One training run without tracking; what the table shows of it."""
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.train import prepare, train_from_config

    cfg = load_config(["mlflow.enabled=false", "progress=false", *overrides])
    started = time.perf_counter()
    prepared = prepare(cfg)
    setup_s = time.perf_counter() - started
    results = train_from_config(cfg, prepared=prepared)
    import resource

    best = results["best_metrics"]
    durations = [h["duration_seconds"] for h in results["history"]]
    return {
        "setup_s": setup_s,
        "epochs": len(durations),
        "s_per_epoch": sum(durations) / max(len(durations), 1),
        "tokens_seen": float(prepared.data_params["data/train/tokens_seen_fraction"]),
        "tokens_p95": float(prepared.data_params["data/train/tokens_p95"]),
        "train_posts": int(float(prepared.data_params["data/train/posts"])),
        "val_f1_macro": best.get("val_f1_macro"),
        "val_f1": {c: best.get(f"val_f1_{c}") for c in CRITERIA},
        "val_auprc_macro": best.get("val_auprc_macro"),
        "history": [h.get("val_f1_macro") for h in results["history"]],
        # This process trains one row only: its peak is the row's.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_in_child(overrides: list[str], timeout_s: float) -> dict[str, Any]:
    """Train one row in a child process (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--row", json.dumps(overrides)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    return dict(json.loads(out.strip().splitlines()[-1]))


def _print_table(name: str, rows: list[dict[str, Any]]) -> None:
    head = "| row | epochs | s/epoch | peak RSS | tokens seen | val macro F1 | " + " | ".join(
        CRITERIA
    )
    print(f"\n{name}\n{head} |")
    print("|" + " --- |" * (6 + len(CRITERIA)))
    for row in rows:
        if "error" in row:
            print(f"| {row['row']} | {row['error']} |")
            continue
        per = " | ".join(f"{row['val_f1'][c]:.2f}" for c in CRITERIA)
        print(
            f"| {row['row']} | {row['epochs']} | {row['s_per_epoch']:.0f} | "
            f"{row['peak_rss_mb']:.0f} MB | {row['tokens_seen']:.1%} | "
            f"{row['val_f1_macro']:.3f} | {per} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=[*TABLES, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per row (default 2)")
    parser.add_argument("--only", default=None, help="run only rows whose name has this text")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per row")
    parser.add_argument("--out", type=Path, default=RESULTS / "criteria.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override added to every row (repeatable), e.g. data.max_train_posts=800",
    )
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.row is not None:
        print(json.dumps(train_row(json.loads(args.row))), flush=True)
        return 0
    tables = list(TABLES) if args.table == "all" else [args.table]
    report: dict[str, Any] = {
        "host": platform.node(),
        "epochs": args.epochs,
        "overrides": args.set,
        "tables": {},
    }
    for table in tables:
        rows = []
        for name, overrides in TABLES[table]:
            if args.only and args.only not in name:
                continue
            epochs = [f"training.num_epochs={args.epochs}", "training.early_stopping.patience=0"]
            print(f"[{table}] {name} ...", flush=True)
            row = {"row": name, "overrides": overrides}
            row.update(_run_in_child([*args.set, *overrides, *epochs], args.timeout))
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "overrides"}), flush=True)
        report["tables"][table] = rows
        _print_table(table, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
