import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from jsontune import memory
from jsontune.io import share_like_umask
from jsontune.memory import peak_rss_bytes

MB = 1024 * 1024


def _in_a_fresh_interpreter(code: str) -> list[int]:
    """Run `code` in a new Python (whose peak no earlier test has raised); the ints it prints."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [int(x) for x in run.stdout.split()]


def test_peak_rss_grows_with_what_the_process_touches():
    before, after = _in_a_fresh_interpreter(
        "from jsontune.memory import peak_rss_bytes as p; b = p(); x = bytearray(200 << 20); "
        "x[::4096] = b'\\1' * len(x[::4096]); print(b, p())"
    )
    assert after >= before + 150 * MB


def test_a_child_reports_its_own_peak_not_its_parents():
    # The bench's workers are started by this kind of Popen from a process that may have just
    # trained a model; ru_maxrss survives exec and would report the parent's peak for each one.
    block = bytearray(1024 * MB)
    block[::4096] = b"\1" * len(block[::4096])
    parent = peak_rss_bytes()
    (child,) = _in_a_fresh_interpreter("from jsontune.memory import peak_rss_bytes; print(peak_rss_bytes())")
    del block
    assert parent >= 1024 * MB
    assert 0 < child < 200 * MB  # a bare interpreter: tens of MB


def test_share_like_umask_gives_plain_modes(tmp_path):
    import os
    import stat
    import tempfile

    old = os.umask(0o022)
    try:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700
        (folder / "sub").mkdir(mode=0o700)
        fd, name = tempfile.mkstemp(dir=folder / "sub")  # 0600
        os.close(fd)
        share_like_umask(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE(Path(name).stat().st_mode) == 0o644


# A stand-in NVML: no GPU is needed to check the arithmetic.
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
    assert memory.gpu_memory({42, 43}, used_at_start=0) == {
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_nvml_gb": pytest.approx(4.0),
        "gpu_memory_method": "nvml per process",
    }


@pytest.mark.parametrize("fail_processes", [False, True])
def test_device_growth_where_nvml_cannot_see_our_processes(monkeypatch, fail_processes):
    fake = _fake_nvml([SimpleNamespace(pid=7, usedGpuMemory=5e9)], used=10e9, fail_processes=fail_processes)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    result = memory.gpu_memory({42}, used_at_start=4e9)
    assert result["gpu_nvml_gb"] == pytest.approx(6.0)
    assert result["gpu_memory_method"] == "nvml device growth"


def test_no_driver_no_gpu_numbers(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(fail_init=True))
    assert memory.gpu_used_bytes() is None
    assert memory.gpu_memory({42}, used_at_start=None)["gpu"] is None
