"""GPU metrics with a fake ``pynvml`` module and fake ``torch.cuda`` counters.

There is no GPU here, so the library boundary is replaced: a module object named
``pynvml`` with the NVML functions the monitor calls, and ``torch.cuda``'s allocator
counters. Everything above the boundary (monitors, logger, sink, sqlite store) is real.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from psy_agents_noaug.monitoring import base
from psy_agents_noaug.monitoring import logger as system_metrics
from psy_agents_noaug.monitoring.base import MAX_CONSECUTIVE_FAILURES
from psy_agents_noaug.tracking import get_sink
from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger, SystemMetricsWarning

GIB = 1 << 30
NVML_SUFFIXES = {
    "utilization_percent": 40.0,
    "memory_bandwidth_percent": 20.0,
    "memory_used_gb": 3.0,
    "memory_used_percent": 3.75,
    "temperature_c": 55.0,
    "power_watts": 250.5,
    "sm_clock_mhz": 1980.0,
    "memory_clock_mhz": 2619.0,
}
NVML_NAMES = {f"system/gpu_{suffix}" for suffix in NVML_SUFFIXES}


class FakeNVMLError(Exception):
    """Stands in for ``pynvml.NVMLError``."""


def make_fake_nvml(
    count: int = 1, failing: tuple[str, ...] = (), init_fails: bool = False
) -> types.ModuleType:
    """A ``pynvml`` look-alike. Device ``i``'s utilization is ``40 + i`` so tests can
    tell which NVML index a CUDA index was mapped to. ``calls`` counts every call and
    ``threads`` records the thread each NVML call ran on."""
    nvml: Any = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.NVML_CLOCK_SM = 1
    nvml.NVML_CLOCK_MEM = 2
    nvml.calls = Counter()
    nvml.threads = set()

    def api(fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            nvml.calls[fn.__name__] += 1
            nvml.threads.add(threading.current_thread().name)
            if fn.__name__ in failing:
                raise FakeNVMLError("Not Supported")
            return fn(*args)

        setattr(nvml, fn.__name__, wrapper)
        return wrapper

    @api
    def nvmlInit() -> None:
        if init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    @api
    def nvmlShutdown() -> None:
        pass

    @api
    def nvmlDeviceGetCount() -> int:
        return count

    @api
    def nvmlDeviceGetHandleByIndex(index: int) -> tuple[str, int]:
        if not 0 <= index < count:
            raise FakeNVMLError("Invalid Argument")
        return ("handle", index)

    @api
    def nvmlDeviceGetName(handle: tuple[str, int]) -> str:
        return f"Fake GPU {handle[1]}"

    @api
    def nvmlDeviceGetUtilizationRates(handle: tuple[str, int]) -> SimpleNamespace:
        return SimpleNamespace(gpu=40 + handle[1], memory=20)

    @api
    def nvmlDeviceGetMemoryInfo(handle: tuple[str, int]) -> SimpleNamespace:
        return SimpleNamespace(used=3 * GIB, total=80 * GIB, free=77 * GIB)

    @api
    def nvmlDeviceGetTemperature(handle: tuple[str, int], sensor: int) -> int:
        assert sensor == nvml.NVML_TEMPERATURE_GPU
        return 55

    @api
    def nvmlDeviceGetPowerUsage(handle: tuple[str, int]) -> int:
        return 250_500  # milliwatts

    @api
    def nvmlDeviceGetClockInfo(handle: tuple[str, int], clock: int) -> int:
        return {nvml.NVML_CLOCK_SM: 1980, nvml.NVML_CLOCK_MEM: 2619}[clock]

    return nvml


@pytest.fixture(autouse=True)
def no_real_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_WARNED", set())  # warn_once is per process
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Any:
    nvml = make_fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    return nvml


@pytest.fixture(scope="module")
def module_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"


@pytest.fixture
def store(module_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_tracking_uri)
    mlflow.set_tracking_uri(module_tracking_uri)
    yield MlflowClient(module_tracking_uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def _gpu_only(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k.startswith("system/gpu")}


def _sample(logger: SystemMetricsLogger, step: int = 0) -> dict[str, float]:
    """One standalone sample with no run: the values come back, nothing is logged."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no active MLflow run.*")
        return logger.log_metrics(step=step)


# --------------------------------------------------------------------------- all present


def test_every_nvml_metric_is_logged_with_the_spec_names(
    store: MlflowClient, fake_nvml: Any
) -> None:
    with mlflow.start_run() as run, SystemMetricsLogger(log_cpu=False) as logger:
        values = logger.log_metrics(step=10)

    assert _gpu_only(values) == {f"system/gpu_{k}": v for k, v in NVML_SUFFIXES.items()}
    get_sink(run.info.run_id).flush()
    stored = store.get_run(run.info.run_id).data.metrics
    assert stored == pytest.approx(values)
    history = store.get_metric_history(run.info.run_id, "system/gpu_power_watts")
    assert [(m.step, m.value) for m in history] == [(10, 250.5)]


