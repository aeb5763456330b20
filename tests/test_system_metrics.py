"""SystemMetricsLogger on this machine's real psutil, into a real sqlite MLflow store.

GPU paths (NVML, torch.cuda) are covered with fakes in test_system_metrics_nvml.py.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from psy_agents_noaug.monitoring import base
from psy_agents_noaug.monitoring import logger as system_metrics
from psy_agents_noaug.monitoring.cpu import CpuMonitor
from psy_agents_noaug.tracking import get_sink
from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger, SystemMetricsWarning

CPU_NAMES = {
    "system/cpu_percent",
    "system/memory_used_gb",
    "system/memory_available_gb",
    "system/memory_percent",
    "system/process_memory_rss_gb",
    "system/process_cpu_percent",
}
NETWORK_NAMES = {
    "system/network_sent_mb_s",
    "system/network_received_mb_s",
    "system/network_sent_total_mb",
    "system/network_received_total_mb",
}
DISK_IO_NAMES = {
    "system/disk_read_mb_s",
    "system/disk_write_mb_s",
    "system/disk_read_total_mb",
    "system/disk_write_total_mb",
}
UNITS = ("_percent", "_gb", "_mb", "_mb_s", "_watts", "_c", "_mhz")


def _disk_io_available() -> bool:
    import psutil

    return psutil.disk_io_counters() is not None


@pytest.fixture(scope="module")
def module_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store per module: creating its schema takes about a second."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"


@pytest.fixture
def store(module_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_tracking_uri)
    mlflow.set_tracking_uri(module_tracking_uri)
    yield MlflowClient(module_tracking_uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """warn_once is per process; every test starts with a clean slate."""
    monkeypatch.setattr(base, "_WARNED", set())


@pytest.fixture
def cpu_logger() -> Iterator[SystemMetricsLogger]:
    with SystemMetricsLogger(log_gpu=False) as logger:
        yield logger


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    get_sink(run_id).flush()
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == system_metrics._THREAD_NAME]


# --------------------------------------------------------------------------- spec examples


def test_spec_example_4_runs_verbatim_and_logs_every_tenth_step(store: MlflowClient) -> None:
    # --- spec "Usage Examples / 4. System Metrics Only", verbatim ---
    from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger

    system_logger = SystemMetricsLogger(
        log_cpu=True,
        log_gpu=True,
        log_disk=True,
        log_network=True,
    )

    with mlflow.start_run():
        for step in range(1000):
            # Training code...

            if step % 10 == 0:
                system_logger.log_metrics(step=step)
    # --- end of the spec's snippet ---
    system_logger.close()

    run_id = mlflow.last_active_run().info.run_id
    expected = {"system/cpu_percent", "system/memory_used_gb", *NETWORK_NAMES}
    if _disk_io_available():
        expected |= DISK_IO_NAMES
    for key in sorted(expected):
        assert _steps(store, run_id, key) == list(range(0, 1000, 10)), key


def test_spec_section_4_usage_logs_at_global_step(store: MlflowClient) -> None:
    system_logger = SystemMetricsLogger(
        log_cpu=True,
        log_gpu=True,
        log_disk=False,
        log_network=False,
        gpu_device=0,
    )
    global_step = 42
    with mlflow.start_run() as run:
        logged = system_logger.log_metrics(step=global_step, prefix="system")
    system_logger.close()

    assert logged.keys() >= CPU_NAMES
    assert not any(k.startswith(("system/disk", "system/network")) for k in logged)
    assert _steps(store, run.info.run_id, "system/memory_used_gb") == [global_step]
    stored = store.get_metric_history(run.info.run_id, "system/memory_used_gb")[0].value
    assert stored == pytest.approx(logged["system/memory_used_gb"])


# --------------------------------------------------------------------------- values and names


def test_log_metrics_returns_names_with_prefix_and_unit(
    store: MlflowClient, cpu_logger: SystemMetricsLogger
) -> None:
    with mlflow.start_run():
        values = cpu_logger.log_metrics(step=0)
        custom = cpu_logger.log_metrics(step=1, prefix="hw")
        bare = cpu_logger.log_metrics(step=2, prefix="")

    assert values.keys() >= CPU_NAMES
    assert all(name.endswith(UNITS) for name in values), sorted(values)
    assert {f"hw/{k.removeprefix('system/')}" for k in CPU_NAMES} <= custom.keys()
    assert "cpu_percent" in bare
    assert 0.0 <= values["system/cpu_percent"] <= 100.0
    assert values["system/memory_used_gb"] > 0.0
    assert 0.0 < values["system/memory_percent"] <= 100.0
    assert 0.0 < values["system/process_memory_rss_gb"] < values["system/memory_used_gb"] * 64
    assert all(isinstance(v, float) for v in values.values())


def test_disk_and_network_are_logged_only_when_enabled(store: MlflowClient) -> None:
    with SystemMetricsLogger(log_gpu=False, log_disk=True, log_network=True) as logger:
        values = logger.log_metrics(step=0)
    with SystemMetricsLogger(log_gpu=False) as plain:
        without = plain.log_metrics(step=0)

    assert values.keys() >= NETWORK_NAMES
    assert {"system/disk_usage_percent", "system/disk_free_gb"} <= values.keys()
    if _disk_io_available():
        assert values.keys() >= DISK_IO_NAMES
    rates = [v for k, v in values.items() if k.endswith(("_mb_s", "_total_mb"))]
    assert rates and all(v >= 0.0 for v in rates)
    assert not any("disk" in k or "network" in k for k in without)


def test_log_metrics_without_active_run_returns_values_and_warns_once(
    cpu_logger: SystemMetricsLogger,
) -> None:
    assert mlflow.active_run() is None
    with pytest.warns(SystemMetricsWarning, match="no active MLflow run") as record:
        first = cpu_logger.log_metrics(step=0)
        second = cpu_logger.log_metrics(step=10)

    assert first.keys() >= CPU_NAMES
    assert second.keys() >= CPU_NAMES
    assert len([w for w in record if "no active MLflow run" in str(w.message)]) == 1


def test_explicit_run_id_logs_without_an_active_run(
    store: MlflowClient, cpu_logger: SystemMetricsLogger
) -> None:
    with mlflow.start_run() as run:
        pass
    cpu_logger.log_metrics(step=5, run_id=run.info.run_id)
    assert _steps(store, run.info.run_id, "system/cpu_percent") == [5]


# --------------------------------------------------------------------------- first sample


def test_first_cpu_percent_covers_a_real_interval(cpu_logger: SystemMetricsLogger) -> None:
    """Sampled right after construction, the first value still spans >= 0.1 s of CPU time."""
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(i * i for i in range(1000))

    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SystemMetricsWarning)  # no run: returned only
            values = cpu_logger.log_metrics(step=0)
    finally:
        stop.set()
        burner.join()

    assert values["system/cpu_percent"] > 0.0
    assert values["system/process_cpu_percent"] > 0.0
    assert cpu_logger.stats()["first_wait_s"] > 0.0  # it waited on the sampling thread


def test_first_requested_cpu_percent_is_not_zero(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False)
    _burn(0.15)  # the training thread works between construction and the first request
    with mlflow.start_run() as run:
        logger.request_sample(step=0, run_id=run.info.run_id)
        logger.close()
    get_sink(run.info.run_id).flush()
    history = store.get_metric_history(run.info.run_id, "system/process_cpu_percent")
    assert [m.step for m in history] == [0]
    assert history[0].value > 0.0
    cpu = store.get_metric_history(run.info.run_id, "system/cpu_percent")
    assert cpu[0].value > 0.0


def test_cpu_monitor_primes_in_constructor_on_the_constructing_thread() -> None:
    """The baseline is this monitor's own, so any thread can take the first sample."""
    logger = SystemMetricsLogger(log_gpu=False)
    cpu = logger._monitors[0]
    assert isinstance(cpu, CpuMonitor)
    assert cpu._primed
    logger.close()


