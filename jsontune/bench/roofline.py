"""The fastest a GPU could possibly run a bench job: a roofline from the model's shape and the GPU's specs.

The job is N prompts of P tokens (mean) each answered with exactly T new tokens, greedy. Its time is
at least the larger of two bounds:

- memory: every decode step streams all the weights from GPU memory once, however many sequences it
  advances. The fewest steps come from the largest batch B whose KV cache fits beside the weights
  (B = min(N, (GPU memory - weight bytes) / KV bytes of one sequence of P + T tokens)), giving
  ceil(N / B) * T steps. On top of that, each new token reads its sequence's KV cache so far:
  per sequence, sum over t < T of (P + t) tokens' K and V, for every layer and KV head.
- compute: 2 FLOPs per parameter per token through the model, prompt and new tokens alike:
  2 * params * N * (P + T). Attention's own FLOPs are left out (small at these lengths).

time >= max(bytes / bandwidth, FLOPs / peak dense 16-bit tensor FLOP/s); the ceiling is N * T
output tokens over that time, and an engine's share is its measured output tokens/s over the ceiling.
It is a lower bound, not a prediction: activations, kernel launches, sampling and the CPU side all
cost extra, and the max of the two totals is below the sum over steps of each step's max.

The GPU table holds datasheet numbers (dense, no sparsity); only 16-bit weights get a roofline, since
the table's FLOP rates are 16-bit ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from jsontune.shape import ModelShape

GIB = 2**30


@dataclass(frozen=True)
class GpuSpec:
    name: str
    bandwidth_tb_s: float  # HBM / GDDR bandwidth, 1e12 bytes per second
    tflops: float  # dense bf16 tensor-core peak, 1e12 FLOP per second
    memory_gib: float


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


def roofline(shape: ModelShape, gpu: GpuSpec, n: int, prompt_tokens: float, new_tokens: int) -> dict:
    """The lower bound on the time of N prompts x T new tokens on `gpu`, and the ceiling it implies.

    Raises ValueError when not one sequence's KV cache fits beside the weights.
    """
    seq_bytes = shape.kv_bytes_per_token * (prompt_tokens + new_tokens)
    batch = min(n, math.floor((gpu.memory_gib * GIB - shape.weight_bytes) / seq_bytes))
    if batch < 1:
        raise ValueError(f"the weights and one sequence's KV cache do not fit in {gpu.name}'s memory")
    steps = math.ceil(n / batch) * new_tokens
    weight_traffic = steps * shape.weight_bytes
    context_read = new_tokens * prompt_tokens + new_tokens * (new_tokens - 1) / 2  # KV read per sequence
    kv_traffic = n * shape.kv_bytes_per_token * context_read
    flops = 2 * shape.params * n * (prompt_tokens + new_tokens)
    memory_s = (weight_traffic + kv_traffic) / (gpu.bandwidth_tb_s * 1e12)
    compute_s = flops / (gpu.tflops * 1e12)
    seconds = max(memory_s, compute_s)
    return {
        "gpu": asdict(gpu),
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
