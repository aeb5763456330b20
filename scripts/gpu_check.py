"""Check system metrics on a real GPU.

Prints, side by side, what ``SystemMetricsLogger`` reports and what NVML and
``torch.cuda`` say when asked directly, while the GPU runs matrix products; the cost of
one sample on the sampling thread (all monitors, GPU only, CPU only) and of one
``request_sample`` call on the training thread; then runs a short "training loop" that
requests a sample every N steps into a temporary sqlite MLflow store and reads every
point back.

Usage:
    python scripts/gpu_check.py [--device 0] [--steps 200] [--interval 10] [--samples 200]

Exit status: 0 when every check passed, or when there is no GPU (nothing to check);
1 when a check failed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GIB = float(1 << 30)
TORCH_NAMES = {"gpu_memory_allocated_gb", "gpu_memory_reserved_gb", "gpu_memory_peak_allocated_gb"}


def find_gpu(device: int) -> str | None:
    """Why there is nothing to check, or None when ``cuda:device`` exists."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no GPU, no driver, or a CPU build of torch)"
    if device >= torch.cuda.device_count():
        return f"cuda:{device} does not exist ({torch.cuda.device_count()} CUDA device(s))"
    return None


def direct_readings(device: int) -> tuple[dict[str, float], dict[str, str]]:
    """Every value read straight from NVML and torch.cuda, under the logger's names.

    Returns:
        The values, and the failures (name -> error) of queries the driver refused.
    """
    import pynvml
    import torch

    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    cuda = torch.cuda
    values["gpu_memory_allocated_gb"] = cuda.memory_allocated(device) / GIB
    values["gpu_memory_reserved_gb"] = cuda.memory_reserved(device) / GIB
    values["gpu_memory_peak_allocated_gb"] = cuda.max_memory_allocated(device) / GIB

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(device)  # CUDA_VISIBLE_DEVICES unset here
        queries: dict[str, Callable[[], dict[str, float]]] = {
            "utilization": lambda: {
                "gpu_utilization_percent": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                "gpu_memory_bandwidth_percent": pynvml.nvmlDeviceGetUtilizationRates(handle).memory,
            },
            "memory": lambda: _memory(pynvml.nvmlDeviceGetMemoryInfo(handle)),
            "temperature": lambda: {
                "gpu_temperature_c": pynvml.nvmlDeviceGetTemperature(
                    handle, pynvml.NVML_TEMPERATURE_GPU
                )
            },
            "power": lambda: {"gpu_power_watts": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000},
            "sm clock": lambda: {
                "gpu_sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            },
            "memory clock": lambda: {
                "gpu_memory_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)
            },
        }
        for label, query in queries.items():
            try:
                values.update({k: float(v) for k, v in query().items()})
            except Exception as exc:
                errors[label] = repr(exc)
    finally:
        pynvml.nvmlShutdown()
    return values, errors


def _memory(info: Any) -> dict[str, float]:
    return {
        "gpu_memory_used_gb": info.used / GIB,
        "gpu_memory_used_percent": 100.0 * info.used / info.total,
    }


def device_description(device: int) -> str:
    import pynvml
    import torch

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        total = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(device)).total
    finally:
        pynvml.nvmlShutdown()
    return (
        f"cuda:{device} = {torch.cuda.get_device_name(device)}, {total / GIB:.1f} GiB, "
        f"driver {driver}, torch {torch.__version__}"
    )


@contextmanager
def gpu_busy(device: int) -> Iterator[Callable[[], None]]:
    """Keep the GPU running bf16 matrix products on a side thread, so utilization,
    power and clocks are those of a working card. Yields a ``step()`` for the loop."""
    import torch

    dev = torch.device("cuda", device)
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    stop = threading.Event()

    side = torch.cuda.Stream(dev)  # so the loop's own steps do not queue behind the load

    def work() -> None:
        with torch.cuda.stream(side):
            while not stop.is_set():
                for _ in range(20):
                    a @ a
                side.synchronize()

    worker = threading.Thread(target=work, name="gpu-load", daemon=True)
    worker.start()
    small = torch.randn(1024, 1024, device=dev)

    def step() -> None:
        (small @ small).sum().item()  # a short "training step" that syncs

    try:
        deadline = time.monotonic() + 1.5  # NVML utilization averages over up to 1 s
        while time.monotonic() < deadline:
            step()
        yield step
    finally:
        stop.set()
        worker.join()


def sample_now(logger: Any, step: int = 0, prefix: str = "system") -> dict[str, float]:
    """``log_metrics`` with no MLflow run: the values come back and nothing is logged."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no active MLflow run.*")
        values: dict[str, float] = logger.log_metrics(step=step, prefix=prefix)
    return values


def print_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def compare(device: int) -> tuple[dict[str, float], list[str]]:
    """Logger values next to direct readings; returns the logger's values and problems."""
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    problems: list[str] = []
    with SystemMetricsLogger(log_disk=True, log_network=True, gpu_device=device) as logger:
        logged = sample_now(logger, prefix="")
        direct, refused = direct_readings(device)
    names = sorted(set(logged) | set(direct))
    rows = []
    for name in names:
        source = "psutil"
        if name in direct:
            source = "torch.cuda" if name in TORCH_NAMES else "NVML"
        rows.append((name, _fmt(logged.get(name)), _fmt(direct.get(name)), source))
        if name in direct and name not in logged:
            problems.append(f"{name}: NVML/torch report it but the logger did not")
    print_table(rows, ("metric (system/...)", "SystemMetricsLogger", "direct reading", "source"))
    for label, error in refused.items():
        print(f"driver refused NVML {label}: {error} (the logger skips that metric only)")
    for name in ("gpu_utilization_percent", "gpu_power_watts", "gpu_memory_allocated_gb"):
        if name in logged and logged[name] <= 0.0:
            problems.append(f"{name} is {logged[name]} while the GPU is busy")
    return logged, problems


