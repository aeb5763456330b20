"""GPU metrics from two sources that see different things.

* ``torch.cuda``: what *this process's* caching allocator holds (allocated, reserved,
  peak). Read from allocator counters: no device sync, and no CUDA context is created
  when the process has not used the GPU yet.
* NVML (``nvidia-ml-py``, imported as ``pynvml``): what the *device* does, whoever uses
  it (utilization, memory used, temperature, power, clocks).

Device numbers are CUDA indices, as in ``cuda:0``. NVML numbers devices differently when
``CUDA_VISIBLE_DEVICES`` is set, so CUDA indices are translated through it.

Every NVML query is its own probe: a driver that refuses one (power on some boards,
clocks under MIG) loses that metric only. MLflow's monitor drops all GPU metrics then.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

from psy_agents_noaug.monitoring.base import (
    BYTES_PER_GB,
    Monitor,
    Probe,
    read_probes,
    warn_once,
)

DeviceSelection = int | Sequence[int] | Literal["all"]
#: ``gpu_device`` once validated: one index, a tuple of indices, or "all".
Selection = int | tuple[int, ...] | str


def validate_gpu_device(gpu_device: object) -> Selection:
    """Normalise ``gpu_device``; ``ValueError`` names the bad value and the allowed ones."""
    allowed = "a CUDA index >= 0, a non-empty list of distinct indices, or 'all'"
    if gpu_device == "all":
        return "all"
    if isinstance(gpu_device, int) and not isinstance(gpu_device, bool):
        if gpu_device < 0:
            raise ValueError(f"gpu_device={gpu_device!r} is invalid: expected {allowed}")
        return gpu_device
    if isinstance(gpu_device, list | tuple):
        ok = all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpu_device)
        if gpu_device and ok and len(set(gpu_device)) == len(gpu_device):
            return tuple(gpu_device)
    raise ValueError(f"gpu_device={gpu_device!r} is invalid: expected {allowed}")


def metric_prefix(index: int, per_gpu: bool) -> str:
    """``gpu_`` for the spec's single device, ``gpu{index}_`` when several are selected."""
    return f"gpu{index}_" if per_gpu else "gpu_"


def _wanted(selection: Selection, count: int) -> list[int]:
    if selection == "all":
        return list(range(count))
    if isinstance(selection, int):
        return [selection]
    return list(selection)  # type: ignore[arg-type]


class TorchCudaMonitor(Monitor):
    """This process's CUDA allocator: ``gpu_memory_allocated_gb``,
    ``gpu_memory_reserved_gb``, ``gpu_memory_peak_allocated_gb``.

    Silent when CUDA is unavailable (CPU training is normal, not a fault) and when the
    process has not imported torch by the first sample.
    """

    def __init__(self, selection: Selection) -> None:
        self._selection = selection
        self._per_gpu = not isinstance(selection, int)
        self._probes: list[Probe] = []

    def setup(self) -> bool:
        # A process that has not imported torch has no CUDA allocator to report, and
        # importing it here would cost seconds on the first sample.
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        try:
            if not torch.cuda.is_available():
                return False
            count = torch.cuda.device_count()
        except Exception:  # a broken driver must not stop training
            return False
        self._probes = []
        for index in _wanted(self._selection, count):
            if index >= count:
                warn_once(
                    f"torch-cuda-missing-{index}",
                    f"gpu_device {index} is not visible to torch ({count} CUDA device(s)): "
                    "its torch.cuda memory metrics are not logged",
                )
                continue
            pre = metric_prefix(index, self._per_gpu)
            cuda = torch.cuda
            for suffix, query in (
                ("memory_allocated_gb", "memory_allocated"),
                ("memory_reserved_gb", "memory_reserved"),
                ("memory_peak_allocated_gb", "max_memory_allocated"),
            ):
                self._probes.append(
                    Probe(
                        f"torch.cuda.{query}({index})",
                        _torch_reader(cuda, query, index, pre + suffix),
                    )
                )
        return bool(self._probes)

    def sample(self) -> dict[str, float]:
        return read_probes(self._probes)

    def close(self) -> None:
        self._probes = []


def _torch_reader(cuda: Any, query: str, index: int, name: str) -> Callable[[], dict[str, float]]:
    """One allocator counter as its own probe, so one failing counter loses only itself."""

    def read() -> dict[str, float]:
        return {name: getattr(cuda, query)(index) / BYTES_PER_GB}

    return read


def cuda_visible_devices() -> list[str] | None:
    """Entries of ``CUDA_VISIBLE_DEVICES`` as CUDA reads them; None when unset.

    CUDA stops at the first invalid entry (e.g. ``-1``), so the list does too.
    """
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    entries: list[str] = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry or (entry.lstrip("-").isdigit() and int(entry) < 0):
            break
        entries.append(entry)
    return entries


