"""Logging-overhead benchmark (`make bench`): prints a table and writes bench/results/*.json.

Same model, data, seed and process for every mode, interleaved round by round so
machine noise hits all modes alike; per-step time is the median over rounds of the
training loop's wall time divided by its optimizer steps (validation, run set-up and
the final drain are timed separately).

Modes:
  none        the Trainer with tracking off                                  (a)
  ours        the Trainer, full spec logging + system metrics every 10 steps (b)
  naive       the same loop calling mlflow.log_metrics synchronously         (c)
  hf          Hugging Face Trainer + MLflowCallback on the same model
each on a sqlite store and on a local `mlflow server` (HTTP, 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import mlflow
import torch
from mlflow import MlflowClient
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from psy_agents_noaug.training.train_loop import Trainer
from psy_agents_noaug.utils import metric_sink

RESULTS = Path(__file__).parent / "results"
SEQ, BATCH, VOCAB = 40, 16, 8000


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=128,
    )
    return BertForSequenceClassification(cfg)


def make_batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(0, VOCAB, (BATCH, SEQ), generator=g),
            "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long),
            "labels": torch.randint(0, 2, (BATCH,), generator=g),
        }
        for _ in range(n)
    ]


class _NaiveSink:
    """What HF/Lightning callbacks do: a synchronous mlflow.log_metrics per log call."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.client = MlflowClient()

    def log_dict(self, metrics: dict[str, Any], step: int, timestamp_ms: int | None = None) -> None:
        values = {k: float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        mlflow.log_metrics(values, step=step, run_id=self.run_id, synchronous=True)

    def log(self, key: str, value: Any, step: int) -> None:
        self.log_dict({key: value}, step)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class TimedTrainer(Trainer):
    """Times the training loop proper; optionally swaps in the naive sink."""

    naive = False

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        if self.naive and not isinstance(self._sink, _NaiveSink) and self.run_id:
            self._sink = _NaiveSink(self.run_id)
        started = time.perf_counter()
        steps_before = self.global_step
        out = super()._train_epoch(epoch)
        self.loop_seconds = getattr(self, "loop_seconds", 0.0) + time.perf_counter() - started
        self.loop_steps = getattr(self, "loop_steps", 0) + self.global_step - steps_before
        return out


def run_ours(mode: str, uri: str | None, batches: list, val: list, logging_steps: int) -> dict:
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    trainer = TimedTrainer(
        model,
        batches,
        val,
        opt,
        nn.CrossEntropyLoss(),
        "cpu",
        num_epochs=1,
        logging_steps=logging_steps,
        log_system_metrics=mode != "none",
        system_metrics_interval=10,
        track=mode != "none",
    )
    trainer.naive = mode == "naive"
    row: dict[str, Any] = {
        "mode": mode,
        "store": "none" if uri is None else _store_name(uri),
        "logging_steps": logging_steps,
    }
    if uri is None:
        trainer.train()
    else:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
        t0 = time.perf_counter()
        run = mlflow.start_run()
        row["run_setup_s"] = time.perf_counter() - t0
        t_end = time.perf_counter()
        trainer.train()
        mlflow.end_run()
        row["drain_s"] = time.perf_counter() - t_end - trainer.loop_seconds
        sent, read = _count_points(uri, run.info.run_id, trainer.loop_steps, logging_steps)
        row.update(points_sent=sent, points_read_back=read)
    row["step_ms"] = 1000 * trainer.loop_seconds / trainer.loop_steps
    row["steps"] = trainer.loop_steps
    return row


def _count_points(uri: str, run_id: str, steps: int, logging_steps: int) -> tuple[int, int]:
    client = MlflowClient(uri)
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(("train/", "system/"))]
    read = sum(len(client.get_metric_history(run_id, k)) for k in keys)
    train_keys = [k for k in keys if k.startswith("train/")]
    system_keys = [k for k in keys if k.startswith("system/")]
    sent = len(train_keys) * (steps // logging_steps) + len(system_keys) * (steps // 10)
    return sent, read


def run_hf(uri: str, batches: list) -> dict:
    """Hugging Face Trainer + MLflowCallback (logging every step) on the same model/data."""
    from torch.utils.data import Dataset
    from transformers import Trainer as HFTrainer
    from transformers import TrainingArguments
    from transformers.integrations import MLflowCallback

    class Rows(Dataset):
        def __init__(self) -> None:
            self.rows = [{k: v[i] for k, v in b.items()} for b in batches for i in range(BATCH)]

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, i: int) -> dict:
            return self.rows[i]

    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench_hf"
    out = tempfile.mkdtemp()
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=BATCH,
        num_train_epochs=1,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = HFTrainer(
        model=make_model(), args=args, train_dataset=Rows(), callbacks=[MLflowCallback()]
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    mlflow.end_run()
    return {
        "mode": "hf",
        "store": _store_name(uri),
        "logging_steps": 1,
        "step_ms": 1000 * seconds / len(batches),
        "steps": len(batches),
    }


def microbench(uri: str) -> dict:
    """Median training-thread cost per logged value (4 values per log_dict call)."""
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        sink = metric_sink.get_sink()
        value = torch.tensor(0.5)
        costs = []
        for step in range(20_000):
            t = time.perf_counter_ns()
            sink.log_dict({"a": value, "b": value, "c": 0.1, "d": 1.0}, step=step)
            costs.append(time.perf_counter_ns() - t)
        sink.flush()
    costs.sort()
    return {
        "median_us_per_value": costs[len(costs) // 2] / 4 / 1000,
        "p99_us_per_value": costs[int(len(costs) * 0.99)] / 4 / 1000,
    }


def system_sample_cost() -> dict:
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    logger = SystemMetricsLogger(log_cpu=True, log_gpu=True)
    for _ in range(50):
        logger.log_metrics(step=0, run_id=None)
    stats = logger.stats()
    logger.close()
    return {k: v for k, v in stats.items() if isinstance(v, int | float)}


def _store_name(uri: str) -> str:
    return "http" if uri.startswith("http") else "sqlite"


def start_server(workdir: Path) -> tuple[Any, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(f"sqlite:///{workdir}/server.db", workdir).start()
    # The server stands in for one on another host: it gets idle CPU only, so its own
    # per-point work is not counted as overhead of the training process.
    import psutil

    root = psutil.Process(server.proc.pid)
    for proc in [root, *root.children(recursive=True)]:
        os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
    return server, server.url


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["store"], r["logging_steps"]), []).append(r)
    base = statistics.median(r["step_ms"] for r in groups[("none", "none", 1)])
    table = []
    for (mode, store, ls), rs in groups.items():
        step = statistics.median(r["step_ms"] for r in rs)
        table.append(
            {
                "mode": mode,
                "store": store,
                "logging_steps": ls,
                "rounds": len(rs),
                "step_ms": round(step, 2),
                "ratio_to_none": round(step / base, 4),
                "points_sent": sum(r.get("points_sent", 0) for r in rs),
                "points_read_back": sum(r.get("points_read_back", 0) for r in rs),
                "run_setup_s": round(statistics.median(r.get("run_setup_s", 0.0) for r in rs), 3),
                "drain_s": round(statistics.median(r.get("drain_s", 0.0) for r in rs), 3),
            }
        )
    return table


def print_table(table: list[dict]) -> None:
    cols = [
        "mode",
        "store",
        "logging_steps",
        "rounds",
        "step_ms",
        "ratio_to_none",
        "points_sent",
        "points_read_back",
        "run_setup_s",
        "drain_s",
    ]
    print(" | ".join(f"{c:>14}" for c in cols))
    for row in table:
        print(" | ".join(f"{row[c]!s:>14}" for c in cols))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--no-hf", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="psy-bench-"))
    os.environ["PSY_AGENTS_JOURNAL_DIR"] = str(work / "journal")
    batches, val = make_batches(args.steps), make_batches(1, seed=1)
    server = None
    stores = [f"sqlite:///{work}/bench.db"]
    t0 = time.perf_counter()
    if not args.no_server:
        server, url = start_server(work)
        stores.append(url)
    server_start_s = time.perf_counter() - t0
    for uri in stores:  # writer processes and schemas up before timing starts
        metric_sink.prestart(uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
    rows = []
    try:
        run_ours("none", None, batches[:20], val, 1)  # warm-up
        plan = [("none", None, 1)]
        for uri in stores:
            plan += [("ours", uri, 1), ("ours", uri, 50), ("naive", uri, 1)]
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            # Rotate the order each round so no mode always runs first or last.
            shift = r % len(plan)
            for mode, uri, ls in plan[shift:] + plan[:shift]:
                rows.append(run_ours(mode, uri, batches, val, ls))
        if not args.no_hf:
            for uri in stores:
                rows.append(run_hf(uri, batches))
        micro = microbench(stores[0])
        system = system_sample_cost()
    finally:
        metric_sink.shutdown()
        if server is not None:
            server.stop()
    table = summarize(rows)
    print_table(table)
    print(
        f"\ntraining-thread cost per logged value: median {micro['median_us_per_value']:.2f} us, "
        f"p99 {micro['p99_us_per_value']:.2f} us"
    )
    print(
        f"system metrics sample (sampling thread): median "
        f"{1e6 * system.get('median_s', float('nan')):.0f} us"
    )
    print(f"mlflow server start: {server_start_s:.1f} s (not on the training thread)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "logging_overhead.json"
    out.write_text(
        json.dumps(
            {
                "table": table,
                "rows": rows,
                "microbench": micro,
                "system_sample": system,
                "server_start_s": server_start_s,
                "torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
