"""A CPU's rates as `measure_cpu` would leave them, fixed, so that the ceiling arithmetic can be checked by hand."""

from __future__ import annotations

import pytest

from jsontune.bench.roofline import CpuSpec


@pytest.fixture
def cpu_spec() -> CpuSpec:
    """100 GFLOP/s and 10 GB/s in bfloat16 on 2 threads, 16 GiB free."""
    return CpuSpec(
        name="CPU test (2 CPUs)",
        features=("AVX2", "AVX-512"),
        kernels="AVX512",
        dtype="bfloat16",
        threads=2,
        gflops=100.0,
        gflops_by_kernel={
            "torch": {"2048x1024x4096": 80.0, "2048x3072x1024": 70.0},
            "oneDNN": {"2048x1024x4096": 100.0, "2048x3072x1024": 90.0},
        },
        bandwidth_gb_s=10.0,
        copy_gib=1.0,
        memory_gib=16.0,
        load_avg=0.5,
        seconds=2.0,
    )
