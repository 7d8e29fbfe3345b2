"""The fastest a device could possibly run a bench job: a roofline from the model's shape and the device's rates.

The job is N prompts of P tokens (mean) each answered with exactly T new tokens, greedy. Its time is
at least the larger of two bounds:

- memory: every decode step streams all the weights from memory once, however many sequences it
  advances. The fewest steps come from the largest batch B whose KV cache fits beside the weights
  (B = min(N, (memory - weight bytes) / KV bytes of one sequence of P + T tokens)), giving
  ceil(N / B) * T steps. On top of that, each new token reads its sequence's KV cache so far:
  per sequence, sum over t < T of (P + t) tokens' K and V, for every layer and KV head.
- compute: 2 FLOPs per parameter per token through the model, prompt and new tokens alike:
  2 * params * N * (P + T). Attention's own FLOPs are left out (small at these lengths).

time >= max(bytes / bandwidth, FLOPs / peak FLOP/s); the ceiling is N * T output tokens over that
time, and an engine's share is its measured output tokens/s over the ceiling. It is a lower bound, not a
prediction: activations, kernel launches, sampling and the CPU side all cost extra, and the max of the
two totals is below the sum over steps of each step's max.

A GPU's rates come from the table: datasheet numbers (dense 16-bit tensor FLOP/s, no sparsity), so only
16-bit weights get a GPU roofline. A CPU's are measured on it (`measure_cpu`) when the bench starts, on the
threads the engines use, in the dtype they run: the best median FLOP/s of square matmuls, the bandwidth of
a large copy, and the memory free then.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from jsontune.shape import ModelShape

GIB = 2**30


@dataclass(frozen=True)
class GpuSpec:
    kind: ClassVar[str] = "gpu"  # the roofline's key for asdict(spec)
    name: str
    bandwidth_tb_s: float  # HBM / GDDR bandwidth, 1e12 bytes per second
    tflops: float  # dense bf16 tensor-core peak, 1e12 FLOP per second
    memory_gib: float

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_tb_s * 1e12

    @property
    def flop_per_s(self) -> float:
        return self.tflops * 1e12


@dataclass(frozen=True)
class CpuSpec:
    """A CPU's rates as `measure_cpu` measured them, for one dtype on `threads` threads."""

    kind: ClassVar[str] = "cpu"
    name: str  # the model name, as the bench rows' `device` gives it
    features: tuple[str, ...]  # the vector and matrix instructions it has (`cpu_features`)
    kernels: str  # torch's ATen CPU capability (ATEN_CPU_CAPABILITY lowers it; MKL and oneDNN have their own)
    dtype: str
    threads: int
    gflops: float  # the best of gflops_by_size: 1e9 FLOP per second
    gflops_by_size: dict[str, float]  # "n" -> the median GFLOP/s of an n x n by n x n product
    bandwidth_gb_s: float  # a copy's bytes read and written per second, 1e9
    copy_gib: float
    memory_gib: float  # free when measured: the weights and the KV cache must fit in it
    load_avg: float  # the 1-minute load average when measured: other work on these cores lowers the rates
    seconds: float  # what the measurement took

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gb_s * 1e9

    @property
    def flop_per_s(self) -> float:
        return self.gflops * 1e9


# (tokens that must all appear in the NVML name, spec); the first match wins, so variants come first.
GPU_SPECS: list[tuple[tuple[str, ...], GpuSpec]] = [
    (("H100", "PCIE"), GpuSpec("H100 PCIe", 2.0, 756, 80)),
    (("H100", "NVL"), GpuSpec("H100 NVL", 3.9, 835, 94)),
    (("H100",), GpuSpec("H100 SXM", 3.35, 989, 80)),
    (("H200", "NVL"), GpuSpec("H200 NVL", 4.8, 835, 141)),
    (("H200",), GpuSpec("H200 SXM", 4.8, 989, 141)),
    (("A100", "80GB"), GpuSpec("A100 80GB", 2.0, 312, 80)),
    (("L4",), GpuSpec("L4", 0.3, 121, 24)),
    (("A10G",), GpuSpec("A10G", 0.6, 70, 24)),
]


def gpu_spec(name: str) -> GpuSpec | None:
    """The table's spec for an NVML device name ("NVIDIA H100 80GB HBM3" -> H100 SXM), else None."""
    tokens = set(re.split(r"[\s_-]+", name.upper()))
    return next((spec for needed, spec in GPU_SPECS if set(needed) <= tokens), None)


