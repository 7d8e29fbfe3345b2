"""A decoder's shape as its config states it: what memory and speed bounds are computed from.

The bench's roofline needs the parameter and KV-cache bytes; vLLM's CPU engine sizes its KV cache
from the same KV bytes per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int

    @property
    def weight_bytes(self) -> int:
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer and KV head, for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


def estimate_params(config: dict[str, Any]) -> int:
    """A decoder-only transformer's parameter count from its config (norms and biases left out)."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim  # q, o; k, v
    mlp = 3 * hidden * config["intermediate_size"]  # gate, up, down
    embeddings = config["vocab_size"] * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    return embeddings + layers * (attention + mlp)


def job_tokens(prompt_lengths: list[int], new_tokens: int) -> int:
    """The tokens a generation job computes: every prompt, and `new_tokens` for each."""
    return sum(prompt_lengths) + new_tokens * len(prompt_lengths)


def job_tflop(config: dict[str, Any], job_tokens: int) -> float:
    """The work of a generation job in TFLOP: 2 x parameters x the tokens it computes (its prompts, and the new
    tokens of each). The one measure `auto` engine and in-process rules compare against their thresholds."""
    return 2 * estimate_params(config) * job_tokens / 1e12


def model_shape(config: dict[str, Any], dtype: str, params: int | None = None) -> ModelShape:
    """The shape the roofline needs; `params` from the weights files when known, else estimated."""
    heads = config["num_attention_heads"]
    return ModelShape(
        params=params or estimate_params(config),
        layers=config["num_hidden_layers"],
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        dtype_bytes=DTYPE_BYTES[dtype],
    )
