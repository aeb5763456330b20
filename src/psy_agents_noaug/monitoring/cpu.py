"""CPU and memory of the machine and of this process, through psutil.

CPU percentages are computed here from ``cpu_times()`` deltas kept on the monitor, not
with ``psutil.cpu_percent(None)``: psutil keeps that state per *thread* (psutil >= 6),
so priming it on the training thread and reading it on the sampler thread would give
0.0 on the first sample.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

from psy_agents_noaug.monitoring.base import (
    BYTES_PER_GB,
    Monitor,
    Probe,
    load_psutil,
    read_probes,
)

#: Shortest window a CPU percentage is computed over.
MIN_CPU_WINDOW_S = 0.1


def busy_and_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds from a ``psutil.cpu_times()`` tuple.

    ``guest`` and ``guest_nice`` are already inside ``user``/``nice`` on Linux, so they
    are left out of the total; idle and iowait are the non-busy time.
    """
    fields = times._asdict()
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class WindowedRatio:
    """``100 * d(busy) / d(total)`` over the last ``window`` seconds or more.

    CPU time advances in scheduler ticks (10 ms), so a ratio over a few milliseconds is
    0 or 100. Readings are kept until a newer one is at least ``window`` old, so every
    sample reports a window of at least that length, however often it is asked for.
    """

    def __init__(self, window: float = MIN_CPU_WINDOW_S) -> None:
        self.window = window
        self._readings: deque[tuple[float, float, float]] = deque()  # (time, busy, total)

    def prime(self, busy: float, total: float) -> None:
        self._readings.clear()
        self._readings.append((time.monotonic(), busy, total))

    def update(self, busy: float, total: float) -> float | None:
        now = time.monotonic()
        readings = self._readings
        readings.append((now, busy, total))
        while len(readings) > 2 and now - readings[1][0] >= self.window:
            readings.popleft()
        if len(readings) < 2:
            return None
        _, busy0, total0 = readings[0]
        if total - total0 <= 0.0:
            return None
        return 100.0 * (busy - busy0) / (total - total0)


class CpuMonitor(Monitor):
    """Machine CPU/memory and this process's RSS and CPU.

    Metrics: ``cpu_percent`` (all cores, 0-100, over the last >= 0.1 s), ``memory_used_gb``,
    ``memory_available_gb``, ``memory_percent``, ``process_memory_rss_gb``,
    ``process_cpu_percent`` (percent of one core, may exceed 100 with several threads).
    """

    needs_warmup = True

    def __init__(self) -> None:
        self._psutil: Any | None = None
        self._process: Any | None = None
        self._cpu = WindowedRatio()  # machine busy / total CPU seconds
        self._proc = WindowedRatio()  # process CPU seconds / wall seconds
        self._primed = False
        self._probes: list[Probe] = []
        self._loaded = False

    def _load(self) -> Any | None:
        if not self._loaded:
            self._loaded = True
            self._psutil = load_psutil()
            if self._psutil is not None:
                self._process = self._psutil.Process(os.getpid())
        return self._psutil

    def _proc_cpu_seconds(self) -> float:
        assert self._process is not None
        t = self._process.cpu_times()
        return float(t.user + t.system)

    def prime(self) -> None:
        psutil = self._load()
        if psutil is None:
            return
        self._cpu.prime(*busy_and_total(psutil.cpu_times()))
        self._proc.prime(self._proc_cpu_seconds(), time.monotonic())
        self._primed = True

    def setup(self) -> bool:
        psutil = self._load()
        if psutil is None:
            return False
        if not self._primed:
            self.prime()
        self._probes = [
            Probe("cpu_percent", self._cpu_percent),
            Probe("virtual_memory", self._memory),
            Probe("process_memory", self._process_memory),
            Probe("process_cpu", self._process_cpu),
        ]
        return True

    def _cpu_percent(self) -> dict[str, float]:
        assert self._psutil is not None
        value = self._cpu.update(*busy_and_total(self._psutil.cpu_times()))
        return {} if value is None else {"cpu_percent": min(100.0, max(0.0, value))}

    def _memory(self) -> dict[str, float]:
        assert self._psutil is not None
        vm = self._psutil.virtual_memory()
        return {
            "memory_used_gb": vm.used / BYTES_PER_GB,
            "memory_available_gb": vm.available / BYTES_PER_GB,
            "memory_percent": float(vm.percent),
        }

    def _process_memory(self) -> dict[str, float]:
        assert self._process is not None
        return {"process_memory_rss_gb": self._process.memory_info().rss / BYTES_PER_GB}

    def _process_cpu(self) -> dict[str, float]:
        value = self._proc.update(self._proc_cpu_seconds(), time.monotonic())
        return {} if value is None else {"process_cpu_percent": max(0.0, value)}

    def sample(self) -> dict[str, float]:
        return read_probes(self._probes)

    def close(self) -> None:
        self._probes = []
