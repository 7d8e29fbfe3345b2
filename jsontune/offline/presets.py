"""The model shapes `jsontune init-model --preset` makes: a tiny one for CPUs and Qwen3-0.6B's own."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from jsontune.errors import JsontuneError


@dataclass(frozen=True)
class Preset:
    """The shape of a Qwen3ForCausalLM; `dtype` is what its weights are saved in."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    dtype: str
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02


PRESETS: dict[str, Preset] = {
    # Fine-tunes on a CPU; two layers are the fewest that can copy a span, and learnt it faster than four.
    "tiny": Preset(
        vocab_size=1088,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        dtype="float32",
        # 1/sqrt(hidden): with Qwen's 0.02 a 128-wide model's logits stay near-uniform and LoRA cannot sharpen them.
        initializer_range=0.088,
    ),
    # Qwen/Qwen3-0.6B's exact shape, so throughput and memory numbers match the real model.
    "qwen3-0.6b": Preset(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        dtype="bfloat16",
    ),
}


def preset_config(preset: str) -> Any:
    """The Qwen3Config of a preset (no weights, no tokenizer: cheap enough to inspect anywhere)."""
    from transformers import Qwen3Config

    if preset not in PRESETS:
        raise JsontuneError(f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    shape = asdict(PRESETS[preset])
    return Qwen3Config(architectures=["Qwen3ForCausalLM"], use_sliding_window=False, **shape)
