"""Session-scoped fixtures: one tiny model and one synthetic dataset, made offline, shared by all tests."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch.cuda.is_available() below must not initialise the CUDA driver: vLLM's engine process would inherit it.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


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


TRAIN_STEPS = 6


def _train_config(tiny_model, synth_dir, out, **overrides):
    """A few-step CPU training config on the tiny model (evaluates F1 at steps 0, 3 and 6)."""
    from jsontune.training.config import build_config

    values = dict(
        model=str(tiny_model), train=str(synth_dir / "train.jsonl"), val=str(synth_dir / "val.jsonl"), out=str(out),
        max_steps=TRAIN_STEPS, eval_steps=3, eval_samples=4, eval_max_new_tokens=12, batch_size=4, lr=5e-3,
        logging_steps=1, max_length=256, seed=7,
    )
    values.update(overrides)
    return build_config(**values)


@pytest.fixture(scope="session")
def make_train_config():
    return _train_config


@pytest.fixture(scope="session")
def trained_run(tiny_model, synth_dir, tmp_path_factory):
    """(run folder, TrainSummary) of one short training run, shared by training, merge and predict tests."""
    from jsontune.training.sft import train

    out = tmp_path_factory.mktemp("runs") / "run"
    return out, train(_train_config(tiny_model, synth_dir, out))