class NvmlMonitor(Monitor):
    """Device-level metrics through NVML.

    Metrics per device: ``gpu_utilization_percent``, ``gpu_memory_bandwidth_percent``
    (share of time device memory was read or written), ``gpu_memory_used_gb``,
    ``gpu_memory_used_percent``, ``gpu_temperature_c``, ``gpu_power_watts``,
    ``gpu_sm_clock_mhz``, ``gpu_memory_clock_mhz``.
    """

    def __init__(self, selection: Selection) -> None:
        self._selection = selection
        self._per_gpu = not isinstance(selection, int)
        self._nvml: Any | None = None
        self._initialised = False
        self._probes: list[Probe] = []
        #: CUDA index -> device name, for reports (``scripts/gpu_check.py``).
        self.device_names: dict[int, str] = {}
        #: CUDA index -> NVML handle, for reports.
        self.handles: dict[int, Any] = {}

    def setup(self) -> bool:
        try:
            import pynvml
        except ImportError:
            warn_once(
                "pynvml-missing",
                "nvidia-ml-py (pynvml) is not installed: GPU utilization, temperature and "
                "power are not tracked. Install it with: pip install nvidia-ml-py",
            )
            return False
        try:
            pynvml.nvmlInit()
        except Exception as exc:
            warn_once(
                "nvml-init-failed",
                f"NVML could not start ({exc}): GPU utilization, temperature and power are "
                "not tracked; other system metrics still are",
            )
            return False
        self._nvml, self._initialised = pynvml, True
        self.handles = self._resolve_handles(pynvml)
        self._probes = []
        for index, handle in self.handles.items():
            self._probes.extend(self._device_probes(pynvml, index, handle))
            name_fn = getattr(pynvml, "nvmlDeviceGetName", None)
            if name_fn is not None:
                try:
                    name = name_fn(handle)
                    self.device_names[index] = name.decode() if isinstance(name, bytes) else name
                except Exception:
                    pass
        if not self._probes:
            self.close()
            return False
        return True

    def _resolve_handles(self, nvml: Any) -> dict[int, Any]:
        visible = cuda_visible_devices()
        if visible is None:
            try:
                count = int(nvml.nvmlDeviceGetCount())
            except Exception as exc:
                warn_once("nvml-count-failed", f"NVML could not count GPUs ({exc})")
                return {}
        else:
            count = len(visible)
        handles: dict[int, Any] = {}
        for index in _wanted(self._selection, count):
            try:
                if index >= count:
                    raise LookupError(f"only {count} GPU(s) visible")
                if visible is None:
                    handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
                elif visible[index].isdigit():
                    handles[index] = nvml.nvmlDeviceGetHandleByIndex(int(visible[index]))
                else:  # GPU-<uuid> or MIG-<uuid> entries
                    handles[index] = nvml.nvmlDeviceGetHandleByUUID(visible[index])
            except Exception as exc:
                warn_once(
                    f"nvml-device-{index}",
                    f"NVML has no handle for gpu_device {index} ({exc}): its NVML metrics "
                    "are not logged",
                )
        return handles

    def _device_probes(self, nvml: Any, index: int, handle: Any) -> list[Probe]:
        pre = metric_prefix(index, self._per_gpu)

        def utilization() -> dict[str, float]:
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            return {
                f"{pre}utilization_percent": rates.gpu,
                f"{pre}memory_bandwidth_percent": rates.memory,
            }

        def memory() -> dict[str, float]:
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            out = {f"{pre}memory_used_gb": info.used / BYTES_PER_GB}
            if info.total:
                out[f"{pre}memory_used_percent"] = 100.0 * info.used / info.total
            return out

        def temperature() -> dict[str, float]:
            value = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            return {f"{pre}temperature_c": value}

        def power() -> dict[str, float]:  # NVML reports milliwatts
            return {f"{pre}power_watts": nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0}

        def sm_clock() -> dict[str, float]:
            return {f"{pre}sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)}

        def mem_clock() -> dict[str, float]:
            value = nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)
            return {f"{pre}memory_clock_mhz": value}

        where = f"nvml:{index}"
        return [
            Probe(f"{where} utilization", utilization),
            Probe(f"{where} memory", memory),
            Probe(f"{where} temperature", temperature),
            Probe(f"{where} power", power),
            Probe(f"{where} sm clock", sm_clock),
            Probe(f"{where} memory clock", mem_clock),
        ]

    def sample(self) -> dict[str, float]:
        return read_probes(self._probes)

    def close(self) -> None:
        """Shut NVML down once per successful init (NVML counts inits and shutdowns)."""
        self._probes = []
        self.handles = {}
        if self._initialised and self._nvml is not None:
            self._initialised = False
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
