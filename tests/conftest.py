"""Session-scoped fixtures: one tiny model and one synthetic dataset, made offline, shared by all tests."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


requires_gpu = pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
requires_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not _has_cuda(), reason="needs vLLM and a CUDA GPU"
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random-init tiny Qwen3 model + Qwen3-chat-template tokenizer (made offline, seconds)."""
    from jsontune.modeling import init_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    init_model("tiny", out, seed=0)
    return out


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """train/val/test.jsonl of 200 synthetic purchase orders."""
    from jsontune.data.synth import write_splits

    out = tmp_path_factory.mktemp("data")
    write_splits(n=200, out=out, seed=0)
    return out