def sample_costs(device: int, samples: int) -> None:
    """Per-sample cost on the sampling thread, for each group of monitors."""
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    rows = []
    configs: dict[str, dict[str, Any]] = {
        "all monitors": {"log_disk": True, "log_network": True},
        "cpu + memory only": {"log_gpu": False},
        "gpu only (torch + NVML)": {"log_cpu": False},
    }
    for label, kwargs in configs.items():
        with SystemMetricsLogger(gpu_device=device, **kwargs) as logger:
            for step in range(samples):
                sample_now(logger, step)
            s = logger.stats()
        rows.append(
            (
                label,
                f"{s['median_s'] * 1e6:.0f}",
                f"{s['mean_s'] * 1e6:.0f}",
                f"{s['p95_s'] * 1e6:.0f}",
                f"{s['max_s'] * 1e6:.0f}",
                f"{s['setup_s'] * 1e3:.1f}",
            )
        )
    print(f"per-sample cost on the sampling thread, {samples} samples each:")
    print_table(rows, ("monitors", "median us", "mean us", "p95 us", "max us", "setup ms"))


def end_to_end(device: int, steps: int, interval: int) -> list[str]:
    """A loop that requests a sample every ``interval`` steps into a sqlite store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from psy_agents_noaug.tracking import get_sink
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, gpu_busy(device) as train_step:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("gpu_check")
        logger = SystemMetricsLogger(log_disk=True, log_network=True, gpu_device=device)
        request_costs: list[float] = []
        with mlflow.start_run() as run:
            run_id = run.info.run_id
            for step in range(steps):
                train_step()
                if step % interval == 0:
                    start = time.perf_counter()
                    logger.request_sample(step, run_id)
                    request_costs.append(time.perf_counter() - start)
            # A long evaluation phase: periodic mode, numbered by a counter.
            logger.start(0.05, run_id=run_id, prefix="eval_system")
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                train_step()
            logger.stop()
            logger.close()
            stored = get_sink(run_id).flush()
        client = MlflowClient(uri)
        stats = logger.stats()
        expected_steps = list(range(0, steps, interval))
        rows = []
        keys = sorted(client.get_run(run_id).data.metrics)
        for key in keys:
            history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
            got = [m.step for m in history]
            if key.startswith("system/") and got != expected_steps:
                problems.append(f"{key}: steps {got[:5]}... != {expected_steps[:5]}...")
            rows.append((key, str(len(got)), str(got[0]), str(got[-1]), f"{history[-1].value:.3f}"))
        print(f"end to end: {steps} steps, request_sample every {interval}, into {uri}")
        print_table(rows, ("stored metric", "points", "first step", "last step", "last value"))
        for key in (
            "system/cpu_percent",
            "system/memory_used_gb",
            "system/gpu_memory_allocated_gb",
            "system/gpu_utilization_percent",
            "system/gpu_memory_used_gb",
            "system/gpu_temperature_c",
        ):
            if key not in keys:
                problems.append(f"{key} missing from the store")
        if not any(k.startswith("eval_system/") for k in keys):
            problems.append("periodic mode logged nothing")
        if not stored:
            problems.append("the metric sink did not confirm the flush")
        costs_us = sorted(c * 1e6 for c in request_costs)
        print(
            f"request_sample on the training thread: median {statistics.median(costs_us):.1f} us, "
            f"max {costs_us[-1]:.1f} us over {len(costs_us)} calls (first call starts the thread)"
        )
        print(
            f"sampler thread during training: {stats['samples']:.0f} samples, median "
            f"{stats['median_s'] * 1e6:.0f} us, p95 {stats['p95_s'] * 1e6:.0f} us, "
            f"setup {stats['setup_s'] * 1e3:.1f} ms, "
            f"first wait {stats['first_wait_s'] * 1e3:.1f} ms, "
            f"largest backlog {stats['max_pending']:.0f}"
        )
        print()
    return problems


def per_gpu_names() -> list[str]:
    """``gpu_device="all"``: every GPU name carries its index."""
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    with SystemMetricsLogger(log_cpu=False, gpu_device="all") as logger:
        names = sorted(sample_now(logger))
    print('gpu_device="all" logs:', ", ".join(names))
    print()
    if not names or not all(re.match(r"system/gpu\d+_", n) for n in names):
        return [f"gpu_device='all' logged names without a GPU index: {names}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="CUDA index to check")
    parser.add_argument("--steps", type=int, default=200, help="steps in the end-to-end loop")
    parser.add_argument("--interval", type=int, default=10, help="request a sample every N steps")
    parser.add_argument("--samples", type=int, default=200, help="samples per cost measurement")
    args = parser.parse_args(argv)

    reason = find_gpu(args.device)
    if reason is not None:
        print(f"No GPU to check: {reason}. Nothing was measured; exiting 0.")
        return 0
    print(device_description(args.device))
    print()

    problems: list[str] = []
    with gpu_busy(args.device):
        _, found = compare(args.device)
        problems += found
        sample_costs(args.device, args.samples)
    problems += per_gpu_names()
    problems += end_to_end(args.device, args.steps, args.interval)

    if problems:
        print("FAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("OK: every metric NVML and torch.cuda report was logged, and read back from the store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
