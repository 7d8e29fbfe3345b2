"""The fastest a device could possibly run a bench job: a roofline from the model's shape and the device's rates,
and the fewest FLOPs the job needs. Pure arithmetic; `measure.py` measures a CPU's rates.

The job is N prompts of P tokens (mean) each answered with exactly T new tokens, greedy. Its time is
at least the larger of two bounds:

- memory: every decode step streams all the weights from memory once, however many sequences it
  advances. The fewest steps come from the largest batch B whose KV cache fits beside the weights
  (B = min(N, (memory - weight bytes) / KV bytes of one sequence of P + T tokens)), giving
  ceil(N / B) * T steps. On top of that, each new token reads its sequence's KV cache so far:
  per sequence, sum over t < T of (P + t) tokens' K and V, for every layer and KV head.
- compute: the FLOPs the forward passes do (`sequence_flops`), at the device's peak FLOP/s.

The FLOPs of a forward pass, counted as the engines do the work (`FlopShape`; a multiply-add is 2 FLOPs):

- a sequence of P prompt tokens that generates T tokens runs P + T - 1 positions through the layers (the
  last new token is sampled, never fed back);
- each position costs 2 x the weights of the layers' products: q, k, v and o, gate, up and down
  (`FlopShape.token_flops`); the embedding is a lookup and costs nothing;
- attention: a position p attends to itself and the p positions before it: 2 x heads x head_dim FLOPs
  for the scores and as many for the weighted values, per layer and key: 4 x layers x heads x head_dim x
  (p + 1) (`FlopShape.attention_flops`; the causal half only, as an exact kernel needs);
- the output head (2 x hidden x vocab, `FlopShape.head_flops`) runs only where a token is sampled: once per
  new token, not per prompt token (vLLM and HF's generate both compute logits only there). Tied embeddings
  change the parameter count, not this: the head's product is counted once per sampled token either way.

The fewest FLOPs a job needs (`floor_flops`) computes the prompt head all rows share (`shared_prefix`) once,
then each row's own prompt tokens and its answer tokens. `job_against_floor` holds an engine's whole job
(its start included) against the time those FLOPs take at the device's peak.

time >= max(bytes / bandwidth, FLOPs / peak FLOP/s); the ceiling is N * T output tokens over that
time, and an engine's share is its measured output tokens/s over the ceiling. It is a lower bound, not a
prediction: activations, kernel launches, sampling and the CPU side all cost extra, and the max of the
two totals is below the sum over steps of each step's max. A share over 100 % means the bound did not hold
for that run, and the bench says why it may not have (`share_note`).

A GPU's rates come from the table: datasheet numbers (dense 16-bit tensor FLOP/s, no sparsity), so only
16-bit weights get a GPU roofline. A CPU's are measured on it (`measure.measure_cpu`) when the bench starts, on
the threads the engines use, in each dtype they run in: the best median FLOP/s of the products the engines'
kernels do at the model's linear shapes, the bandwidth of a large copy, and the memory free then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

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
    """A CPU's rates as `measure.measure_cpu` measured them, for one dtype on `threads` threads."""

    kind: ClassVar[str] = "cpu"
    name: str  # the model name, as the bench rows' `device` gives it
    features: tuple[str, ...]  # the vector and matrix instructions it has (`measure.cpu_features`)
    kernels: str  # torch's ATen CPU capability (ATEN_CPU_CAPABILITY lowers it; MKL and oneDNN have their own)
    dtype: str
    threads: int
    gflops: float  # the best of gflops_by_kernel: 1e9 FLOP per second
    # kernel ("torch", "oneDNN", "AMX packed") -> "rows x in x out" -> the median GFLOP/s of that product: the
    # model's linear layers' weights, on as many rows as a prefill's
    gflops_by_kernel: dict[str, dict[str, float]]
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


@dataclass(frozen=True)
class FlopShape:
    """The sizes a decoder's forward FLOPs follow from: a Llama / Qwen3 block (attention with q, k, v and o
    products, a gated MLP with gate, up and down), and the output head."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FlopShape:
        """From a Hugging Face text config (as a dict)."""
        heads = config["num_attention_heads"]
        return cls(
            hidden=config["hidden_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            intermediate=config["intermediate_size"],
            vocab=config["vocab_size"],
        )

    def linear_shapes(self) -> tuple[tuple[int, int], ...]:
        """(in, out) features of each product in a layer, as vLLM fuses them: qkv, o, gate_up, down."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return (
            (self.hidden, q + 2 * kv),
            (q, self.hidden),
            (self.hidden, 2 * self.intermediate),
            (self.intermediate, self.hidden),
        )

    @property
    def token_flops(self) -> int:
        """One position through every layer's products."""
        return 2 * self.layers * sum(k * n for k, n in self.linear_shapes())

    @property
    def head_flops(self) -> int:
        """The logits of one position."""
        return 2 * self.hidden * self.vocab

    def attention_flops(self, start: float, end: float) -> float:
        """Scores and weighted values of positions start .. end - 1 (each attends to itself and all before it):
        4 x layers x heads x head_dim x the sum of (p + 1) over those positions."""
        return 4 * self.layers * self.heads * self.head_dim * (end * (end + 1) - start * (start + 1)) / 2


