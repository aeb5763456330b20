"""Network traffic of the machine: MB/s since the last sample and MB since monitoring began."""

from __future__ import annotations

import contextlib
from typing import Any

from psy_agents_noaug.monitoring.base import Monitor, Probe, load_psutil, read_probes
from psy_agents_noaug.monitoring.disk import CounterRates


class NetworkMonitor(Monitor):
    """All interfaces summed (psutil's ``net_io_counters()``), loopback included.

    Metrics: ``network_sent_mb_s``, ``network_received_mb_s``,
    ``network_sent_total_mb``, ``network_received_total_mb``.
    """

    needs_warmup = True

    def __init__(self) -> None:
        self._psutil: Any | None = None
        self._io = CounterRates(("network_sent", "network_received"))
        self._probes: list[Probe] = []

    def _counters(self) -> tuple[int, int]:
        assert self._psutil is not None
        io = self._psutil.net_io_counters()
        if io is None:
            raise RuntimeError("psutil.net_io_counters() returned None")
        return int(io.bytes_sent), int(io.bytes_recv)

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
        self._probes = [Probe("network_io", lambda: self._io.update(self._counters()))]
        return True

    def sample(self) -> dict[str, float]:
        return read_probes(self._probes)

    def close(self) -> None:
        self._probes = []
