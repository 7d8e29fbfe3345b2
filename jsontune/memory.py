"""How much memory a process holds: its peak resident set, torch's CUDA peak, and what NVML sees on GPUs.

One module for every measurement, so the trainer's summary and the bench rows count memory alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jsontune.io import proc_status

GB = 1e9


def peak_rss_bytes() -> int:
    """Peak resident set of this process in bytes.

    On Linux this is `VmHWM` from /proc/self/status: the high-water mark of this address space,
    which starts afresh at exec. `getrusage`'s `ru_maxrss` does not: it survives execve, so a
    worker that Python starts with vfork + exec reports its parent's peak when that is larger
    (a bench run from a process that has just trained would show the trainer's memory for every
    engine). Elsewhere `ru_maxrss` is the best there is (bytes on macOS, KiB on other systems).
    """
    peak = proc_status("VmHWM")  # "123456 kB"
    if peak is not None:
        return int(peak.split()[0]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def torch_peak_gb() -> float | None:
    """The most CUDA memory torch has allocated in this process (GB); None where it allocated none here."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    peak = torch.cuda.max_memory_allocated()
    return peak / GB if peak > 0 else None


def peak_memory() -> tuple[float, str]:
    """This process's peak memory in GB and what was measured: torch's CUDA peak on a GPU, else peak RSS."""
    gpu = torch_peak_gb()
    if gpu is not None:
        return gpu, "gpu_max_allocated"
    return peak_rss_bytes() / GB, "cpu_peak_rss"


@contextmanager
def _nvml() -> Iterator[Any]:
    """pynvml, initialised, or None where it is not installed or there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError for a missing driver / library
        pynvml = None
    try:
        yield pynvml
    finally:
        if pynvml is not None:
            pynvml.nvmlShutdown()


def _handles(nvml: Any) -> list[Any]:
    return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())] if nvml else []


def gpu_used_bytes() -> int | None:
    """Memory in use on all visible GPUs together (NVML), None without NVML."""
    with _nvml() as nvml:
        handles = _handles(nvml)
        return sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) if handles else None


def _process_memory(nvml: Any, handles: list[Any], pids: set[int]) -> list[tuple[Any, int]]:
    """(device, bytes) for each of `pids` NVML sees on a GPU; none where NVML cannot list processes."""
    try:
        return [
            (h, p.usedGpuMemory or 0)
            for h in handles
            for p in nvml.nvmlDeviceGetComputeRunningProcesses(h)
            if p.pid in pids
        ]
    except nvml.NVMLError:  # not supported on some vGPU / MIG setups
        return []


def gpu_memory(pids: set[int], used_at_start: int | None) -> dict[str, Any]:
    """GPU name and the memory held by `pids`: per process via NVML, else the device's growth.

    In a container with its own PID namespace NVML reports host PIDs, which match none of ours.
    """
    with _nvml() as nvml:
        handles = _handles(nvml)
        if not handles:
            return {"gpu": None, "gpu_nvml_gb": None, "gpu_memory_method": None}
        ours = _process_memory(nvml, handles, pids)
        name = nvml.nvmlDeviceGetName(ours[0][0] if ours else handles[0])
        name = name.decode() if isinstance(name, bytes) else name
        if ours:
            return {
                "gpu": name,
                "gpu_nvml_gb": sum(b for _, b in ours) / GB,
                "gpu_memory_method": "nvml per process",
            }
        used = sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in handles)
        growth = (used - used_at_start) / GB if used_at_start is not None else None
        return {"gpu": name, "gpu_nvml_gb": growth, "gpu_memory_method": "nvml device growth"}