def sequence_flops(shape: FlopShape, prompt: float, new: float, computed: float = 0) -> float:
    """The FLOPs of one sequence: `prompt` tokens answered with `new` (at least 1) sampled tokens, its first
    `computed` positions already computed (a shared prompt head). `prompt` and `new` may be means."""
    positions = prompt + new - 1
    layers = shape.token_flops * (positions - computed) + shape.attention_flops(computed, positions)
    return layers + shape.head_flops * new


def job_flops(shape: FlopShape, prompt_lengths: Sequence[float], new_tokens: float, cached: float = 0) -> float:
    """What an engine does: `sequence_flops` of each prompt with `new_tokens`, the first `cached` positions of each
    (a mean: vLLM's prefix cache serves whole blocks of the prompts' head) taken from a cache, not computed."""
    return sum(sequence_flops(shape, prompt, new_tokens, computed=cached) for prompt in prompt_lengths)


def shared_prefix(token_ids: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt has in common (0 for no prompts)."""
    if not token_ids:
        return 0
    first = token_ids[0]
    length = min(len(ids) for ids in token_ids)
    return next((i for i in range(length) if any(ids[i] != first[i] for ids in token_ids)), length)


def head_flops(shape: FlopShape, shared: int) -> float:
    """The shared prompt head's positions through the layers, computed once."""
    return shape.token_flops * shared + shape.attention_flops(0, shared)


def floor_flops(shape: FlopShape, prompt_lengths: Sequence[float], new_tokens: float, shared: int) -> float:
    """The fewest FLOPs the job needs: the `shared` head every prompt starts with once (`head_flops`), then each
    row's own prompt tokens (attending to the head) and its answer tokens. Longer heads that only some prompts
    share are counted in each of them."""
    rows = sum(sequence_flops(shape, prompt, new_tokens, computed=shared) for prompt in prompt_lengths)
    return head_flops(shape, shared) + rows


def job_against_floor(
    shape: FlopShape,
    prompt_lengths: Sequence[float],
    new_tokens: float,
    shared: int,
    flop_per_s: float,
    load_s: float,
    gen_s: float,
    cached: float = 0,
    rows: int = 1000,
) -> dict[str, Any]:
    """An engine's whole job against its floor: the FLOPs it did (`job_flops`, `cached` positions a prompt from its
    prefix cache) and the fewest the job needs (`floor_flops`), its time with its start (`load_s` + `gen_s`, the
    generation of every prompt) and the time the fewest FLOPs take at `flop_per_s`; and the same for a job of
    `rows` rows like these: the head once, each row's own FLOPs and generation seconds as the mean row's, the
    start as measured."""
    n = len(prompt_lengths)
    fewest = floor_flops(shape, prompt_lengths, new_tokens, shared)
    head = head_flops(shape, shared)
    fewest_at = head + (fewest - head) * rows / n
    return {
        "flops": job_flops(shape, prompt_lengths, new_tokens, cached),
        "flops_floor": fewest,
        "job_s": load_s + gen_s,
        "floor_s": fewest / flop_per_s,
        "rows": rows,
        "job_s_at_rows": load_s + gen_s * rows / n,
        "floor_s_at_rows": fewest_at / flop_per_s,
    }


def roofline(
    shape: ModelShape, spec: GpuSpec | CpuSpec, n: int, prompt_tokens: float, new_tokens: int, flops: float
) -> dict:
    """The lower bound on the time of N prompts x T new tokens on the device `spec` gives the rates of, and
    the ceiling it implies; the spec itself under its kind ("gpu" or "cpu"). `flops` is the job's (`job_flops`).

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
        "flop_per_s": spec.flop_per_s,
        "memory_bound_s": memory_s,
        "compute_bound_s": compute_s,
        "bound": "memory" if memory_s >= compute_s else "compute",
        "lower_bound_s": seconds,
        "ceiling_tokens_per_s": n * new_tokens / seconds,
        "ceiling_examples_per_s": n / seconds,
    }


def share_note(share: float, roof: dict[str, Any], cached: float = 0) -> str | None:
    """Why a share of the ceiling is over 100 % (None when it is not): the bound did not hold for that run.
    `cached` is the share of its prompt tokens the engine took from a prefix cache."""
    if share <= 1:
        return None
    if cached > 0:
        return (
            f"ran at {share:.0%} of the ceiling, over the bound: it took {cached:.0%} of its prompt tokens from its "
            "prefix cache, so it did fewer FLOPs than the roofline counts (every prompt token computed)."
        )
    if "cpu" in roof:
        cpu = roof["cpu"]
        why = (
            f"the CPU's rates measured at the start (load average {cpu['load_avg']:.1f}) were below what the engine "
            "met later (other work on the cores eased), or its kernels outran the ones timed"
        )
    else:
        why = "the datasheet's peak understates this GPU, or the engine did fewer FLOPs than the roofline counts"
    return (
        f"ran at {share:.0%} of the ceiling, over the bound: {why}; a prefix cache that serves shared prompt "
        "tokens also does fewer FLOPs than the roofline counts."
    )
