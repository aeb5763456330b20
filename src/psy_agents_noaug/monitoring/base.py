"""The monitor contract and the per-probe error isolation every monitor shares.

A *monitor* owns one resource (CPU, GPU, disk, network). A *probe* is one hardware
query inside it (e.g. NVML power). Probes fail independently: a driver that refuses
one query loses that one metric, never the monitor's other metrics and never the
training loop.
"""

from __future__ import annotations

import logging
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("psy_agents_noaug.monitoring")

#: Binary units, as nvidia-smi and ``torch.cuda`` report them: "gb" is GiB, "mb" is MiB.
BYTES_PER_GB = float(1 << 30)
BYTES_PER_MB = float(1 << 20)

#: After this many consecutive failures a probe is switched off for the logger's life:
#: a query the driver refuses (e.g. power on some cards) would fail on every sample.
MAX_CONSECUTIVE_FAILURES = 3


class SystemMetricsWarning(UserWarning):
    """A system metric cannot be collected (missing package, no driver, no device)."""


_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def warn_once(key: str, message: str) -> None:
    """Warn once per process for ``key``: HPO runs many trials in one process."""
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message, SystemMetricsWarning, stacklevel=3)


def load_psutil() -> Any | None:
    """Import psutil late (it is optional at run time); None with one warning if absent."""
    try:
        import psutil
    except ImportError:
        warn_once(
            "psutil-missing",
            "psutil is not installed: CPU, memory, disk and network metrics are off "
            "(training goes on). Install it with: pip install psutil",
        )
        return None
    return psutil


ProbeFn = Callable[[], Mapping[str, float]]


class Probe:
    """One hardware query that yields one or a few metrics, isolated from the others.

    Args:
        label: Human-readable name used in the log line when the query fails.
        fn: Returns ``{metric_name: value}``; may raise anything.
    """

    __slots__ = ("_failures", "_logged", "disabled", "fn", "label")

    def __init__(self, label: str, fn: ProbeFn) -> None:
        self.label = label
        self.fn = fn
        self.disabled = False
        self._failures = 0
        self._logged = False

    def read(self, out: dict[str, float]) -> None:
        """Add this probe's metrics to ``out``; on any error add nothing."""
        if self.disabled:
            return
        try:
            values = self.fn()
        except Exception as exc:  # a probe must never raise into training
            self._failures += 1
            if not self._logged:
                self._logged = True
                logger.warning("system metric probe %r failed, skipping it: %r", self.label, exc)
            if self._failures >= MAX_CONSECUTIVE_FAILURES:
                self.disabled = True
                logger.info(
                    "system metric probe %r failed %d times in a row; switched off",
                    self.label,
                    self._failures,
                )
            return
        self._failures = 0
        for name, value in values.items():
            out[name] = float(value)


def read_probes(probes: list[Probe]) -> dict[str, float]:
    """Run every probe, each behind its own error barrier."""
    out: dict[str, float] = {}
    for probe in probes:
        probe.read(out)
    return out


class Monitor(ABC):
    """One resource's sampler.

    Contract:
        * ``prime()`` is cheap (no driver init) and may be called from ``__init__`` of the
          owner; it records baselines so that the first rate/percent is meaningful.
        * ``setup()`` runs once, lazily, on whichever thread samples first; it may be slow
          (NVML init). It returns whether the monitor has anything to report. Missing
          packages or drivers are reported with :func:`warn_once`, never raised.
        * ``sample()`` never raises and returns unprefixed names with unit suffixes.
        * ``close()`` releases driver handles; ``setup()`` may be called again after it.
        * Calls are serialised by the owner: a monitor need not be thread-safe.
    """

    #: True when the first sample needs some time after ``prime()`` to mean anything
    #: (percentages and rates are deltas); the owner then waits on the sampling thread.
    needs_warmup: bool = False

    def prime(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Record baselines for rates; cheap and optional."""

    @abstractmethod
    def setup(self) -> bool:
        """Initialise handles once; return False when nothing can be measured."""

    @abstractmethod
    def sample(self) -> dict[str, float]:
        """Read every probe now; never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release handles (NVML shutdown); safe to call twice."""