# --------------------------------------------------------------------------- request mode


def test_request_sample_logs_at_requested_step_on_sampler_thread(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = CpuMonitor.sample

    def spy(self: CpuMonitor) -> dict[str, float]:
        seen.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(CpuMonitor, "sample", spy)
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        logger.request_sample(step=7, run_id=run.info.run_id)
        logger.close()

    assert seen == [system_metrics._THREAD_NAME]
    assert _steps(store, run.info.run_id, "system/cpu_percent") == [7]
    assert _steps(store, run.info.run_id, "system/memory_used_gb") == [7]


def test_close_drains_every_pending_request_in_order(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        for step in range(0, 500, 10):
            logger.request_sample(step, run.info.run_id)
        logger.close()

    assert _steps(store, run.info.run_id, "system/cpu_percent") == list(range(0, 500, 10))
    stats = logger.stats()
    assert stats["requests"] == 50
    assert stats["samples"] == 50
    assert stats["pending"] == 0


def test_request_sample_returns_without_sampling_on_the_caller(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller only enqueues: a sample that blocks never holds the training thread."""
    gate = threading.Event()
    original = CpuMonitor.sample

    def slow(self: CpuMonitor) -> dict[str, float]:
        gate.wait(10.0)
        return original(self)

    monkeypatch.setattr(CpuMonitor, "sample", slow)
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        for step in range(20):
            logger.request_sample(step, run.info.run_id)  # would block 10 s if synchronous
        assert logger.stats()["samples"] == 0
        gate.set()
        logger.close()
    assert _steps(store, run.info.run_id, "system/cpu_percent") == list(range(20))


def test_close_is_idempotent_and_joins_the_sampler_thread(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        logger.request_sample(0, run.info.run_id)
        thread = logger._thread
        assert thread is not None and thread.is_alive() and thread.daemon
        logger.close()
        assert not thread.is_alive()
        logger.close()
    assert _sampler_threads() == []


def test_logger_is_usable_again_after_close(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        logger.request_sample(0, run.info.run_id)
        logger.close()
        logger.request_sample(10, run.info.run_id)
        logger.close()
    assert _steps(store, run.info.run_id, "system/cpu_percent") == [0, 10]


def test_context_manager_closes_the_thread(store: MlflowClient) -> None:
    with mlflow.start_run() as run, SystemMetricsLogger(log_gpu=False) as logger:
        logger.request_sample(3, run.info.run_id)
        thread = logger._thread
    assert thread is not None and not thread.is_alive()
    assert _steps(store, run.info.run_id, "system/cpu_percent") == [3]


# --------------------------------------------------------------------------- periodic mode


def test_periodic_mode_samples_at_the_step_fn_step(store: MlflowClient) -> None:
    steps = itertools.count(100)
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        logger.start(interval_seconds=0.02, step_fn=lambda: next(steps))
        deadline = time.monotonic() + 10.0
        while logger.stats()["samples"] < 3 and time.monotonic() < deadline:
            threading.Event().wait(0.01)  # poll with a deadline
        logger.stop()
        logger.close()

    logged = _steps(store, run.info.run_id, "system/cpu_percent")
    assert len(logged) >= 3
    assert logged == list(range(100, 100 + len(logged)))


def test_periodic_mode_numbers_samples_without_step_fn(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False)
    with mlflow.start_run() as run:
        logger.start(interval_seconds=0.02, run_id=run.info.run_id, prefix="eval_system")
        deadline = time.monotonic() + 10.0
        while logger.stats()["samples"] < 2 and time.monotonic() < deadline:
            threading.Event().wait(0.01)  # poll with a deadline
        logger.close()
    logged = _steps(store, run.info.run_id, "eval_system/memory_used_gb")
    assert logged[:2] == [0, 1]


def test_start_without_run_or_run_id_is_an_error(cpu_logger: SystemMetricsLogger) -> None:
    with pytest.raises(ValueError, match="run_id=None"):
        cpu_logger.start(1.0)


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_start_rejects_bad_interval(cpu_logger: SystemMetricsLogger, interval: object) -> None:
    with pytest.raises(ValueError, match="interval_seconds="):
        cpu_logger.start(interval, run_id="abc")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- degradation


def test_missing_psutil_warns_once_and_logs_nothing(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` now fails
    with pytest.warns(SystemMetricsWarning) as record:
        logger = SystemMetricsLogger(log_gpu=False, log_disk=True, log_network=True)
        with mlflow.start_run() as run:
            values = logger.log_metrics(step=0)
            logger.request_sample(10, run.info.run_id)
            logger.close()

    hints = [w for w in record if "pip install psutil" in str(w.message)]
    assert len(hints) == 1
    assert values == {}
    assert logger.available is False
    assert store.get_run(run.info.run_id).data.metrics == {}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("gpu_device", [-1, True, 1.0, "0", "cuda:0", [], [0, 0], [0, -1], None])
def test_bad_gpu_device_is_a_value_error_naming_it(gpu_device: object) -> None:
    with pytest.raises(ValueError, match=r"gpu_device=.*'all'"):
        SystemMetricsLogger(gpu_device=gpu_device)  # type: ignore[arg-type]


@pytest.mark.parametrize("gpu_device", [0, 3, [0, 1], (1,), "all"])
def test_good_gpu_device_is_accepted(gpu_device: object) -> None:
    SystemMetricsLogger(log_cpu=False, gpu_device=gpu_device).close()  # type: ignore[arg-type]


@pytest.mark.parametrize("flag", ["log_cpu", "log_gpu", "log_disk", "log_network"])
def test_non_bool_flag_is_a_value_error(flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        SystemMetricsLogger(**{flag: "yes"})  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [-1, 1.5, "3", None, True])
def test_bad_step_is_a_value_error(cpu_logger: SystemMetricsLogger, step: object) -> None:
    with pytest.raises(ValueError, match="step="):
        cpu_logger.log_metrics(step=step)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step="):
        cpu_logger.request_sample(step, run_id="abc")  # type: ignore[arg-type]


def test_request_sample_needs_a_run_id(cpu_logger: SystemMetricsLogger) -> None:
    with pytest.raises(ValueError, match="run_id="):
        cpu_logger.request_sample(0, run_id="")


def test_bad_prefix_is_a_value_error(cpu_logger: SystemMetricsLogger) -> None:
    with pytest.raises(ValueError, match="prefix="):
        cpu_logger.log_metrics(step=0, prefix=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cost


def test_stats_expose_the_per_sample_cost(store: MlflowClient) -> None:
    logger = SystemMetricsLogger(log_gpu=False, log_disk=True, log_network=True)
    assert logger.stats()["samples"] == 0
    with mlflow.start_run() as run:
        for step in range(20):
            logger.request_sample(step, run.info.run_id)
        logger.close()
    stats = logger.stats()
    assert stats["samples"] == 20
    assert 0.0 < stats["median_s"] <= stats["p95_s"] <= stats["max_s"] < 5.0
    assert stats["mean_s"] > 0.0
    assert logger.sample_cost_seconds == stats["median_s"]
    assert stats["setup_s"] >= 0.0


def test_constructor_starts_no_thread_and_touches_no_gpu() -> None:
    """Cheap constructor: NVML is initialised on the first sample, not before."""
    before = len(_sampler_threads())
    logger = SystemMetricsLogger()
    assert logger._active is None
    assert len(_sampler_threads()) == before
    logger.close()
