"""The roofline's arithmetic against numbers worked out by hand."""

from __future__ import annotations

import json

import pytest

from jsontune.bench.roofline import GIB, GpuSpec, count_params, gpu_spec, roofline
from jsontune.shape import ModelShape, estimate_params, model_shape

# 1e9 parameters in bf16 (2e9 bytes); K and V of one token: 2 * 2 layers * 1 head * 4 dims * 2 bytes = 32.
SHAPE = ModelShape(params=1_000_000_000, layers=2, kv_heads=1, head_dim=4, dtype_bytes=2)
BIG = GpuSpec("test", bandwidth_tb_s=1.0, tflops=100.0, memory_gib=80)


def test_memory_bound_job_with_every_prompt_in_one_batch():
    # 4 prompts of 10 tokens, 5 new tokens each: one batch of 4, so 5 decode steps read the weights 5 times.
    result = roofline(SHAPE, BIG, n=4, prompt_tokens=10, new_tokens=5)
    assert result["batch"] == 4
    assert result["decode_steps"] == 5
    assert result["weight_bytes_moved"] == 5 * 2e9
    # each new token reads the KV of the tokens before it: 10+11+12+13+14 = 60 tokens per prompt
    assert result["kv_bytes_moved"] == 4 * 32 * 60
    assert result["flops"] == 2 * 1e9 * 4 * (10 + 5)
    assert result["memory_bound_s"] == pytest.approx((1e10 + 7680) / 1e12)
    assert result["compute_bound_s"] == pytest.approx(1.2e11 / 1e14)
    assert result["bound"] == "memory"
    assert result["lower_bound_s"] == result["memory_bound_s"]
    assert result["ceiling_tokens_per_s"] == pytest.approx(4 * 5 / ((1e10 + 7680) / 1e12))
    assert result["ceiling_examples_per_s"] == pytest.approx(4 / ((1e10 + 7680) / 1e12))


def test_memory_limits_the_batch_and_so_multiplies_weight_reads():
    # Room beside the weights for 1000 bytes of KV cache: two sequences of 15 tokens (480 bytes each).
    small = GpuSpec("small", bandwidth_tb_s=1.0, tflops=100.0, memory_gib=(2e9 + 1000) / GIB)
    result = roofline(SHAPE, small, n=4, prompt_tokens=10, new_tokens=5)
    assert result["batch"] == 2
    assert result["decode_steps"] == 2 * 5
    assert result["weight_bytes_moved"] == 10 * 2e9


def test_compute_bound_when_flops_are_scarce():
    slow = GpuSpec("slow", bandwidth_tb_s=1.0, tflops=0.001, memory_gib=80)
    result = roofline(SHAPE, slow, n=4, prompt_tokens=10, new_tokens=5)
    assert result["bound"] == "compute"
    assert result["lower_bound_s"] == pytest.approx(1.2e11 / 1e9)


def test_a_model_that_does_not_fit_has_no_roofline():
    tiny_gpu = GpuSpec("tiny", bandwidth_tb_s=1.0, tflops=1.0, memory_gib=1)
    with pytest.raises(ValueError, match="do not fit"):
        roofline(SHAPE, tiny_gpu, n=1, prompt_tokens=10, new_tokens=5)


@pytest.mark.parametrize(
    ("nvml_name", "spec"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
        ("NVIDIA A100 80GB PCIe", "A100 80GB"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A100-SXM4-40GB", None),
        ("NVIDIA L40S", None),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_gpu_names_map_to_their_datasheet(nvml_name, spec):
    found = gpu_spec(nvml_name)
    assert (found.name if found else None) == spec


def test_h100_sxm_datasheet_numbers():
    spec = gpu_spec("NVIDIA H100 80GB HBM3")
    assert (spec.bandwidth_tb_s, spec.tflops) == (3.35, 989)


def test_estimated_params_of_qwen3_0_6b():
    from jsontune.offline import preset_config

    # Qwen3-0.6B has 596,049,920 parameters, 65,536 of them in norms, which the estimate leaves out.
    assert estimate_params(preset_config("qwen3-0.6b").to_dict()) == 596_049_920 - 65_536


def test_model_shape_reads_gqa_and_head_dim_from_the_config():
    from jsontune.offline import preset_config

    shape = model_shape(preset_config("qwen3-0.6b").to_dict(), "bfloat16", params=123)
    assert shape == ModelShape(params=123, layers=28, kv_heads=8, head_dim=128, dtype_bytes=2)
    assert shape.kv_bytes_per_token == 2 * 28 * 8 * 128 * 2


def test_params_counted_from_the_safetensors_headers(tiny_model):
    manifest = json.loads((tiny_model / "jsontune.json").read_text())
    assert count_params(tiny_model) == manifest["parameters"]


def test_no_safetensors_no_count(tmp_path):
    assert count_params(tmp_path) is None
