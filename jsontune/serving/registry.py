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
    knows the job, runs a small CPU job of it on HF: `extractor.small_job_engine`).

    Asking for vLLM where it cannot run is one sentence, before anything slow has happened."""
    if name == "auto":
        return "vllm" if vllm_available() is None else "hf"
    if name not in ENGINES:
        raise JsontuneError(f"--engine {name!r} is not one of {', '.join(ENGINE_CHOICES)}.")
    if name == "vllm" and (missing := vllm_available()) is not None:
        raise JsontuneError(missing)
    return name


def make_engine(name: str, model: str, settings: EngineSettings | None = None, *, lora: str | None = None) -> Engine:
    """Build engine `name` ("hf", "vllm" or "auto") for `model` (with `lora`, that adapter on top); a setting
    the engine does not take is one sentence (`EngineSettings.for_engine`)."""
    engine = resolve_engine(name)
    settings = (settings or EngineSettings()).for_engine(engine)
    return ENGINES[engine](str(model), settings, str(lora) if lora else None)
