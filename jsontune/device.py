"""Where a model runs and in what precision: the one place for device choice, dtype names and CUDA probing.

Every flag that takes a dtype (`--dtype` of predict, bench and merge) speaks one vocabulary,
`DTYPES` plus the short names in `DTYPE_ALIASES`, and `dtype_name` turns any of them into the
canonical name both torch and vLLM accept.
"""

from __future__ import annotations

import os
from typing import Any

from jsontune.errors import JsontuneError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def dtype_name(name: str) -> str:
    """The canonical name of a dtype ("bf16" -> "bfloat16", "torch.float16" -> "float16"); one sentence if unknown."""
    canonical = DTYPE_ALIASES.get(name, str(name).removeprefix("torch."))
    if canonical not in DTYPES:
        raise JsontuneError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}.")
    return canonical


def torch_dtype(name: str) -> Any:
    """`"bfloat16"` (or any name `dtype_name` knows, except auto) -> the torch dtype."""
    import torch

    canonical = dtype_name(name)
    if canonical == "auto":
        raise JsontuneError("dtype 'auto' has no torch dtype until it is resolved for a model and a device.")
    return getattr(torch, canonical)


def config_dtype(config: Any, default: str = "float32") -> str:
    """The dtype a model's config (a transformers config or its dict) says its weights are stored in."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    stored = get("dtype") or get("torch_dtype") or default
    return dtype_name(str(stored))


def inference_dtype(requested: str, device: str, stored: str | None = None, *, engine: str) -> str:
    """The dtype `engine` ("hf" or "vllm") runs a model in for inference on `device`: the one meaning of
    `--dtype auto`, which HF loading, the vLLM engine and the bench all ask for, so that a bench row runs what
    predict runs.

    A dtype asked for by name is kept (in its canonical spelling). `auto` depends on where the model runs:
    - cuda, cuda:N (both engines): the checkpoint's own dtype (`stored`, `config_dtype`), float32 becoming
      bfloat16, as vLLM's own `auto` does;
    - cpu, vLLM: bfloat16 where the CPU has bf16 instructions (`cpu_has_bf16`), several times faster than float32
      there (docs/BENCHMARKS.md); else float32, where bfloat16 is emulated and slower; whatever the checkpoint
      stores;
    - cpu, HF: float32. bfloat16 took a third of the compute for the qwen3-0.6b shape, but changed 15 of the
      demo's 100 outputs and made batched output differ from sequential (docs/BENCHMARKS.md);
    - mps (HF): the checkpoint's own dtype.
    `stored` None means the checkpoint names none, which transformers reads as float32.
    """
    if engine not in ("hf", "vllm"):
        raise ValueError(f"engine must be 'hf' or 'vllm', got {engine!r}")
    requested = dtype_name(requested)
    if requested != "auto":
        return requested
    if device == "cpu":
        return "bfloat16" if engine == "vllm" and cpu_has_bf16() else "float32"
    stored = dtype_name(stored or "float32")
    if device.split(":")[0] == "cuda" and stored == "float32":
        return "bfloat16"
    return stored


def cpu_has_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX), as torch probes it: the one probe `auto`
    rules ask (`inference_dtype`, and through it `registry.auto_engine`)."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def probe_cuda_with_nvml() -> None:
    """Make torch answer "is there a CUDA GPU?" from NVML, without creating a CUDA context in this process.

    A CUDA driver initialised here poisons the engine process vLLM forks (vLLM sets this itself, but only
    once imported, which is later), and a bench parent would hold GPU memory its workers then measure.
    Call it before the first `torch.cuda.is_available()` of a process that may start vLLM.
    """
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def cuda_available() -> bool:
    """Whether a CUDA GPU is visible, asked through NVML (see `probe_cuda_with_nvml`)."""
    probe_cuda_with_nvml()
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str | None = None) -> str:
    """The device to run on: the one asked for (checked), else cuda, then mps, then cpu."""
    import torch

    has_mps = torch.backends.mps.is_available()
    if device is None:
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    kind = device.split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise JsontuneError(f"unknown device {device!r}; use cuda, cuda:N, mps or cpu.")
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not has_mps):
        raise JsontuneError(f"device {device!r} was asked for but is not available here; use --device cpu.")
    return device