def roofline(shape: ModelShape, spec: GpuSpec | CpuSpec, n: int, prompt_tokens: float, new_tokens: int) -> dict:
    """The lower bound on the time of N prompts x T new tokens on the device `spec` gives the rates of, and
    the ceiling it implies; the spec itself under its kind ("gpu" or "cpu").

    Raises ValueError when not one sequence's KV cache fits beside the weights.
    """
    seq_bytes = shape.kv_bytes_per_token * (prompt_tokens + new_tokens)
    batch = min(n, math.floor((spec.memory_gib * GIB - shape.weight_bytes) / seq_bytes))
    if batch < 1:
        raise ValueError(f"the weights and one sequence's KV cache do not fit in {spec.name}'s memory")
    steps = math.ceil(n / batch) * new_tokens
    weight_traffic = steps * shape.weight_bytes
    context_read = new_tokens * prompt_tokens + new_tokens * (new_tokens - 1) / 2  # KV read per sequence
    kv_traffic = n * shape.kv_bytes_per_token * context_read
    flops = 2 * shape.params * n * (prompt_tokens + new_tokens)
    memory_s = (weight_traffic + kv_traffic) / spec.bytes_per_s
    compute_s = flops / spec.flop_per_s
    seconds = max(memory_s, compute_s)
    return {
        spec.kind: asdict(spec),
        "model": asdict(shape),
        "batch": batch,
        "decode_steps": steps,
        "weight_bytes_moved": weight_traffic,
        "kv_bytes_moved": kv_traffic,
        "flops": flops,
        "memory_bound_s": memory_s,
        "compute_bound_s": compute_s,
        "bound": "memory" if memory_s >= compute_s else "compute",
        "lower_bound_s": seconds,
        "ceiling_tokens_per_s": n * new_tokens / seconds,
        "ceiling_examples_per_s": n / seconds,
    }


# /proc/cpuinfo flag -> name, for the instructions that decide a CPU's matmul rate in each dtype
CPU_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX512-BF16",
    "avx512_fp16": "AVX512-FP16",
    "amx_bf16": "AMX-BF16",
    "amx_fp16": "AMX-FP16",
}


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


def _matmul_gflops(n: int, dtype: object, budget_s: float) -> float:
    import torch

    a, b = (torch.randn(n, n).to(dtype) for _ in range(2))
    return 2 * n**3 / _median_s(lambda: torch.mm(a, b), budget_s) / 1e9


def _copy_gb_s(nbytes: int, budget_s: float) -> float:
    import torch

    source = torch.ones(nbytes, dtype=torch.uint8)
    target = torch.zeros_like(source)  # written now, so that no copy pays for the first touch of its pages
    return 2 * nbytes / _median_s(lambda: target.copy_(source), budget_s) / 1e9


def measure_cpu(
    dtype: str, sizes: Iterable[int], copy_bytes: int, threads: int | None = None, budget_s: float = 0.5
) -> CpuSpec:
    """This CPU's rates now, on `threads` torch threads (default: torch's own count, which the engines get):
    the median GFLOP/s of an n x n by n x n product in `dtype` for each n of `sizes`, smallest first (a size
    whose single product the best rate so far puts over 4 x `budget_s` is left out: bfloat16 without bf16
    instructions runs under 1 GFLOP/s), and the GB/s of copying `copy_bytes`, bytes read plus bytes written.
    Each is warmed up once and timed for about `budget_s`.
    """
    import psutil
    import torch

    from jsontune.bench.worker import cpu_name
    from jsontune.device import torch_dtype

    start, before = time.perf_counter(), torch.get_num_threads()
    threads = threads or before
    torch.set_num_threads(threads)
    try:
        by_size: dict[str, float] = {}
        for n in sorted(set(sizes)):
            if not by_size or 2 * n**3 / (max(by_size.values()) * 1e9) <= 4 * budget_s:
                by_size[str(n)] = _matmul_gflops(n, torch_dtype(dtype), budget_s)
        bandwidth = _copy_gb_s(copy_bytes, budget_s)
    finally:
        torch.set_num_threads(before)
    return CpuSpec(
        name=cpu_name(),
        features=cpu_features(_cpuinfo_flags()),
        kernels=torch.backends.cpu.get_cpu_capability(),
        dtype=dtype,
        threads=threads,
        gflops=max(by_size.values()),
        gflops_by_size=by_size,
        bandwidth_gb_s=bandwidth,
        copy_gib=copy_bytes / GIB,
        memory_gib=psutil.virtual_memory().available / GIB,
        load_avg=os.getloadavg()[0],
        seconds=time.perf_counter() - start,
    )


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
