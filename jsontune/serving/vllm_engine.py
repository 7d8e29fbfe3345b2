"""vLLM's offline engine: every prompt in one `LLM.generate` call (continuous batching, paged KV cache).

Written against vLLM 0.26: `LLM(...)`, `SamplingParams(temperature=0)`, `StructuredOutputsParams(json=...)`
for --guided-json and `LoRARequest` to serve an adapter without merging it. vLLM stops on the
generation config's eos ids by itself. vLLM is imported only here, when the engine is built;
`base.resolve_engine` has already said so in one sentence if it cannot run.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.serving.base import Generation, GenerationParams, Progress

_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values


class VLLMEngine:
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        lora: str | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        dtype = _DTYPE_NAMES.get(dtype, dtype)
        if lora and dtype == "float32":
            raise JsontuneError("vLLM serves LoRA adapters in bfloat16 or float16 only; pass --dtype bfloat16, "
                                "or merge the adapter (jsontune merge) and serve that in float32.")
        # A fresh interpreter for vLLM's engine process: a forked one inherits whatever CUDA state this
        # process has (HF generation, a test's fixtures) and dies re-initialising it.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import LLM

        options: dict[str, Any] = {}
        if max_model_len:
            options["max_model_len"] = max_model_len
        self.lora_request = None
        if lora:
            from vllm.lora.request import LoRARequest

            options.update(enable_lora=True, max_lora_rank=_max_lora_rank(lora))
            self.lora_request = LoRARequest("adapter", 1, str(lora))
        self.llm = LLM(
            model=str(model),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=True,  # every prompt starts with the same instruction
            # --guided-json: compact JSON, as the model was trained to write, and no room to pad with
            # whitespace until max_new_tokens.
            structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
            trust_remote_code=trust_remote_code,
            seed=seed,
            **options,
        )

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        guided = StructuredOutputsParams(json=params.json_schema) if params.json_schema else None
        sampling = SamplingParams(
            temperature=0.0,
            max_tokens=params.max_new_tokens,
            min_tokens=params.min_new_tokens,
            ignore_eos=params.ignore_eos,
            skip_special_tokens=True,
            structured_outputs=guided,
        )
        outputs = self.llm.generate(
            prompts,
            sampling,
            use_tqdm=progress_bar(progress) if progress else False,
            lora_request=self.lora_request,
            # The chat template already wrote every special token the prompt needs, as for HF.
            tokenization_kwargs={"add_special_tokens": False},
        )
        return [_generation(output) for output in outputs]

    def reset_cache(self) -> None:
        """Forget the prefix cache, so that prompts seen before are computed again (fair repeated timing)."""
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        # The engine core runs in its own process; shutting it down frees its GPU memory.
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm


# jsontune's short names, in the spelling vLLM's dtype argument knows
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def _generation(output: Any) -> Generation:
    completion = output.outputs[0]
    return Generation(
        text=completion.text,
        prompt_tokens=len(output.prompt_token_ids),
        output_tokens=len(completion.token_ids),
        finish_reason=completion.finish_reason or "length",
        token_ids=tuple(completion.token_ids),
    )


def _max_lora_rank(adapter: str) -> int:
    """The smallest rank vLLM accepts that holds the adapter's own rank `r`."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise JsontuneError(f"--lora {adapter} has no adapter_config.json; give a PEFT adapter folder.")
    rank = json.loads(config.read_text(encoding="utf-8")).get("r", 16)
    fitting = [r for r in _LORA_RANKS if r >= rank]
    if not fitting:
        raise JsontuneError(f"--lora {adapter} has rank {rank}, above vLLM's largest ({_LORA_RANKS[-1]}).")
    return fitting[0]


def progress_bar(progress: Progress) -> Any:
    """A tqdm factory for `LLM.generate(use_tqdm=...)` that reports finished prompts to `progress`."""
    from tqdm import tqdm

    class _Reporting(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            progress(int(n or 0))
            return shown

    def factory(*iterable: Any, **kwargs: Any) -> tqdm:
        # vLLM calls it twice per generate: around the prompts while it renders them (the iterable comes
        # positionally; counting those would report prompts as finished before any is), and with total=
        # for the requests that finish, which is the progress that matters.
        if iterable:
            return tqdm(*iterable, disable=True, **kwargs)
        return _Reporting(file=io.StringIO(), **kwargs)

    return factory