def test_cpu_and_gpu_metrics_come_together(fake_nvml: Any) -> None:
    with SystemMetricsLogger() as logger:
        values = _sample(logger)
    assert values.keys() >= NVML_NAMES
    assert {"system/cpu_percent", "system/memory_used_gb"} <= values.keys()


def test_nvml_is_initialised_once_and_shut_down_once(fake_nvml: Any) -> None:
    logger = SystemMetricsLogger(log_cpu=False)
    assert fake_nvml.calls["nvmlInit"] == 0  # cheap constructor
    for step in range(5):
        _sample(logger, step)
    assert fake_nvml.calls["nvmlInit"] == 1
    assert fake_nvml.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert fake_nvml.calls["nvmlDeviceGetPowerUsage"] == 5
    logger.close()
    logger.close()
    assert fake_nvml.calls["nvmlShutdown"] == 1


def test_request_mode_initialises_and_samples_nvml_on_the_sampler_thread(
    store: MlflowClient, fake_nvml: Any
) -> None:
    logger = SystemMetricsLogger(log_cpu=False)
    with mlflow.start_run() as run:
        logger.request_sample(step=20, run_id=run.info.run_id)
        logger.request_sample(step=30, run_id=run.info.run_id)
        logger.close()

    main = threading.current_thread().name
    sampled_on = fake_nvml.threads - {main}
    assert sampled_on == {system_metrics._THREAD_NAME}
    assert fake_nvml.calls["nvmlInit"] == 1
    get_sink(run.info.run_id).flush()
    history = store.get_metric_history(run.info.run_id, "system/gpu_utilization_percent")
    assert [m.step for m in history] == [20, 30]


# --------------------------------------------------------------------------- one query fails


@pytest.mark.parametrize(
    ("failing", "missing"),
    [
        ("nvmlDeviceGetPowerUsage", {"power_watts"}),
        ("nvmlDeviceGetTemperature", {"temperature_c"}),
        ("nvmlDeviceGetUtilizationRates", {"utilization_percent", "memory_bandwidth_percent"}),
        ("nvmlDeviceGetMemoryInfo", {"memory_used_gb", "memory_used_percent"}),
        ("nvmlDeviceGetClockInfo", {"sm_clock_mhz", "memory_clock_mhz"}),
    ],
)
def test_one_refused_query_loses_only_its_metric(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch, failing: str, missing: set[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(failing=(failing,)))
    with mlflow.start_run() as run, SystemMetricsLogger() as logger:
        samples = [logger.log_metrics(step=step) for step in (0, 10)]

    expected = {f"system/gpu_{k}" for k in NVML_SUFFIXES.keys() - missing}
    for values in samples:
        assert _gpu_only(values).keys() == expected
        assert {"system/cpu_percent", "system/memory_used_gb"} <= values.keys()
    get_sink(run.info.run_id).flush()
    stored = store.get_run(run.info.run_id).data.metrics
    assert {f"system/gpu_{k}" for k in missing}.isdisjoint(stored)
    assert expected <= stored.keys()


def test_a_refused_query_is_logged_once_then_switched_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="psy_agents_noaug.monitoring")
    nvml = make_fake_nvml(failing=("nvmlDeviceGetPowerUsage",))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with SystemMetricsLogger(log_cpu=False) as logger:
        for step in range(MAX_CONSECUTIVE_FAILURES + 3):
            assert "system/gpu_temperature_c" in _sample(logger, step)

    assert nvml.calls["nvmlDeviceGetPowerUsage"] == MAX_CONSECUTIVE_FAILURES
    assert nvml.calls["nvmlDeviceGetTemperature"] == MAX_CONSECUTIVE_FAILURES + 3
    lines = [r.getMessage() for r in caplog.records if "power" in r.getMessage()]
    assert len(lines) == 2, lines  # the first failure, then the switch-off note
    assert "skipping it" in lines[0] and "switched off" in lines[1]


# --------------------------------------------------------------------------- NVML unavailable


