"""Every engine setting, declared once: `EngineSettings`, one typed field per setting with its default and help.

It is jsontune's `EngineArgs`: the flags of `predict`, `bench` and `serve` are made from these fields
(`cli/common.py` `engine_options`), the object travels typed from the flag to the engine (the Extractor, the
registry, a Ray replica as `asdict` and back, the bench worker's spec), and each engine reads the fields it
takes. A field names the engines that take it; a setting given to an engine that does not take it is one
sentence (`for_engine`), never a TypeError.

    EngineSettings(kv_cache_gb=4).for_engine("hf")
    # JsontuneError: --kv-cache-gb is a vllm setting; the hf engine does not take it ...

To add a vLLM setting to all three verbs: add its field here, and read it in `vllm_engine.engine_args`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from jsontune.errors import JsontuneError

HF, VLLM = "hf", "vllm"


def setting(default: Any, help: str, engines: tuple[str, ...] = (HF, VLLM)) -> Any:
    """A field of a settings dataclass: its default, the help its flag shows and the engines that take it."""
    return field(default=default, metadata={"help": help, "engines": engines})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flag_names(name: str, kind: Any) -> list[str]:
    """How setting `name` of type `kind` is written on a command line: a bool is an on-switch (--sequential), an
    optional bool the pair --x/--no-x (--in-process, --no-in-process; neither: the default decides), anything else
    --x VALUE. The flags every verb makes (`cli/common.py` `options_from`) and the commands it writes back
    (`as_flags`) both follow it."""
    if kind == bool | None:
        return [f"{flag(name)}/--no-{flag(name)[2:]}"]
    return [flag(name)]


def declared(cls: type, engines: tuple[str, ...] | None = None) -> list[tuple[str, Any, Any, str]]:
    """(name, type, default, help) of each field of settings dataclass `cls` that has a default and a help, so a
    flag (and, with `engines`, that one of them takes)."""
    from dataclasses import MISSING
    from typing import get_type_hints

    hints = get_type_hints(cls)
    return [
        (f.name, hints[f.name], f.default, f.metadata["help"])
        for f in fields(cls)
        if f.default is not MISSING
        and "help" in f.metadata
        and (engines is None or set(engines) & set(f.metadata.get("engines", engines)))
    ]


def as_flags(values: Any) -> list[str]:
    """The command-line words that give settings dataclass `values` back: the flag of each field that differs
    from its default, spelt as `flag_names` spells it (False of an optional bool is --no-x)."""
    words: list[str] = []
    for name, _, default, _ in declared(type(values)):
        value = getattr(values, name)
        if value == default or value is None:
            continue
        if isinstance(value, bool):
            words.append(flag(name) if value else f"--no-{flag(name)[2:]}")
        else:
            words += [flag(name), str(value)]
    return words


@dataclass(frozen=True)
class EngineSettings:
    """How an engine loads and runs a model. Decoding (max_new_tokens, the schema) is `GenerationParams`."""

    dtype: str = setting(
        "auto", "auto, float32, bfloat16 or float16 (or bf16, fp16, fp32); auto: per engine and device, docs/cli.md."
    )
    trust_remote_code: bool = setting(False, "Run the model repository's own Python code (off).")
    batch_size: int = setting(8, "HF: prompts per batch (halved on out-of-memory).", (HF,))
    sequential: bool = setting(False, "HF: one prompt at a time (the naive baseline).", (HF,))
    device: str | None = setting(None, "HF: cuda, cuda:N, mps or cpu (default: the best there is).", (HF,))
    gpu_memory_utilization: float = setting(0.9, "vLLM on a GPU: share of its memory to use.", (VLLM,))
    max_model_len: int | None = setting(
        None, "vLLM: context length (default: the longest prompt + --max-new-tokens).", (VLLM,)
    )
    kv_cache_gb: float | None = setting(
        None, "vLLM: GiB of KV cache (default on a CPU: 64 full-length sequences, at most 1/4 of free RAM).", (VLLM,)
    )
    tensor_parallel_size: int = setting(1, "vLLM: GPUs to shard the model over.", (VLLM,))
    block_size: int | None = setting(
        None,
        "vLLM: tokens per KV-cache block; the prefix cache reuses whole blocks only (default on a CPU: 32, which "
        "the prompt head every row shares fills; a multiple of 32 there. On a GPU: vLLM's).",
        (VLLM,),
    )
    prefix_caching: bool | None = setting(
        None,
        "vLLM: reuse the KV cache of a prompt head computed before (default: on; --no-prefix-caching: every "
        "prompt computed whole).",
        (VLLM,),
    )
    compile: bool | None = setting(
        None,
        "vLLM: compile the model with torch.compile when it starts (--no-compile: run it eager). Default on a "
        "CPU: compiled in bfloat16 or float16 for a job of over 400 TFLOP of work, where faster steps repay the "
        "longer start; eager otherwise, for serve and with --lora (docs/cli.md). On a GPU: vLLM's (compiled).",
        (VLLM,),
    )
    seed: int = setting(0, "vLLM's seed (bench: also the synthetic orders').", (VLLM,))
    in_process: bool | None = setting(
        None,
        "vLLM: run its engine in this process (vLLM imported once, not three times) or in its own processes "
        "(--no-in-process); default: in this process for a CPU job of up to 1 TFLOP of work, else its own "
        "(docs/cli.md). serve: --in-process puts the model in the server's engine process.",
        (VLLM,),
    )
    # Not a flag: the tokens the job computes (its prompts, plus --max-new-tokens for each), set by
    # `extractor.fit_context` from the input, so that `in_process`'s default can follow the job's size.
    job_tokens: int | None = field(default=None, metadata={"engines": (VLLM,)})

    def __post_init__(self) -> None:
        from jsontune.device import dtype_name

        object.__setattr__(self, "dtype", dtype_name(self.dtype))  # one spelling from here on
        for name, least in (("batch_size", 1), ("tensor_parallel_size", 1), ("max_model_len", 1), ("block_size", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise JsontuneError(f"{flag(name)} must be at least {least}, got {value}.")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise JsontuneError(f"--gpu-memory-utilization is a share in (0, 1], got {self.gpu_memory_utilization}.")
        if self.kv_cache_gb is not None and self.kv_cache_gb <= 0:
            raise JsontuneError(f"--kv-cache-gb must be more than 0, got {self.kv_cache_gb:g}.")

    def given(self) -> list[str]:
        """The settings that differ from their defaults."""
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]

    def for_engine(self, engine: str) -> EngineSettings:
        """These settings for `engine` ("hf" or "vllm"); one sentence for a given setting it does not take."""
        for name in self.given():
            takers = takes(name)
            if engine not in takers:
                raise JsontuneError(
                    f"{flag(name)} is a {' and '.join(takers)} setting; the {engine} engine does not take it "
                    f"(drop {flag(name)}, or use --engine {takers[0]})."
                )
        return self

    def only(self, engine: str) -> EngineSettings:
        """These settings with the ones `engine` does not take back at their defaults (the bench gives one set of
        flags to several engines)."""
        return replace(self, **{f.name: f.default for f in fields(self) if engine not in takes(f.name)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EngineSettings:
        """The settings `to_dict` wrote (a Ray replica's, the bench worker's spec); an unknown key is one sentence."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise JsontuneError(f"unknown engine setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**values)


def takes(name: str) -> tuple[str, ...]:
    """The engines that take setting `name`."""
    return next(f.metadata["engines"] for f in fields(EngineSettings) if f.name == name)
