"""System monitoring: one monitor per resource, merged by :class:`SystemMetricsLogger`.

``psy_agents_noaug.utils.system_metrics`` (the spec's path) re-exports the logger.
"""

from __future__ import annotations

from psy_agents_noaug.monitoring.base import (
    BYTES_PER_GB,
    BYTES_PER_MB,
    Monitor,
    Probe,
    SystemMetricsWarning,
    warn_once,
)
from psy_agents_noaug.monitoring.cpu import CpuMonitor
from psy_agents_noaug.monitoring.disk import DiskMonitor
from psy_agents_noaug.monitoring.gpu import NvmlMonitor, TorchCudaMonitor, validate_gpu_device
from psy_agents_noaug.monitoring.logger import SystemMetricsLogger
from psy_agents_noaug.monitoring.network import NetworkMonitor

__all__ = [
    "BYTES_PER_GB",
    "BYTES_PER_MB",
    "CpuMonitor",
    "DiskMonitor",
    "Monitor",
    "NetworkMonitor",
    "NvmlMonitor",
    "Probe",
    "SystemMetricsLogger",
    "SystemMetricsWarning",
    "TorchCudaMonitor",
    "validate_gpu_device",
    "warn_once",
]
