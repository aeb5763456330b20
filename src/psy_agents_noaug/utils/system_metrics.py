"""The spec's public path for system metrics; the code lives in :mod:`psy_agents_noaug.monitoring`.

Example (the spec's usage example 4):
    >>> from psy_agents_noaug.utils.system_metrics import SystemMetricsLogger
    >>> system_logger = SystemMetricsLogger(log_cpu=True, log_gpu=False)
    >>> system_logger.close()
"""

from psy_agents_noaug.monitoring.base import SystemMetricsWarning
from psy_agents_noaug.monitoring.logger import SystemMetricsLogger

__all__ = ["SystemMetricsLogger", "SystemMetricsWarning"]
