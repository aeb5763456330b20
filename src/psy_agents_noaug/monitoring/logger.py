"""System resource metrics (CPU, memory, GPU, disk, network) for MLflow runs.

``SystemMetricsLogger`` merges one monitor per resource (this package), adds the
prefix, and hands the values to the project's metric sink with a step. Three ways to
drive it:

* **standalone** (the spec's example 4): call :meth:`~SystemMetricsLogger.log_metrics`
  every N steps; it samples on the calling thread and returns what it logged.
* **on request** (the Trainer): :meth:`~SystemMetricsLogger.request_sample` returns in
  microseconds; a daemon thread samples and logs at the step that was asked for, so
  psutil and NVML calls cost the training thread nothing.
* **periodic** (long evaluation phases): :meth:`~SystemMetricsLogger.start` samples every
  ``interval_seconds`` on the same thread until :meth:`~SystemMetricsLogger.stop`.

Metric names (after ``prefix/``; GB and MB are binary, GiB and MiB). With ``gpu_device``
a list or ``"all"``, GPU names carry the CUDA index: ``gpu0_utilization_percent``.

* ``cpu_percent``: machine CPU busy share, all cores, 0-100, over >= 0.1 s
* ``memory_used_gb``, ``memory_available_gb``, ``memory_percent``: machine RAM
* ``process_memory_rss_gb``, ``process_cpu_percent``: this process (percent of one core)
* ``gpu_memory_allocated_gb``, ``gpu_memory_reserved_gb``, ``gpu_memory_peak_allocated_gb``:
  torch.cuda, this process's caching allocator
* ``gpu_utilization_percent``, ``gpu_memory_bandwidth_percent``: NVML, share of time a
  kernel ran / device memory was read or written
* ``gpu_memory_used_gb``, ``gpu_memory_used_percent``: NVML, all processes on the device
* ``gpu_temperature_c``, ``gpu_power_watts``, ``gpu_sm_clock_mhz``, ``gpu_memory_clock_mhz``
* ``disk_read_mb_s``, ``disk_write_mb_s`` (since the previous sample),
  ``disk_read_total_mb``, ``disk_write_total_mb`` (since the logger was created),
  ``disk_usage_percent``, ``disk_free_gb`` (file system of the working directory)
* ``network_sent_mb_s``, ``network_received_mb_s``, ``network_sent_total_mb``,
  ``network_received_total_mb``

A metric the machine cannot provide is left out (with one warning per process for a
missing package or driver); the others are still logged. Monitoring never raises into
training.
"""

from __future__ import annotations

import logging
import math
import operator
import queue
import statistics
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import mlflow

from psy_agents_noaug.monitoring.base import Monitor, SystemMetricsWarning, warn_once
from psy_agents_noaug.monitoring.cpu import CpuMonitor
from psy_agents_noaug.monitoring.disk import DiskMonitor
from psy_agents_noaug.monitoring.gpu import (
    DeviceSelection,
    NvmlMonitor,
    TorchCudaMonitor,
    validate_gpu_device,
)
from psy_agents_noaug.monitoring.network import NetworkMonitor
from psy_agents_noaug.tracking.sink import get_sink

__all__ = ["SystemMetricsLogger", "SystemMetricsWarning"]

logger = logging.getLogger(__name__)

#: The first percentage/rate needs this much time after priming to mean anything; the
#: sampling thread waits out the rest once, on the thread that samples.
MIN_FIRST_INTERVAL_S = 0.1
#: How many recent per-sample costs ``stats()`` summarises.
COST_WINDOW = 1024
_THREAD_NAME = "psy-agents-system-metrics"
_JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class _Request:
    step: int
    run_id: str
    prefix: str


@dataclass(slots=True)
class _Periodic:
    interval: float
    run_id: str
    prefix: str
    step_fn: Callable[[], int] | None
    next_due: float
    counter: int = 0


_STOP = object()  # ends the sampler thread after everything queued before it
_WAKE = object()  # makes the sampler thread re-read the periodic schedule


