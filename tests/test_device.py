"""One dtype vocabulary for every --dtype, one meaning of `--dtype auto` (`inference_dtype`), and the device choice."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config

from jsontune.device import config_dtype, cpu_has_bf16, dtype_name, inference_dtype, resolve_device, torch_dtype
from jsontune.errors import JsontuneError


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("bf16", "bfloat16"), ("half", "float16"), ("fp32", "float32"), ("torch.float16", "float16"), ("auto", "auto")],
)
def test_every_spelling_has_one_canonical_name(name, canonical):
    assert dtype_name(name) == canonical


def test_torch_dtypes_and_unknown_names():
    assert torch_dtype("bf16") is torch.bfloat16
    assert torch_dtype("float16") is torch.float16
    assert torch_dtype("float32") is torch.float32
    with pytest.raises(JsontuneError, match="unknown dtype 'int3'; choose one of: auto, float32"):
        torch_dtype("int3")
    with pytest.raises(JsontuneError, match="'auto' has no torch dtype"):
        torch_dtype("auto")


def test_a_config_names_its_dtype_whichever_way_it_was_saved():
    assert config_dtype(Qwen3Config(dtype="bfloat16")) == "bfloat16"
    assert config_dtype({"torch_dtype": "float16"}) == "float16"  # transformers 4's key
    assert config_dtype({}) == "float32"


def test_device_names():
    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device() == expected
    with pytest.raises(JsontuneError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(JsontuneError, match="'cuda' was asked for but is not available"):
            resolve_device("cuda")


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Set whether the CPU has bf16 instructions, as the one probe every `auto` rule asks answers it."""

    def set_to(has: bool) -> None:
        monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: has)

    return set_to


@pytest.mark.parametrize("stored", ["float32", "bfloat16", "float16", None])
def test_auto_on_a_cpu_is_bfloat16_for_vllm_where_it_has_bf16_instructions_whatever_the_checkpoint(bf16_cpu, stored):
    bf16_cpu(True)
    assert inference_dtype("auto", "cpu", stored, engine="vllm") == "bfloat16"
    bf16_cpu(False)  # bfloat16 would be emulated: float32, a half-precision checkpoint upcast too
    assert inference_dtype("auto", "cpu", stored, engine="vllm") == "float32"


@pytest.mark.parametrize("stored", ["float32", "bfloat16", "float16", None])
@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_on_a_cpu_is_float32_for_hf_with_or_without_bf16_instructions(bf16_cpu, has_bf16, stored):
    bf16_cpu(has_bf16)
    assert inference_dtype("auto", "cpu", stored, engine="hf") == "float32"


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "has"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_avx512_bf16_or_amx_alone_counts_as_bf16_instructions(monkeypatch, avx512_bf16, amx, has):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert cpu_has_bf16() is has
    assert inference_dtype("auto", "cpu", "float32", engine="vllm") == ("bfloat16" if has else "float32")


@pytest.mark.parametrize(
    ("stored", "runs"),
    [("float32", "bfloat16"), ("bfloat16", "bfloat16"), ("float16", "float16"), (None, "bfloat16")],
)
@pytest.mark.parametrize("gpu", ["cuda", "cuda:1"])
@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_auto_on_a_gpu_is_the_checkpoints_dtype_with_float32_run_as_bfloat16(bf16_cpu, engine, gpu, stored, runs):
    bf16_cpu(True)  # the CPU plays no part
    assert inference_dtype("auto", gpu, stored, engine=engine) == runs


def test_auto_on_mps_is_the_checkpoints_dtype(bf16_cpu):
    bf16_cpu(True)
    assert inference_dtype("auto", "mps", "float32", engine="hf") == "float32"
    assert inference_dtype("auto", "mps", "float16", engine="hf") == "float16"


@pytest.mark.parametrize(
    ("asked", "runs"),
    [
        ("float32", "float32"),
        ("fp32", "float32"),
        ("bf16", "bfloat16"),
        ("half", "float16"),
        ("torch.float16", "float16"),
    ],
)
@pytest.mark.parametrize(("device", "has_bf16"), [("cpu", True), ("cpu", False), ("cuda", False)])
@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_a_dtype_asked_for_by_name_is_kept_in_its_canonical_spelling(bf16_cpu, engine, device, has_bf16, asked, runs):
    bf16_cpu(has_bf16)
    assert inference_dtype(asked, device, "bfloat16", engine=engine) == runs


def test_an_unknown_dtype_is_one_sentence_and_an_unknown_engine_an_error():
    with pytest.raises(JsontuneError, match="unknown dtype 'int4'"):
        inference_dtype("int4", "cpu", "float32", engine="hf")
    with pytest.raises(ValueError, match="'hf' or 'vllm'"):
        inference_dtype("auto", "cpu", "float32", engine="hf-batch")


@pytest.mark.parametrize("has_bf16", [True, False])
def test_hf_loading_and_the_bench_resolve_auto_alike(tiny_model, bf16_cpu, has_bf16):
    """What `predict --engine hf` loads is what the bench gives its HF rows for `auto`: float32 on a CPU."""
    from jsontune.bench.runner import engine_dtype
    from jsontune.serving.hf_engine import HFEngine

    bf16_cpu(has_bf16)
    bench = engine_dtype(str(tiny_model), "auto", engine="hf")
    assert HFEngine.load(str(tiny_model)).settings["dtype"] == bench
    if resolve_device() == "cpu":
        assert bench == "float32"


@pytest.mark.vllm
@pytest.mark.parametrize("has_bf16", [True, False])
def test_the_vllm_engine_and_the_bench_resolve_auto_alike(tiny_model, bf16_cpu, has_bf16):
    """What `predict --engine vllm` starts vLLM with is what the bench gives its vLLM rows for `auto`."""
    from jsontune.bench.runner import engine_dtype
    from jsontune.serving.base import vllm_build
    from jsontune.serving.settings import EngineSettings
    from jsontune.serving.vllm_engine import engine_args

    bf16_cpu(has_bf16)
    args, chosen = engine_args(str(tiny_model), EngineSettings())
    assert args["dtype"] == chosen["dtype"] == engine_dtype(str(tiny_model), "auto", engine="vllm")
    if vllm_build() == "cpu":
        assert chosen["dtype"] == ("bfloat16" if has_bf16 else "float32")
