"""One monitor per resource behind a small base class; ``system_metrics`` merges them."""

from __future__ import annotations

from psy_agents_noaug.utils._monitors.base import (
    BYTES_PER_GB,
    BYTES_PER_MB,
    Monitor,
    Probe,
    SystemMetricsWarning,
    warn_once,
)
from psy_agents_noaug.utils._monitors.cpu import CpuMonitor
from psy_agents_noaug.utils._monitors.disk import DiskMonitor
from psy_agents_noaug.utils._monitors.gpu import NvmlMonitor, TorchCudaMonitor, validate_gpu_device
from psy_agents_noaug.utils._monitors.network import NetworkMonitor

__all__ = [
    "BYTES_PER_GB",
    "BYTES_PER_MB",
    "CpuMonitor",
    "DiskMonitor",
    "Monitor",
    "NetworkMonitor",
    "NvmlMonitor",
    "Probe",
    "SystemMetricsWarning",
    "TorchCudaMonitor",
    "validate_gpu_device",
    "warn_once",
]
