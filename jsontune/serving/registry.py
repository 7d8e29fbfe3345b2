"""The engines by name: `make_engine("vllm", model)` builds one, `resolve_engine("auto")` picks one.

The registry sits above the engines it registers: it imports each engine's module only when it builds
that engine (torch, vLLM), and no engine imports it.
"""

from __future__ import annotations

from collections.abc import Callable

from jsontune.errors import JsontuneError
from jsontune.serving.base import Engine, vllm_available
from jsontune.serving.settings import EngineSettings


def _hf(model: str, settings: EngineSettings, lora: str | None) -> Engine:
    from jsontune.serving.hf_engine import HFEngine

    return HFEngine.load(model, settings, lora=lora)


def _vllm(model: str, settings: EngineSettings, lora: str | None) -> Engine:
    from jsontune.serving.vllm_engine import VLLMEngine

    return VLLMEngine(model, settings, lora=lora)


ENGINES: dict[str, Callable[[str, EngineSettings, str | None], Engine]] = {"hf": _hf, "vllm": _vllm}
ENGINE_CHOICES = ("auto", *ENGINES)


def resolve_engine(name: str) -> str:
    """The engine to build for --engine NAME: "auto" is vLLM where it can run, else HF (`Extractor.load`, which
    knows the job, asks `auto_engine` whether HF would do better).

    Asking for vLLM where it cannot run is one sentence, before anything slow has happened."""
    if name == "auto":
        return "vllm" if vllm_available() is None else "hf"
    if name not in ENGINES:
        raise JsontuneError(f"--engine {name!r} is not one of {', '.join(ENGINE_CHOICES)}.")
    if name == "vllm" and (missing := vllm_available()) is not None:
        raise JsontuneError(missing)
    return name


# `--engine auto` takes HF on a CPU for a job of up to this much work (`shape.job_tflop`): vLLM's longer start
# outweighs its speed there (docs/BENCHMARKS.md, "HF or vLLM for a small CPU job").
AUTO_HF_MAX_TFLOP = 0.3


def auto_engine(
    model: str,
    settings: EngineSettings,
    job_tokens: int,
    *,
    guided: bool = False,
    ray: bool = False,
    lora: bool = False,
) -> tuple[str, str]:
    """What `--engine auto` runs a job of `job_tokens` tokens on where vLLM can run ("hf" or "vllm"), and why
    (the manifest's `engine_rule`): the one engine rule.

    vLLM, except for a small job (`AUTO_HF_MAX_TFLOP`) on a CPU, which HF finishes sooner, where nothing asks for
    vLLM (`guided` decoding, `ray`, a vLLM setting) and both engines compute in float32 (`device.inference_dtype`:
    `--dtype auto` on a CPU without bf16 instructions, or `--dtype float32`), in which HF's greedy answers are
    vLLM's. So a row's answer does not depend on how many rows run with it: on a CPU with bf16 instructions vLLM
    computes `auto` in bfloat16 and HF in float32, and every job runs on vLLM. A `lora` adapter that vLLM would
    have to serve in float32, which it cannot, runs on HF whatever the job's size."""
    from jsontune.device import inference_dtype
    from jsontune.serving.base import vllm_build
    from jsontune.serving.vllm_engine import text_config
    from jsontune.shape import job_tflop

    if vllm_build() != "cpu":
        return "vllm", "auto: vLLM on a GPU"
    if guided or ray:
        return "vllm", f"auto: vLLM, for {'--guided-json' if guided else '--ray'}"
    try:
        settings.for_engine("hf")
    except JsontuneError:
        return "vllm", "auto: vLLM, for the vLLM settings given"
    dtypes = {kind: inference_dtype(settings.dtype, "cpu", engine=kind) for kind in ENGINES}
    if lora and dtypes["vllm"] == "float32":
        return "hf", "auto: HF, for a LoRA adapter in float32 (vLLM serves LoRA in bfloat16 or float16 only)"
    if set(dtypes.values()) != {"float32"}:
        return "vllm", (
            f"auto: vLLM in {dtypes['vllm']}, whatever the job's size: HF takes a small CPU job only where both "
            "engines compute in float32, so that a row's answer does not depend on how many rows run with it"
        )
    tflop = job_tflop(text_config(model, settings.trust_remote_code), job_tokens)
    if tflop <= AUTO_HF_MAX_TFLOP:
        return "hf", f"auto: HF for a CPU job of {tflop:.3g} TFLOP (at most {AUTO_HF_MAX_TFLOP:g}; both in float32)"
    return "vllm", f"auto: vLLM for a CPU job of {tflop:.3g} TFLOP (over {AUTO_HF_MAX_TFLOP:g}; both in float32)"


def make_engine(name: str, model: str, settings: EngineSettings | None = None, *, lora: str | None = None) -> Engine:
    """Build engine `name` ("hf", "vllm" or "auto") for `model` (with `lora`, that adapter on top); a setting
    the engine does not take is one sentence (`EngineSettings.for_engine`)."""
    engine = resolve_engine(name)
    settings = (settings or EngineSettings()).for_engine(engine)
    return ENGINES[engine](str(model), settings, str(lora) if lora else None)
