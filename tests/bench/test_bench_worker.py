"""The worker's memory row: every reading in GB (the NVML arithmetic is tested in tests/test_memory.py)."""

from __future__ import annotations

from jsontune.bench import worker


def test_peak_rss_is_in_gigabytes():
    memory = worker.memory_now(gpu_used_at_start=None)
    assert 0.05 < memory["peak_rss_gb"] < 1000  # this process holds torch: tens of MB at the very least
    if memory["gpu"] is None:
        assert memory["gpu_nvml_gb"] is None and memory["torch_peak_gb"] is None
