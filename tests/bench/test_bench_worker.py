"""The worker's memory readings against a stand-in NVML (no GPU is needed to check the arithmetic)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from jsontune.bench import worker


class NVMLError(Exception):
    pass


def _fake_nvml(processes=None, used=10e9, fail_processes=False, fail_init=False):
    def processes_of(handle):
        if fail_processes:
            raise NVMLError("not supported")
        return processes or []

    def init():
        if fail_init:
            raise NVMLError("driver not loaded")

    return SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetName=lambda handle: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetComputeRunningProcesses=processes_of,
        nvmlDeviceGetMemoryInfo=lambda handle: SimpleNamespace(used=used),
    )


def test_memory_of_our_processes_only(monkeypatch):
    procs = [
        SimpleNamespace(pid=42, usedGpuMemory=3e9),
        SimpleNamespace(pid=43, usedGpuMemory=1e9),
        SimpleNamespace(pid=7, usedGpuMemory=5e9),
    ]
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(procs))
    assert worker.gpu_memory({42, 43}, used_at_start=0) == {
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_nvml_gb": pytest.approx(4.0),
        "gpu_memory_method": "nvml per process",
    }


@pytest.mark.parametrize("fail_processes", [False, True])
def test_device_growth_where_nvml_cannot_see_our_processes(monkeypatch, fail_processes):
    fake = _fake_nvml([SimpleNamespace(pid=7, usedGpuMemory=5e9)], used=10e9, fail_processes=fail_processes)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    result = worker.gpu_memory({42}, used_at_start=4e9)
    assert result["gpu_nvml_gb"] == pytest.approx(6.0)
    assert result["gpu_memory_method"] == "nvml device growth"


def test_no_driver_no_gpu_numbers(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(fail_init=True))
    assert worker.gpu_used_bytes() is None
    assert worker.gpu_memory({42}, used_at_start=None)["gpu"] is None


def test_peak_rss_is_in_gigabytes():
    memory = worker.memory_now(gpu_used_at_start=None)
    assert 0.05 < memory["peak_rss_gb"] < 1000  # this process holds torch: tens of MB at the very least
    if memory["gpu"] is None:
        assert memory["gpu_nvml_gb"] is None and memory["torch_peak_gb"] is None