def test_nvml_init_failure_warns_once_and_cpu_metrics_still_log(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = make_fake_nvml(init_fails=True)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with pytest.warns(SystemMetricsWarning) as record, mlflow.start_run() as run:
        for trial in range(2):  # two loggers in one process (e.g. two HPO trials)
            with SystemMetricsLogger() as logger:
                values = logger.log_metrics(step=trial)
                logger.request_sample(step=10 + trial, run_id=run.info.run_id)

    assert len([w for w in record if "NVML could not start" in str(w.message)]) == 1
    assert _gpu_only(values) == {}
    assert {"system/cpu_percent", "system/memory_used_gb"} <= values.keys()
    assert nvml.calls["nvmlShutdown"] == 0  # nothing to shut down
    get_sink(run.info.run_id).flush()
    history = store.get_metric_history(run.info.run_id, "system/cpu_percent")
    assert sorted(m.step for m in history) == [0, 1, 10, 11]


def test_missing_pynvml_warns_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` now fails
    with (
        pytest.warns(SystemMetricsWarning, match="pip install nvidia-ml-py"),
        SystemMetricsLogger() as logger,
    ):
        values = _sample(logger)
    assert _gpu_only(values) == {}
    assert "system/cpu_percent" in values


def test_no_psutil_and_no_gpu_means_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(init_fails=True))
    with (
        pytest.warns(SystemMetricsWarning),
        SystemMetricsLogger() as logger,
    ):
        assert logger.available is False
        assert _sample(logger) == {}


def test_no_psutil_but_a_gpu_logs_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml())
    with (
        pytest.warns(SystemMetricsWarning, match="pip install psutil"),
        SystemMetricsLogger(log_disk=True) as logger,
    ):
        assert logger.available is True
        values = _sample(logger)
    assert values.keys() == NVML_NAMES


def test_missing_device_warns_and_keeps_cpu_metrics(fake_nvml: Any) -> None:
    with (
        pytest.warns(SystemMetricsWarning, match="gpu_device 5"),
        SystemMetricsLogger(gpu_device=5) as logger,
    ):
        values = _sample(logger)
    assert _gpu_only(values) == {}
    assert "system/cpu_percent" in values
    assert fake_nvml.calls["nvmlShutdown"] == 1  # init succeeded, so it is undone


# --------------------------------------------------------------------------- several GPUs


@pytest.mark.parametrize("gpu_device", [[0, 1], "all"])
def test_several_gpus_carry_their_index(
    monkeypatch: pytest.MonkeyPatch, gpu_device: object
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(count=2))
    with SystemMetricsLogger(log_cpu=False, gpu_device=gpu_device) as logger:  # type: ignore[arg-type]
        values = _sample(logger)

    expected = {f"system/gpu{i}_{k}" for i in (0, 1) for k in NVML_SUFFIXES}
    assert values.keys() == expected
    assert values["system/gpu0_utilization_percent"] == 40.0
    assert values["system/gpu1_utilization_percent"] == 41.0


def test_single_gpu_in_a_list_still_carries_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(count=2))
    with SystemMetricsLogger(log_cpu=False, gpu_device=[1]) as logger:
        values = _sample(logger)
    assert values["system/gpu1_utilization_percent"] == 41.0
    assert "system/gpu_utilization_percent" not in values


def test_cuda_visible_devices_maps_cuda_index_to_nvml_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(count=4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    with SystemMetricsLogger(log_cpu=False, gpu_device="all") as logger:
        values = _sample(logger)
    assert values["system/gpu0_utilization_percent"] == 43.0  # cuda:0 is NVML device 3
    assert values["system/gpu1_utilization_percent"] == 41.0
    assert not any(k.startswith("system/gpu2") for k in values)


# --------------------------------------------------------------------------- torch.cuda


def _fake_torch_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: (1 + i) * GIB)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: (2 + i) * GIB)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: (3 + i) * GIB)


def test_torch_cuda_allocator_metrics(fake_nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch_cuda(monkeypatch, count=1)
    with SystemMetricsLogger(log_cpu=False) as logger:
        values = _sample(logger)
    assert values["system/gpu_memory_allocated_gb"] == 1.0
    assert values["system/gpu_memory_reserved_gb"] == 2.0
    assert values["system/gpu_memory_peak_allocated_gb"] == 3.0
    assert values.keys() >= NVML_NAMES


def test_torch_cuda_metrics_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml(init_fails=True))
    _fake_torch_cuda(monkeypatch, count=2)
    with (
        pytest.warns(SystemMetricsWarning, match="NVML could not start"),
        SystemMetricsLogger(log_cpu=False, gpu_device="all") as logger,
    ):
        values = _sample(logger)
    assert values == {
        "system/gpu0_memory_allocated_gb": 1.0,
        "system/gpu0_memory_reserved_gb": 2.0,
        "system/gpu0_memory_peak_allocated_gb": 3.0,
        "system/gpu1_memory_allocated_gb": 2.0,
        "system/gpu1_memory_reserved_gb": 3.0,
        "system/gpu1_memory_peak_allocated_gb": 4.0,
    }


def test_torch_cuda_error_loses_only_that_counter(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_torch_cuda(monkeypatch, count=1)

    def broken(index: int) -> int:
        raise RuntimeError("CUDA error: unspecified launch failure")

    monkeypatch.setattr(torch.cuda, "memory_reserved", broken)
    with SystemMetricsLogger() as logger:
        values = _sample(logger)
    assert "system/gpu_memory_reserved_gb" not in values
    assert values["system/gpu_memory_allocated_gb"] == 1.0
    assert values["system/gpu_memory_peak_allocated_gb"] == 3.0
    assert values.keys() >= NVML_NAMES
    assert "system/cpu_percent" in values
