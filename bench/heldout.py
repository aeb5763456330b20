"""Model quality on posts nobody generated: the hand-written held-out set and late evidence.

``tests/data/heldout`` holds natural posts written by hand, apart from the generator, never
used for training or model selection. This script scores a trained model on them (macro F1
over the nine criteria at the model's own tuned thresholds, per-criterion F1) and checks
the late-evidence posts (one evidence sentence after 400+ words of neutral text). Without
``--run-id`` it first trains the default model (`psy-agents train`, as `make run` does),
with any config overrides given after the options.

``--posts dev`` scores on ``tests/data/dev`` instead: another hand-written set, the one to
choose defaults on (candidates are compared there; the held-out set is read once, at the end).

    python bench/heldout.py [--run-id ID] [--tracking-uri sqlite:///mlflow.db]
                            [--posts heldout|dev] [OVERRIDE ...]

Prints a table and writes ``bench/results/heldout.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
POST_SETS = {"heldout": REPO / "tests" / "data" / "heldout", "dev": REPO / "tests" / "data" / "dev"}
LATE = REPO / "tests" / "data" / "late_evidence.csv"
RESULTS = Path(__file__).parent / "results"


def labelled_posts(folder: Path) -> pd.DataFrame:
    """post_id, text and the nine 0/1 labels of a hand-written set."""
    from psy_agents_noaug.data.posts import build_post_examples
    from psy_agents_noaug.data.redsm5 import load_redsm5

    return build_post_examples(load_redsm5(folder / "posts.csv", folder / "annotations.csv")).frame


def score(model_uri: str, tracking_uri: str, posts: str = "heldout") -> dict[str, object]:
    """Macro F1 (and per criterion) on a hand-written set and the late-evidence checks."""
    import mlflow

    from psy_agents_noaug.data.posts import CRITERION_IDS
    from psy_agents_noaug.training.metrics import criteria_metrics

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    frame = labelled_posts(POST_SETS[posts])
    started = time.perf_counter()
    out = model.predict(frame[["post_id", "text"]])
    seconds = time.perf_counter() - started
    probs = out.pivot(index="post_id", columns="criterion_id", values="probability")
    thresholds = out.groupby("criterion_id")["threshold"].first()
    probs = probs.loc[frame["post_id"], list(CRITERION_IDS)].to_numpy()
    labels = np.array(frame["labels"].tolist())
    metrics = criteria_metrics(
        labels, probs, CRITERION_IDS, [thresholds[c] for c in CRITERION_IDS], prefix=""
    )
    checks = late_evidence(model) if posts == "heldout" else []
    return {
        "model_uri": model_uri,
        "set": posts,
        "posts": len(frame),
        "f1_macro": metrics["f1_macro"],
        "f1_micro": metrics["f1_micro"],
        "auprc_macro": metrics["auprc_macro"],
        "per_criterion_f1": {c: metrics[f"f1_{c}"] for c in CRITERION_IDS},
        "positives": dict(zip(CRITERION_IDS, labels.sum(axis=0).tolist(), strict=True)),
        "predict_seconds": round(seconds, 2),
        "late_evidence": checks,
    }


def late_evidence(model: Any) -> list[dict[str, object]]:
    """Each late-evidence post (held-out too): marked, and the evidence sentence found?"""
    late = pd.read_csv(LATE)
    late_out = model.predict(late[["post_id", "text", "criterion_id"]])
    checks: list[dict[str, object]] = []
    for row, result in zip(late.itertuples(), late_out.itertuples(), strict=True):
        start = row.text.index(row.evidence_sentence)
        checks.append(
            {
                "post_id": row.post_id,
                "criterion_id": row.criterion_id,
                "words_before_evidence": len(row.text[:start].split()),
                "probability": round(result.probability, 4),
                "marked": bool(result.prediction),
                "evidence_found": bool(result.evidence_start <= start < result.evidence_end),
            }
        )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", help="a training run (default: train the default model)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--posts", choices=sorted(POST_SETS), default="heldout")
    parser.add_argument(
        "--json", type=Path, help="where to write the result (default: bench/results/<posts>.json)"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides for the training run")
    args = parser.parse_args(argv)
    run_id = args.run_id
    if run_id is None:
        from psy_agents_noaug.config import load_config
        from psy_agents_noaug.jobs.train import run_train

        cfg = load_config(
            [f"mlflow.tracking_uri={args.tracking_uri}", "progress=false", *args.overrides]
        )
        run_id = run_train(cfg)["run_id"]
    result = score(f"runs:/{run_id}/model", args.tracking_uri, args.posts)
    print(f"{args.posts} natural posts: {result['posts']}  (run {run_id})")
    print(f"macro F1 {result['f1_macro']:.3f}   micro F1 {result['f1_micro']:.3f}   "
          f"macro AUPRC {result['auprc_macro']:.3f}")  # fmt: skip
    print("criterion  positives  F1")
    for c, f1 in result["per_criterion_f1"].items():  # type: ignore[attr-defined]
        print(f"  {c:>7}  {result['positives'][c]:>9}  {f1:.3f}")  # type: ignore[index]
    if result["late_evidence"]:
        print("late evidence (one sentence after 400+ neutral words):")
    for check in result["late_evidence"]:  # type: ignore[attr-defined]
        print(f"  {check['post_id']} {check['criterion_id']} after {check['words_before_evidence']}"
              f" words: p={check['probability']:.3f} marked={check['marked']} "
              f"evidence sentence found={check['evidence_found']}")  # fmt: skip
    out = args.json or RESULTS / f"{args.posts}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