def _check_step(step: object) -> int:
    if not isinstance(step, bool):
        try:
            value = operator.index(step)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            if value >= 0:
                return int(value)
    raise ValueError(f"step={step!r} is invalid: expected an int >= 0")


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"prefix={prefix!r} is invalid: expected a str such as 'system' or ''")
    prefix = prefix.rstrip("/")
    return f"{prefix}/" if prefix else ""


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is invalid: expected True or False")
    return value


def _close_monitors(monitors: Iterable[Monitor]) -> None:
    for monitor in monitors:
        try:
            monitor.close()
        except Exception:
            logger.debug("closing %r failed", monitor, exc_info=True)


class SystemMetricsLogger:
    """Samples CPU, memory, GPU, disk and network use and logs it to an MLflow run.

    The constructor is cheap: it validates, imports psutil and reads a few counters so
    the first percentage/rate covers a real interval. NVML and CUDA are touched lazily,
    once, on the first sample. Call :meth:`close` (or use ``with``) to stop the sampler
    thread, drain pending requests and shut NVML down.

    Args:
        log_cpu: CPU and memory of the machine and this process (psutil).
        log_gpu: GPU memory through ``torch.cuda`` and utilization, memory, temperature,
            power and clocks through NVML (``nvidia-ml-py``).
        log_disk: Disk read/write rates and totals, disk space (psutil).
        log_network: Network sent/received rates and totals (psutil).
        gpu_device: CUDA index as in ``cuda:0``; or a list of indices, or ``"all"``, in
            which case every GPU name carries its index (``gpu1_power_watts``).

    Raises:
        ValueError: A flag is not a bool or ``gpu_device`` is not an index >= 0, a
            non-empty list of distinct indices, or ``"all"``.

    Example:
        >>> import mlflow
        >>> from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger
        >>> system_logger = SystemMetricsLogger(log_gpu=False)
        >>> with mlflow.start_run():  # doctest: +SKIP
        ...     for step in range(100):
        ...         if step % 10 == 0:
        ...             system_logger.log_metrics(step=step)
        >>> system_logger.close()
    """

    def __init__(
        self,
        log_cpu: bool = True,
        log_gpu: bool = True,
        log_disk: bool = False,
        log_network: bool = False,
        gpu_device: DeviceSelection = 0,
    ) -> None:
        selection = validate_gpu_device(gpu_device)
        monitors: list[Monitor] = []
        if _check_flag("log_cpu", log_cpu):
            monitors.append(CpuMonitor())
        if _check_flag("log_gpu", log_gpu):
            monitors += [TorchCudaMonitor(selection), NvmlMonitor(selection)]
        if _check_flag("log_disk", log_disk):
            monitors.append(DiskMonitor())
        if _check_flag("log_network", log_network):
            monitors.append(NetworkMonitor())
        self.gpu_device = selection
        self._monitors = monitors
        for monitor in monitors:
            monitor.prime()
        self._primed_at = time.monotonic()

        self._sample_lock = threading.Lock()  # monitors keep deltas: one sampler at a time
        self._active: list[Monitor] | None = None  # None until the lazy setup ran
        self._finalizer: weakref.finalize | None = None
        self._warmed_up = False
        self._costs: deque[float] = deque(maxlen=COST_WINDOW)
        self._samples = 0
        self._setup_s = math.nan
        self._first_wait_s = 0.0

        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._periodic: _Periodic | None = None
        self._requests = 0
        self._max_pending = 0

    # ------------------------------------------------------------------ sampling

    def _ensure_setup(self) -> list[Monitor]:
        """Initialise every monitor once (NVML init lives here); caller holds the lock."""
        if self._active is None:
            start = time.perf_counter()
            active: list[Monitor] = []
            for monitor in self._monitors:
                try:
                    ok = monitor.setup()
                except Exception as exc:
                    logger.warning("system metrics: %s setup failed: %r", type(monitor), exc)
                    ok = False
                if ok:
                    active.append(monitor)
            self._active = active
            self._setup_s = time.perf_counter() - start
            self._finalizer = weakref.finalize(self, _close_monitors, tuple(self._monitors))
        return self._active

    def _warm_up(self, active: list[Monitor]) -> None:
        """Wait out the rest of the first interval so the first percentages are real."""
        self._warmed_up = True
        if not any(m.needs_warmup for m in active):
            return
        remaining = MIN_FIRST_INTERVAL_S - (time.monotonic() - self._primed_at)
        if remaining > 0.0:
            # A bounded one-off pause (<= 0.1 s), also when close() is already waiting:
            # a first sample without it would have no CPU percentage.
            self._first_wait_s = remaining
            time.sleep(remaining)

    def _sample(self, prefix: str) -> dict[str, float]:
        """Read every active monitor; never raises. ``prefix`` is already checked."""
        with self._sample_lock:
            active = self._ensure_setup()
            if not self._warmed_up:
                self._warm_up(active)
            start = time.perf_counter()
            values: dict[str, float] = {}
            for monitor in active:
                try:
                    values.update(monitor.sample())
                except Exception as exc:  # belt and braces: probes already catch
                    logger.warning("system metrics: %s failed: %r", type(monitor), exc)
            self._costs.append(time.perf_counter() - start)
            self._samples += 1
        return {f"{prefix}{name}": value for name, value in values.items()}

    def _log(self, run_id: str, values: dict[str, float], step: int) -> None:
        if not values:
            return
        try:
            get_sink(run_id).log_dict(values, step=step)
        except Exception as exc:
            logger.warning("system metrics for step %d not logged: %r", step, exc)

    # ------------------------------------------------------------------ public API

    def log_metrics(
        self, step: int, prefix: str = "system", run_id: str | None = None
    ) -> dict[str, float]:
        """Sample now, on this thread, and log the values at ``step``.

        The very first call may wait up to 0.1 s so its CPU percentage covers a real
        interval; later calls cost what :meth:`stats` reports.

        Args:
            step: Global training step the values belong to.
            prefix: Namespace in front of every name (``"system"`` -> ``system/...``).
            run_id: Run to log to; None means this thread's active MLflow run. With
                neither, the values are returned but not logged (one warning).

        Returns:
            The logged values, full names (``system/cpu_percent``) to floats; empty
            when nothing can be measured.

        Raises:
            ValueError: ``step`` is not an int >= 0 or ``prefix`` is not a str.
        """
        step = _check_step(step)
        pre = _check_prefix(prefix)
        if run_id is None:
            run = mlflow.active_run()
            run_id = run.info.run_id if run is not None else None
        values = self._sample(pre)
        if run_id is None:
            warn_once(
                "system-metrics-no-run",
                "SystemMetricsLogger.log_metrics: no active MLflow run and no run_id; "
                "system metrics are returned but not logged",
            )
            return values
        self._log(run_id, values, step)
        return values

    def request_sample(self, step: int, run_id: str, prefix: str = "system") -> None:
        """Ask the sampler thread for one sample at ``step``; returns at once.

        Requests are served in order and every one is logged at its own step, even if
        the thread falls behind. The run id is passed explicitly because MLflow's
        active run is per thread.

        Args:
            step: Global training step the values belong to.
            run_id: Run to log to (``mlflow.active_run().info.run_id`` on the caller).
            prefix: Namespace in front of every name.

        Raises:
            ValueError: Bad ``step``, empty ``run_id`` or non-str ``prefix``.
        """
        step = _check_step(step)
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id={run_id!r} is invalid: expected a non-empty run id")
        if self._thread is None:
            self._ensure_thread()
        self._queue.put(_Request(step, run_id, _check_prefix(prefix)))
        self._requests += 1

    def start(
        self,
        interval_seconds: float,
        run_id: str | None = None,
        prefix: str = "system",
        step_fn: Callable[[], int] | None = None,
    ) -> None:
        """Sample every ``interval_seconds`` on the sampler thread until :meth:`stop`.

        The first sample is taken at once. Calling ``start`` again replaces the schedule.

        Args:
            interval_seconds: Seconds between samples, > 0.
            run_id: Run to log to; None means this thread's active run, read now.
            prefix: Namespace in front of every name.
            step_fn: Returns the step for each sample (e.g. the trainer's global step);
                None numbers samples 0, 1, 2, ...

        Raises:
            ValueError: ``interval_seconds`` is not a positive finite number, or there
                is no ``run_id`` and no active run.
        """
        if (
            isinstance(interval_seconds, bool)
            or not isinstance(interval_seconds, int | float)
            or not math.isfinite(interval_seconds)
            or interval_seconds <= 0
        ):
            raise ValueError(
                f"interval_seconds={interval_seconds!r} is invalid: expected a number > 0"
            )
        pre = _check_prefix(prefix)
        if run_id is None:
            run = mlflow.active_run()
            if run is None:
                raise ValueError("run_id=None is invalid without an active MLflow run")
            run_id = run.info.run_id
        self._periodic = _Periodic(
            float(interval_seconds), run_id, pre, step_fn, next_due=time.monotonic()
        )
        self._ensure_thread()
        self._queue.put(_WAKE)

    def stop(self) -> None:
        """End periodic sampling; requests are still served until :meth:`close`."""
        self._periodic = None
        if self._thread is not None:
            self._queue.put(_WAKE)

    def close(self) -> None:
        """Stop the sampler thread after it served every pending request; shut NVML down.

        Points are then in the metric sink; ``get_sink(run_id).flush()`` makes them
        durable. Idempotent; the logger can be used again afterwards (it re-initialises).
        """
        with self._thread_lock:
            thread, self._thread = self._thread, None
            self._periodic = None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():  # stuck in a driver call: never hang the caller on it
                logger.warning(
                    "system metrics thread did not stop within %.0f s; left running",
                    _JOIN_TIMEOUT_S,
                )
                return
        with self._sample_lock:
            if self._finalizer is not None:
                self._finalizer()  # closes every monitor once: NVML shutdown
                self._finalizer = None
            self._active = None

    def stats(self) -> dict[str, float]:
        """Cost of sampling, measured on the thread that samples.

        Returns:
            ``samples`` (count), ``median_s``/``mean_s``/``p95_s``/``max_s`` over the last
            1024 samples (probes only, not the one-off setup or first wait),
            ``setup_s`` (NVML init etc., once), ``first_wait_s``, ``requests``,
            ``max_pending`` (largest request backlog seen) and ``pending``.
        """
        costs = sorted(self._costs)
        nan = math.nan
        return {
            "samples": float(self._samples),
            "median_s": statistics.median(costs) if costs else nan,
            "mean_s": statistics.fmean(costs) if costs else nan,
            "p95_s": costs[min(len(costs) - 1, int(0.95 * len(costs)))] if costs else nan,
            "max_s": costs[-1] if costs else nan,
            "setup_s": self._setup_s,
            "first_wait_s": self._first_wait_s,
            "requests": float(self._requests),
            "max_pending": float(self._max_pending),
            "pending": float(self._queue.qsize()),
        }

    @property
    def sample_cost_seconds(self) -> float:
        """Median seconds one sample costs the sampling thread (nan before any sample)."""
        return self.stats()["median_s"]

    @property
    def available(self) -> bool:
        """Whether any metric can be measured here (initialises the monitors once)."""
        with self._sample_lock:
            return bool(self._ensure_setup())

    def __enter__(self) -> SystemMetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ sampler thread

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Serve requests in order; fire periodic samples when due; end at ``_STOP``."""
        while True:
            periodic = self._periodic
            timeout = None
            if periodic is not None:
                timeout = max(0.0, periodic.next_due - time.monotonic())
            try:
                item: object = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = _WAKE
            if item is _STOP:
                return
            try:
                if isinstance(item, _Request):
                    self._max_pending = max(self._max_pending, self._queue.qsize() + 1)
                    self._log(item.run_id, self._sample(item.prefix), item.step)
                self._tick()
            except Exception:  # the thread must outlive any bug in one sample
                logger.exception("system metrics sample failed")

    def _tick(self) -> None:
        periodic = self._periodic
        now = time.monotonic()
        if periodic is None or now < periodic.next_due:
            return
        step = periodic.counter
        if periodic.step_fn is not None:
            try:
                step = _check_step(periodic.step_fn())
            except Exception as exc:
                logger.warning("system metrics step_fn failed, using %d: %r", step, exc)
        periodic.counter += 1
        self._log(periodic.run_id, self._sample(periodic.prefix), step)
        # Keep the cadence; after a stall, restart it rather than firing a burst.
        periodic.next_due += periodic.interval
        if periodic.next_due <= now:
            periodic.next_due = now + periodic.interval
