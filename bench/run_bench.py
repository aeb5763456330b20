"""Logging-overhead benchmark (`make bench`): prints a table and writes bench/results/*.json.

Same model, data, seed and process for every mode. This machine's speed drifts in
phases of seconds (other tenants), so every measured run sits between two untracked
runs and is compared with their mean ("ratio"); the table gives the median ratio over
rounds and its quartiles. Per-step time = (training loop + the final flush of what is
still queued) / optimizer steps; run set-up, validation and run end are outside it.
"loop_ratio" leaves the final flush out (the rate while training); "drain_s" is that
flush, a fixed wait at the end of a run, however long the run.
CPU columns: milliseconds of CPU per second of training used by our tracking (writer
process + shipper and sampler threads) and by the local server.

Modes:
  none        the Trainer with tracking off                                  (a)
  a/a         the same, measured as a mode: its ratio is this machine's noise
  ours        the Trainer, full spec logging + system metrics every 10 steps (b)
  naive       the same loop calling mlflow.log_metrics synchronously         (c)
  hf_none     Hugging Face Trainer, no reporting (the baseline of the hf rows)
  hf          Hugging Face Trainer + MLflowCallback on the same model
each on a sqlite store and on a local `mlflow server` (HTTP, 127.0.0.1) that gets
idle CPU only (it stands in for a server on another host).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import mlflow
import torch
from mlflow import MlflowClient
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from psy_agents_noaug.tracking import sink as metric_sink
from psy_agents_noaug.training.train_loop import Trainer

RESULTS = Path(__file__).parent / "results"
#: (mode, logging_steps) measured on each store; system metrics every 10 steps in all.
OURS_PLAN = [("ours", 1), ("ours", 50), ("naive", 1)]
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
        self.sent = 0

    def log_dict(self, metrics: dict[str, Any], step: int, timestamp_ms: int | None = None) -> None:
        values = {k: float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        mlflow.log_metrics(values, step=step, run_id=self.run_id, synchronous=True)
        self.sent += len(values)

    def log(self, key: str, value: Any, step: int) -> None:
        self.log_dict({key: value}, step)

    def log_artifact(self, local_path: Any, artifact_path: str | None = None, **_: Any) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class _TimedFlush:
    """The Trainer's sink, timing its flushes: the last one is the run's drain, what the
    writer still had to do after the loop (counted against the mode)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def flush(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.sink.flush(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _schedstat_s(task_dir: str) -> float:
    """CPU time of one thread in seconds (nanosecond resolution, unlike /proc/*/stat)."""
    try:
        with open(f"{task_dir}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by every live thread of a process."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    return sum(_schedstat_s(f"/proc/{pid}/task/{tid}") for tid in tids)


def tracking_threads_cpu_s() -> float:
    """CPU seconds of this process's psy-agents threads (shipper, acks, system sampler)."""
    return sum(
        _schedstat_s(f"/proc/self/task/{t.native_id}")
        for t in threading.enumerate()
        if t.name.startswith("psy-agents") and t.native_id is not None
    )


def process_tree(root: int) -> list[int]:
    """A process and all its descendants (empty when it is gone)."""
    import psutil

    try:
        parent = psutil.Process(root)
        return [root, *(c.pid for c in parent.children(recursive=True))]
    except psutil.Error:
        return []


def _server_pids() -> list[int]:
    return [] if CpuWindow.server_pid is None else process_tree(CpuWindow.server_pid)


class CpuWindow:
    """CPU used by the tracking machinery (and the local server) over one window."""

    server_pid: ClassVar[int | None] = None

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> dict[str, float]:
        writers = [w.proc.pid for w in metric_sink.open_connections() if w.proc is not None]
        return {
            "threads": tracking_threads_cpu_s(),
            "writer": sum(process_cpu_s(pid) for pid in writers),
            "server": sum(process_cpu_s(pid) for pid in _server_pids()),
        }

    def end(self) -> dict[str, float]:
        now = self._read()
        # A thread that ended inside the window is missed; none of ours ends mid-loop.
        return {k: max(0.0, now[k] - self.start[k]) for k in now}


class TimedTrainer(Trainer):
    """Times the training loop and the final flush; optionally swaps in the naive sink."""

    naive = False

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        if self.naive and self.run_id:
            self._sink = _NaiveSink(self.run_id)
        if self.run_id and not isinstance(self._sink, _TimedFlush):
            self._sink = _TimedFlush(self._sink)
        window = CpuWindow()
        started = time.perf_counter()
        steps_before = self.global_step
        out = super()._train_epoch(epoch)
        self.loop_seconds = getattr(self, "loop_seconds", 0.0) + time.perf_counter() - started
        self.loop_steps = getattr(self, "loop_steps", 0) + self.global_step - steps_before
        self.cpu = window.end()
        return out


def _writer_written() -> int:
    """Points the writer processes have stored so far (flushes first)."""
    total = 0
    for writer in list(metric_sink.open_connections()):
        total += writer.flush(60).written
    return total


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
        written_before = _writer_written()
        t0 = time.perf_counter()
        run = mlflow.start_run()
        row["run_setup_s"] = time.perf_counter() - t0
        trainer.train()
        mlflow.end_run()
        row["drain_s"] = trainer._sink.seconds
        naive_sent = getattr(trainer._sink.sink, "sent", 0)
        sent = naive_sent + _writer_written() - written_before
        row.update(points_sent=sent, points_read_back=_count_points(uri, run.info.run_id))
    loop_ms = 1000 * trainer.loop_seconds / trainer.loop_steps
    row["loop_step_ms"] = loop_ms
    # Per-step time counts the final flush too: a short run leaves part of its writing
    # for after the loop, and that part must not escape the measurement.
    row["step_ms"] = 1000 * (trainer.loop_seconds + row.get("drain_s", 0.0)) / trainer.loop_steps
    row["steps"] = trainer.loop_steps
    cpu = getattr(trainer, "cpu", {})
    row["tracking_cpu_ms_per_s"] = (
        1000 * (cpu.get("threads", 0.0) + cpu.get("writer", 0.0)) / trainer.loop_seconds
    )
    row["server_cpu_ms_per_s"] = 1000 * cpu.get("server", 0.0) / trainer.loop_seconds
    return row


def _count_points(uri: str, run_id: str) -> int:
    """Every point of every metric of the run, read back through MlflowClient."""
    client = MlflowClient(uri)
    keys = list(client.get_run(run_id).data.metrics)
    return sum(len(client.get_metric_history(run_id, k)) for k in keys)


def run_hf(uri: str | None, batches: list) -> dict:
    """Hugging Face Trainer on the same model/data; with MLflowCallback when uri is set."""
    from torch.utils.data import Dataset
    from transformers import Trainer as HFTrainer
    from transformers import TrainingArguments
    from transformers.integrations import MLflowCallback
    from transformers.trainer_callback import PrinterCallback

    class Rows(Dataset):
        def __init__(self) -> None:
            self.rows = [{k: v[i] for k, v in b.items()} for b in batches for i in range(BATCH)]

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, i: int) -> dict:
            return self.rows[i]

    if uri is not None:
        mlflow.set_tracking_uri(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench_hf"
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
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
    callbacks = [MLflowCallback()] if uri is not None else []
    trainer = HFTrainer(model=make_model(), args=args, train_dataset=Rows(), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # printing every step is not what we measure
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    if uri is not None:
        mlflow.end_run()
    return {
        "mode": "hf" if uri is not None else "hf_none",
        "store": "none" if uri is None else _store_name(uri),
        "logging_steps": 1,
        "step_ms": 1000 * seconds / len(batches),
        "steps": len(batches),
    }


def run_aa(batches: list, val: list) -> dict:
    """An untracked run measured like a tracked one: its ratio shows this machine's noise."""
    row = run_ours("none", None, batches, val, 1)
    row["mode"] = "a/a"
    return row


def paired(runs: list, baseline: Any) -> list[dict]:
    """Run each measurement between two baseline runs; ratio = run / mean of its neighbours.

    The machine's speed drifts in phases of seconds (other tenants), so each ratio only
    compares runs a few seconds apart; the table reports the median over rounds.
    """
    rows = []
    before = baseline()
    rows.append(before)
    for run in runs:
        row = run()
        after = baseline()
        row["ratio"] = row["step_ms"] / ((before["step_ms"] + after["step_ms"]) / 2)
        rows += [row, after]
        before = after
    return rows


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
    CpuWindow.server_pid = root.pid
    return server, server.url


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (math.nan, math.nan)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["store"], r["logging_steps"]), []).append(r)
    table = []
    for (mode, store, ls), rs in groups.items():
        ratios = [r["ratio"] for r in rs if "ratio" in r]
        # The same ratio without the final flush: the rate while training, apart from the
        # fixed wait at the run's end (drain_s), which does not grow with the run's length.
        loop_ratios = [
            r["ratio"] * r.get("loop_step_ms", r["step_ms"]) / r["step_ms"]
            for r in rs
            if "ratio" in r
        ]
        q1, q3 = _quartiles(ratios)
        table.append(
            {
                "mode": mode,
                "store": store,
                "logging_steps": ls,
                "runs": len(rs),
                "step_ms": round(statistics.median(r["step_ms"] for r in rs), 2),
                "ratio": round(statistics.median(ratios), 4) if ratios else 1.0,
                "ratio_q1": round(q1, 4) if ratios else 1.0,
                "ratio_q3": round(q3, 4) if ratios else 1.0,
                "loop_ratio": round(statistics.median(loop_ratios), 4) if ratios else 1.0,
                "tracking_cpu_ms_per_s": round(
                    statistics.median(r.get("tracking_cpu_ms_per_s", 0.0) for r in rs), 2
                ),
                "server_cpu_ms_per_s": round(
                    statistics.median(r.get("server_cpu_ms_per_s", 0.0) for r in rs), 2
                ),
                "points_sent": sum(r.get("points_sent", 0) for r in rs),
                "points_read_back": sum(r.get("points_read_back", 0) for r in rs),
                "run_setup_s": round(statistics.median(r.get("run_setup_s", 0.0) for r in rs), 3),
                "drain_s": round(statistics.median(r.get("drain_s", 0.0) for r in rs), 3),
            }
        )
    return table


COLUMNS = [
    ("mode", 8),
    ("store", 6),
    ("logging_steps", 13),
    ("runs", 4),
    ("step_ms", 7),
    ("ratio", 6),
    ("ratio_q1", 8),
    ("ratio_q3", 8),
    ("loop_ratio", 10),
    ("tracking_cpu_ms_per_s", 21),
    ("server_cpu_ms_per_s", 19),
    ("points_sent", 11),
    ("points_read_back", 16),
    ("run_setup_s", 11),
    ("drain_s", 7),
]


def print_table(table: list[dict]) -> None:
    print(" | ".join(f"{c:>{w}}" for c, w in COLUMNS))
    for row in table:
        print(" | ".join(f"{row[c]!s:>{w}}" for c, w in COLUMNS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds of every mode")
    parser.add_argument("--hf-rounds", type=int, default=3, help="paired rounds of HF modes")
    parser.add_argument(
        "--stores", default="sqlite,http", help="comma-separated: sqlite, http (a local server)"
    )
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face rows")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="psy-bench-"))
    os.environ["PSY_AGENTS_JOURNAL_DIR"] = str(work / "journal")
    batches, val = make_batches(args.steps), make_batches(1, seed=1)
    wanted = set(args.stores.split(","))
    if not wanted or not wanted <= {"sqlite", "http"}:
        parser.error(f"--stores {args.stores!r}: use sqlite, http or sqlite,http")
    server = None
    stores = [f"sqlite:///{work}/bench.db"] if "sqlite" in wanted else []
    t0 = time.perf_counter()
    if "http" in wanted:
        server, url = start_server(work)
        stores.append(url)
    server_start_s = time.perf_counter() - t0
    setup: dict[str, float] = {}
    for uri in stores:  # store set-up and writer start, timed apart from training
        t0 = time.perf_counter()
        metric_sink.prestart(uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
        setup[_store_name(uri)] = time.perf_counter() - t0
    rows: list[dict] = []
    try:
        run_ours("none", None, batches[:20], val, 1)  # warm-up: imports, allocator, caches
        for uri in stores:  # warm-up: each writer opens its store before timing starts
            run_ours("ours", uri, batches[:20], val, 1)
        plan = [partial(run_aa, batches, val)]
        plan += [partial(run_ours, m, u, batches, val, ls) for u in stores for m, ls in OURS_PLAN]
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            shift = r % len(plan)  # rotate so no mode always runs first or last
            rows += paired(
                plan[shift:] + plan[:shift],
                partial(run_ours, "none", None, batches, val, 1),
            )
        if not args.no_hf:
            for r in range(args.hf_rounds):
                print(f"hf round {r + 1}/{args.hf_rounds}", file=sys.stderr, flush=True)
                order = stores[r % len(stores) :] + stores[: r % len(stores)]
                rows += paired(
                    [partial(run_hf, u, batches) for u in order], partial(run_hf, None, batches)
                )
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
    print(
        "store set-up before training (writer start, schema, experiment): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in setup.items())
        + f"; mlflow server start {server_start_s:.1f} s"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "logging_overhead.json"
    out.write_text(
        json.dumps(
            {
                "table": table,
                "rows": rows,
                "microbench": micro,
                "system_sample": system,
                "store_setup_s": setup,
                "server_start_s": server_start_s,
                "steps_per_run": args.steps,
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
