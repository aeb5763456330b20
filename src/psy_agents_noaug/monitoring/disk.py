"""Disk I/O of the machine (rates and totals since monitoring began) and disk space."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from psy_agents_noaug.monitoring.base import (
    BYTES_PER_GB,
    BYTES_PER_MB,
    Monitor,
    Probe,
    load_psutil,
    read_probes,
)


class CounterRates:
    """Turns monotonically growing byte counters into MB/s and MB-since-start.

    Rates are over the time since the previous reading, so every sample reports what
    happened in its own interval; totals count from the first reading (``prime``), not
    from boot, so they describe this run.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._start: tuple[int, ...] | None = None
        self._last: tuple[int, ...] | None = None
        self._last_t = 0.0

    def prime(self, counters: tuple[int, ...]) -> None:
        self._start = self._last = counters
        self._last_t = time.monotonic()

    def update(self, counters: tuple[int, ...]) -> dict[str, float]:
        now = time.monotonic()
        if self._start is None or self._last is None:
            self.prime(counters)
            return {}
        out: dict[str, float] = {}
        dt = now - self._last_t
        for name, start, last, value in zip(
            self.names, self._start, self._last, counters, strict=True
        ):
            # A counter that went backwards (wrap, device removed) restarts the baseline.
            if dt > 0.0 and value >= last:
                out[f"{name}_mb_s"] = (value - last) / BYTES_PER_MB / dt
            if value >= start:
                out[f"{name}_total_mb"] = (value - start) / BYTES_PER_MB
        self._last, self._last_t = counters, now
        if any(v < s for v, s in zip(counters, self._start, strict=True)):
            self._start = counters
        return out


class DiskMonitor(Monitor):
    """Disk reads/writes of the whole machine and free space where the run writes.

    Metrics: ``disk_read_mb_s``, ``disk_write_mb_s``, ``disk_read_total_mb``,
    ``disk_write_total_mb``, ``disk_usage_percent`` and ``disk_free_gb`` of the file
    system holding ``path`` (the working directory by default: checkpoints land there).
    """

    needs_warmup = True

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._psutil: Any | None = None
        self._io = CounterRates(("disk_read", "disk_write"))
        self._probes: list[Probe] = []

    def _counters(self) -> tuple[int, int]:
        assert self._psutil is not None
        io = self._psutil.disk_io_counters()
        if io is None:  # containers without /proc/diskstats
            raise RuntimeError("psutil.disk_io_counters() returned None")
        return int(io.read_bytes), int(io.write_bytes)

    def prime(self) -> None:
        self._psutil = load_psutil()
        if self._psutil is None:
            return
        with contextlib.suppress(Exception):  # the probe reports it on the first sample
            self._io.prime(self._counters())

    def setup(self) -> bool:
        self._psutil = load_psutil()
        if self._psutil is None:
            return False
        if self._path is None:
            self._path = os.getcwd()
        self._probes = [
            Probe("disk_io", lambda: self._io.update(self._counters())),
            Probe("disk_usage", self._usage),
        ]
        return True

    def _usage(self) -> dict[str, float]:
        assert self._psutil is not None and self._path is not None
        usage = self._psutil.disk_usage(self._path)
        return {
            "disk_usage_percent": float(usage.percent),
            "disk_free_gb": usage.free / BYTES_PER_GB,
        }

    def sample(self) -> dict[str, float]:
        return read_probes(self._probes)

    def close(self) -> None:
        self._probes = []
