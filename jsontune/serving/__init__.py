"""Serving: engines behind one small Protocol (HF `generate`, vLLM) and the predict verb's library.

Light to import: torch and vLLM load only when an engine is built (`make_engine`).
"""

from jsontune.serving.base import Engine, Generation, GenerationParams, vllm_available
from jsontune.serving.registry import ENGINES, make_engine, resolve_engine

__all__ = [
    "ENGINES",
    "Engine",
    "Generation",
    "GenerationParams",
    "make_engine",
    "resolve_engine",
    "vllm_available",
]
