"""Serving: the engines and nothing else: the Protocol (base.py), the registry, HF, vLLM, Ray, the server
process and its HTTP client. The jobs that run them (predict, bench, training's eval) live above.

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
