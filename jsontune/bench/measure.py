"""A CPU's rates, measured for the roofline (`roofline.py` holds the arithmetic): the products of the model's
linear layers on the kernels the engines run them with, a large copy, the memory free; and a model's exact
parameter count.

The kernels are the ones the engines' linear layers call on a CPU: torch's `nn.functional.linear` (HF), and
with vLLM's CPU build installed the ones vLLM dispatches to (`dispatch_cpu_unquantized_gemm` in
vllm/model_executor/layers/utils.py): oneDNN's product (`onednn_mm`) and, on a CPU with AMX in 16 bits, the
packed AMX kernel it takes for a weight of at most 1 MiB. The ceiling takes the fastest of them.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsontune.bench.roofline import GIB, CpuSpec

# /proc/cpuinfo flag -> name, for the instructions that decide a CPU's matmul rate in each dtype
CPU_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX512-BF16",
    "avx512_fp16": "AVX512-FP16",
    "amx_bf16": "AMX-BF16",
    "amx_fp16": "AMX-FP16",
}
PACKED_MAX_BYTES = 1 << 20  # vLLM's _CPU_SGL_GEMM_MAX_WEIGHT_BYTES: larger weights go to oneDNN

Product = Callable[[Any, Any], Callable[[], object]]
"""A kernel: given the input x (rows x in) and the weight (out x in), the call that computes x @ weight.T."""


def cpu_features(flags: Iterable[str]) -> tuple[str, ...]:
    """The names of the CPU_FEATURES among a CPU's flags (as /proc/cpuinfo spells them), in the table's order."""
    have = set(flags)
    return tuple(name for flag, name in CPU_FEATURES.items() if flag in have)


def _cpuinfo_flags() -> list[str]:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []  # Linux only; elsewhere none are named
    return next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_s(fn: Callable[[], object], budget_s: float, least: int = 3, most: int = 5) -> float:
    """The median seconds of `fn` over `least` timed calls, or up to `most` within about `budget_s`, after one
    warm-up call (oneDNN builds its kernels on the first). A warm-up over 4 x the budget is the one measurement:
    a bfloat16 product without bf16 instructions takes seconds, and timing it again would take as long."""
    warmup = _seconds(fn)
    if warmup > 4 * budget_s:
        return warmup
    times: list[float] = []
    while len(times) < least or (len(times) < most and sum(times) < budget_s):
        times.append(_seconds(fn))
    return statistics.median(times)


def linear_kernels(dtype: Any) -> dict[str, tuple[Product, Callable[[int, int], bool]]]:
    """The kernels a linear layer runs on in `dtype` on this CPU: name -> (the product, whether an engine uses
    it for a weight of (in, out) features). torch's always; vLLM's where its CPU build imports."""
    import torch

    from jsontune.serving.base import vllm_build

    kernels: dict[str, tuple[Product, Callable[[int, int], bool]]] = {
        "torch": (lambda x, w: lambda: torch.nn.functional.linear(x, w), lambda k, n: True)
    }
    if vllm_build() != "cpu":
        return kernels
    try:
        import vllm._custom_ops as ops
    except (ImportError, OSError, RuntimeError):  # a broken install: torch's rate alone
        return kernels
    if ops._supports_onednn:

        def onednn(x: Any, w: Any) -> Callable[[], object]:
            handler = ops.create_onednn_mm(w.t(), 32)  # as vLLM builds it for a layer
            return lambda: ops.onednn_mm(handler, x, None)

        kernels["oneDNN"] = (onednn, lambda k, n: True)
    half = dtype in (torch.bfloat16, torch.float16)
    if half and torch.cpu._is_amx_tile_supported() and hasattr(torch.ops._C, "convert_weight_packed"):

        def packed(x: Any, w: Any) -> Callable[[], object]:
            weight = torch.ops._C.convert_weight_packed(w)
            return lambda: ops.weight_packed_linear_cpu(x, weight, w.shape[0], None)

        def small(k: int, n: int) -> bool:  # vLLM's check_cpu_sgl_kernel for bfloat16 and float16
            return k * n * dtype.itemsize <= PACKED_MAX_BYTES and (n < 16 or (k % 32 == 0 and n % 16 == 0))

        kernels["AMX packed"] = (packed, small)
    return kernels


def _linear_gflops(
    dtype: Any, shapes: Iterable[tuple[int, int]], rows: int, budget_s: float
) -> dict[str, dict[str, float]]:
    """kernel -> "rows x in x out" -> the median GFLOP/s of that product, for each (in, out) of `shapes` on
    each kernel that runs it (`linear_kernels`), fewest FLOPs first. A product the best rate so far (at first:
    one call on rows / 16 rows) puts over 4 x `budget_s` is left out (bfloat16 without bf16 instructions runs
    under 1 GFLOP/s); when that leaves none, the smallest weight is timed on as many rows as fit."""
    import torch

    kernels = linear_kernels(dtype)
    ordered = sorted(set(shapes), key=lambda s: s[0] * s[1])
    rates: dict[str, dict[str, float]] = {}

    def timed(m: int, k: int, n: int) -> float:
        x, w = torch.randn(m, k).to(dtype), torch.randn(n, k).to(dtype)
        for name, (product, used) in kernels.items():
            if used(k, n):
                rates.setdefault(name, {})[f"{m}x{k}x{n}"] = 2 * m * k * n / _median_s(product(x, w), budget_s) / 1e9
        return max(max(by_shape.values()) for by_shape in rates.values())

    k, n = ordered[0]
    probe_rows = max(1, rows // 16)
    x, w = torch.randn(probe_rows, k).to(dtype), torch.randn(n, k).to(dtype)
    _seconds(lambda: torch.nn.functional.linear(x, w))  # a first call builds the kernel
    best = 2 * probe_rows * k * n / _seconds(lambda: torch.nn.functional.linear(x, w)) / 1e9
    for k, n in ordered:
        if 2 * rows * k * n / (best * 1e9) <= 4 * budget_s:
            best = timed(rows, k, n)
    if not rates:
        k, n = ordered[0]
        timed(max(1, math.floor(4 * budget_s * best * 1e9 / (2 * k * n))), k, n)
    return rates


def _copy_gb_s(nbytes: int, budget_s: float) -> float:
    import torch

    source = torch.ones(nbytes, dtype=torch.uint8)
    target = torch.zeros_like(source)  # written now, so that no copy pays for the first touch of its pages
    return 2 * nbytes / _median_s(lambda: target.copy_(source), budget_s) / 1e9


def measure_cpu(
    dtypes: Iterable[str],
    shapes: Iterable[tuple[int, int]],
    rows: int,
    copy_bytes: int,
    threads: int | None = None,
    budget_s: float = 0.5,
) -> dict[str, CpuSpec]:
    """This CPU's rates now in each of `dtypes`, on `threads` torch threads (default: torch's own count, which
    the engines get): the median GFLOP/s of a product of `rows` rows by each (in, out) weight of `shapes` on
    every kernel an engine runs it with (`linear_kernels`; see `_linear_gflops` for a product too slow to
    time), and the GB/s of copying `copy_bytes`, bytes read plus bytes written (once, for every dtype). Each is
    warmed up once and timed for about `budget_s`.
    """
    import psutil
    import torch

    from jsontune.bench.worker import cpu_name
    from jsontune.device import torch_dtype

    start, before = time.perf_counter(), torch.get_num_threads()
    threads = threads or before
    shapes = list(shapes)
    torch.set_num_threads(threads)
    try:
        by_dtype = {
            dtype: _linear_gflops(torch_dtype(dtype), shapes, rows, budget_s) for dtype in dict.fromkeys(dtypes)
        }
        bandwidth = _copy_gb_s(copy_bytes, budget_s)
    finally:
        torch.set_num_threads(before)
    seconds, load = time.perf_counter() - start, os.getloadavg()[0]
    return {
        dtype: CpuSpec(
            name=cpu_name(),
            features=cpu_features(_cpuinfo_flags()),
            kernels=torch.backends.cpu.get_cpu_capability(),
            dtype=dtype,
            threads=threads,
            gflops=max(rate for by_shape in rates.values() for rate in by_shape.values()),
            gflops_by_kernel=rates,
            bandwidth_gb_s=bandwidth,
            copy_gib=copy_bytes / GIB,
            memory_gib=psutil.virtual_memory().available / GIB,
            load_avg=load,
            seconds=seconds,
        )
        for dtype, rates in by_dtype.items()
    }


def count_params(folder: str | Path) -> int | None:
    """Exact parameter count from the safetensors headers (no weights read), None without them."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(file, framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += math.prod(f.get_slice(key).get_shape())
    return total
