"""Logging overhead by time slicing (`make bench`): prints a table, writes JSON.

Why: this machine's speed drifts by 5-20 % in phases of seconds (other tenants), far more
than the 0.5-2 % we must resolve. So two long trainings run side by side as separate
processes, one with our full tracking and one without, and only one of them runs at a
time: each gets the machine for a one-second slice in turn (SIGSTOP/SIGCONT of the
process and everything it started: the sink's writer process and, for the http store,
its own local `mlflow server`; the untracked side gets an idle server of its own, so
both pay for an idle server alike). Adjacent slices see the same machine, the tracked
pipeline stays in its steady state (writes every second, or every 5 s to a server,
system metrics every 10 steps), and nothing it does can spill into the other side's
slice. Ratio = tracked ms/step / untracked ms/step, per pair of adjacent slices; the
table gives the median over pairs and its quartiles, plus an A/A row (two untracked
trainings) that shows the resolution of the method on this machine.

Run `python bench/sliced_bench.py --help` for sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import mmap
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run_bench import make_batches, make_model, process_cpu_s, process_tree

RESULTS = Path(__file__).parent / "results"
SLOT = 16  # bytes per worker in the shared file: steps done, monotonic ns of the last one
STOP_SLOT = 0  # the parent sets its first 8 bytes to 1 when the workers should finish
SETTLE_S = 0.2  # after a resume, measuring starts at the first step completed after this


# ---------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> int:
    """One long training; counts optimizer steps into a shared file until told to stop."""
    import torch
    from torch import nn

    from psy_agents_noaug.tracking import sink as metric_sink
    from psy_agents_noaug.training.train_loop import Trainer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with open(args.counter_file, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 0)
    slot = args.slot * SLOT

    def stopped() -> bool:
        return int.from_bytes(shared[STOP_SLOT : STOP_SLOT + 8], "little") == 1

    batches, val = make_batches(200), make_batches(1, seed=1)

    class Endless:
        """The training batches, cycled until the parent says stop (one long epoch)."""

        def __iter__(self) -> Any:
            i = 0
            while not stopped():
                yield batches[i % len(batches)]
                i += 1

    last_step_ns = [0]

    class CountingTrainer(Trainer):
        def _optimizer_step(self) -> None:
            super()._optimizer_step()
            now = last_step_ns[0] = time.monotonic_ns()
            shared[slot : slot + SLOT] = (self.global_step + 1).to_bytes(
                8, "little"
            ) + now.to_bytes(8, "little")

    model = make_model()
    trainer = CountingTrainer(
        model,
        Endless(),
        val,
        torch.optim.AdamW(model.parameters(), lr=1e-4),
        nn.CrossEntropyLoss(),
        "cpu",
        num_epochs=1,
        logging_steps=args.logging_steps,
        log_system_metrics=args.uri is not None,
        system_metrics_interval=10,
        track=args.uri is not None,
    )
    result: dict[str, Any] = {}
    if args.uri is None:
        trainer.train()
        result["end_wait_s"] = (time.monotonic_ns() - last_step_ns[0]) / 1e9
    else:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(args.uri)
        mlflow.set_experiment("sliced")
        metric_sink.prestart(args.uri)
        with mlflow.start_run() as run:
            trainer.train()
        result["end_wait_s"] = (time.monotonic_ns() - last_step_ns[0]) / 1e9
        written = sum(w.flush(60).written for w in metric_sink.open_connections())
        client = MlflowClient(args.uri)
        keys = list(client.get_run(run.info.run_id).data.metrics)
        result["points_sent"] = written
        result["points_read_back"] = sum(
            len(client.get_metric_history(run.info.run_id, k)) for k in keys
        )
        metric_sink.shutdown()
    result["steps"] = trainer.global_step
    Path(args.result_file).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------- parent
class Side:
    """A worker process plus the processes that belong to it (writer, its own server)."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], server: Any = None) -> None:
        self.name = name
        self.proc = proc
        self.server = server

    def pids(self) -> list[int]:
        servers = process_tree(self.server.proc.pid) if self.server is not None else []
        return process_tree(self.proc.pid) + servers

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds so far of (the worker's child processes: the writer; its server)."""
        writer = sum(process_cpu_s(p) for p in process_tree(self.proc.pid)[1:])
        if self.server is None:
            return writer, 0.0
        return writer, sum(process_cpu_s(p) for p in process_tree(self.server.proc.pid))

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _progress(shared: mmap.mmap, slot: int) -> tuple[int, int]:
    """(steps done, monotonic ns when the last one finished), read without tearing."""
    while True:
        raw = shared[slot * SLOT : (slot + 1) * SLOT]
        if raw == shared[slot * SLOT : (slot + 1) * SLOT]:
            return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


def _count(shared: mmap.mmap, slot: int) -> int:
    return _progress(shared, slot)[0]


def measure(
    label: str, store: str | None, logging_steps: int, pairs: int, slice_s: float, work: Path
) -> dict[str, Any]:
    """Alternate a tracked (or, for A/A, a second untracked) training with an untracked one."""
    from tests.mlflow_server import MlflowServer

    counter_file = work / f"{label}.steps"
    counter_file.write_bytes(bytes(3 * SLOT))  # stop flag, worker 1, worker 2
    servers = []
    uri = None
    if store == "sqlite":
        uri = f"sqlite:///{work}/{label}.db"
    elif store == "http":
        for i in range(2):
            (work / f"{label}_{i}").mkdir()
        servers = [
            MlflowServer(f"sqlite:///{work}/{label}_{i}.db", work / f"{label}_{i}").start()
            for i in range(2)
        ]
        uri = servers[0].url
        for server in servers:  # idle CPU only, as in run_bench.py: "another host"
            for pid in process_tree(server.proc.pid):
                os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    env = dict(os.environ, PSY_AGENTS_JOURNAL_DIR=str(work / "journal"))
    sides = []
    for slot, side_uri in ((1, uri), (2, None)):
        cmd = [sys.executable, __file__, "--worker", "--slot", str(slot)]
        cmd += ["--counter-file", str(counter_file), "--logging-steps", str(logging_steps)]
        cmd += ["--result-file", str(work / f"{label}_{slot}.json")]
        if side_uri is not None:
            cmd += ["--uri", side_uri]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        server = servers[slot - 1] if servers else None
        sides.append(Side("tracked" if side_uri else "untracked", proc, server))
    with open(counter_file, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 0)
    ratios: list[float] = []
    step_ms: dict[int, list[float]] = {1: [], 2: []}
    slice_seconds = writer_cpu = server_cpu = 0.0
    stalled = 0
    try:
        # Start-up (imports, model, store set-up) runs concurrently; slicing starts once
        # both sides train.
        deadline = time.monotonic() + 300
        while min(_count(shared, 1), _count(shared, 2)) < 5:
            if time.monotonic() > deadline or any(s.proc.poll() is not None for s in sides):
                raise RuntimeError(f"{label}: a worker did not start training")
            time.sleep(0.05)
        for side in sides:
            side.signal(signal.SIGSTOP)
        warmup = 3
        for pair in range(pairs + warmup):
            order = [1, 2] if pair % 2 == 0 else [2, 1]  # alternate who goes first
            this: dict[int, float] = {}
            for slot in order:
                side = sides[slot - 1]
                cpu_before = side.cpu_s()
                side.signal(signal.SIGCONT)
                time.sleep(SETTLE_S)
                steps_a, ns_a = _progress(shared, slot)
                time.sleep(slice_s)
                steps_b, ns_b = _progress(shared, slot)
                side.signal(signal.SIGSTOP)
                cpu_after = side.cpu_s()
                if pair >= warmup and slot == 1:
                    slice_seconds += (ns_b - ns_a) / 1e9
                    writer_cpu += cpu_after[0] - cpu_before[0]
                    server_cpu += cpu_after[1] - cpu_before[1]
                # Time between two step completions inside the slice: no partial steps.
                this[slot] = (ns_b - ns_a) / 1e6 / max(1, steps_b - steps_a)
                if steps_b == steps_a:  # no step finished in the slice (a stall): no figure
                    this[slot] = math.nan
            if math.isnan(this[1]) or math.isnan(this[2]):
                stalled += 1
            elif pair >= warmup:
                ratios.append(this[1] / this[2])
                step_ms[1].append(this[1])
                step_ms[2].append(this[2])
    finally:
        shared[STOP_SLOT : STOP_SLOT + 8] = (1).to_bytes(8, "little")
        for side in sides:
            side.signal(signal.SIGCONT)
        for side in sides:
            try:
                side.proc.wait(300)
            except subprocess.TimeoutExpired:
                side.proc.kill()
        for server in servers:
            server.stop()
    results = [json.loads((work / f"{label}_{slot}.json").read_text()) for slot in (1, 2)]
    quartiles = statistics.quantiles(ratios, n=4)
    return {
        "label": label,
        "store": store or "none",
        "logging_steps": logging_steps,
        "pairs": len(ratios),
        "stalled_pairs": stalled,
        "tracked_ms_per_step": round(statistics.median(step_ms[1]), 2),
        "untracked_ms_per_step": round(statistics.median(step_ms[2]), 2),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_q1": round(quartiles[0], 4),
        "ratio_q3": round(quartiles[2], 4),
        "writer_cpu_ms_per_s": round(1000 * writer_cpu / max(slice_seconds, 1e-9), 2),
        "server_cpu_ms_per_s": round(1000 * server_cpu / max(slice_seconds, 1e-9), 2),
        # Last step to a read-consistent end (validation included, on both sides).
        "tracked_end_wait_s": round(results[0]["end_wait_s"], 3),
        "untracked_end_wait_s": round(results[1]["end_wait_s"], 3),
        "points_sent": results[0].get("points_sent", 0),
        "points_read_back": results[0].get("points_read_back", 0),
        "ratios": [round(r, 4) for r in ratios],
    }


COLUMNS = [
    "label",
    "store",
    "logging_steps",
    "pairs",
    "tracked_ms_per_step",
    "untracked_ms_per_step",
    "ratio",
    "ratio_q1",
    "ratio_q3",
    "writer_cpu_ms_per_s",
    "server_cpu_ms_per_s",
    "tracked_end_wait_s",
    "untracked_end_wait_s",
    "points_sent",
    "points_read_back",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=60, help="measured slice pairs per row")
    parser.add_argument("--slice", type=float, default=1.0, help="seconds per slice")
    parser.add_argument("--stores", default="sqlite,http", help="comma-separated: sqlite, http")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--counter-file", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--logging-steps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    stores = [s for s in args.stores.split(",") if s]
    if not stores or not set(stores) <= {"sqlite", "http"}:
        parser.error(f"--stores {args.stores!r}: use sqlite, http or sqlite,http")
    work = Path(tempfile.mkdtemp(prefix="psy-sliced-"))
    plan: list[tuple[str, str | None, int]] = [("a/a (both untracked)", None, 1)]
    plan += [(f"ours {s} ls={ls}", s, ls) for s in stores for ls in (1, 50)]
    rows = []
    for i, (label, store, ls) in enumerate(plan):
        print(f"[{i + 1}/{len(plan)}] {label}", file=sys.stderr, flush=True)
        rows.append(measure(f"row{i}", store, ls, args.pairs, args.slice, work))
        rows[-1]["label"] = label
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    print(" | ".join(f"{c:>{widths[c]}}" for c in COLUMNS))
    for row in rows:
        print(" | ".join(f"{row[c]!s:>{widths[c]}}" for c in COLUMNS))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "logging_overhead_sliced.json"
    out.write_text(json.dumps({"rows": rows, "slice_s": args.slice}, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
