"""The roofline's arithmetic against numbers worked out by hand, on a GPU's datasheet and a CPU's measured rates."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from jsontune.bench.roofline import (
    CPU_FEATURES,
    GIB,
    GpuSpec,
    count_params,
    cpu_features,
    gpu_spec,
    measure_cpu,
    roofline,
)
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


def test_a_cpu_roofline_uses_the_same_formulas_on_the_measured_rates(cpu_spec):
    result = roofline(SHAPE, cpu_spec, n=4, prompt_tokens=10, new_tokens=5)
    # 1.2e11 FLOPs at 1e11 FLOP/s against 5 reads of 2e9 weight bytes (and 7680 KV bytes) at 1e10 bytes/s
    assert result["compute_bound_s"] == pytest.approx(1.2)
    assert result["memory_bound_s"] == pytest.approx((1e10 + 7680) / 1e10)
    assert result["bound"] == "compute" and result["batch"] == 4
    assert result["ceiling_tokens_per_s"] == pytest.approx(4 * 5 / 1.2)
    assert result["cpu"] == asdict(cpu_spec) and "gpu" not in result


def test_a_cpu_with_little_bandwidth_is_memory_bound(cpu_spec):
    result = roofline(SHAPE, replace(cpu_spec, bandwidth_gb_s=1.0), n=4, prompt_tokens=10, new_tokens=5)
    assert result["bound"] == "memory"
    assert result["ceiling_tokens_per_s"] == pytest.approx(20 / ((1e10 + 7680) / 1e9))


def test_cpu_features_are_named_from_the_cpuinfo_flags():
    flags = ["fpu", "sse", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert cpu_features(flags) == ("AVX2", "AVX-512", "AVX512-BF16", "AMX-BF16")
    assert cpu_features(["sse", "avx", "avx2"]) == ("AVX2",)  # an AVX2-only CPU, such as many AMD EPYCs
    assert cpu_features([]) == ()


def test_measure_cpu_reports_what_it_measured_and_restores_the_threads():
    import torch

    before = torch.get_num_threads()
    spec = measure_cpu("float32", sizes=(64, 32, 64), copy_bytes=1 << 20, threads=1, budget_s=0.01)
    assert torch.get_num_threads() == before
    assert (spec.dtype, spec.threads, spec.copy_gib) == ("float32", 1, 1 / 1024)
    assert list(spec.gflops_by_size) == ["32", "64"] and spec.gflops == max(spec.gflops_by_size.values()) > 0
    assert spec.bandwidth_gb_s > 0 and spec.memory_gib > 0 and spec.kernels
    assert set(spec.features) <= set(CPU_FEATURES.values())


def test_measure_cpu_leaves_out_a_size_too_slow_to_time(monkeypatch):
    from jsontune.bench import roofline as rl

    monkeypatch.setattr(rl, "_matmul_gflops", lambda n, dtype, budget_s: 0.5)  # bfloat16 without bf16 instructions
    spec = measure_cpu("bfloat16", sizes=(1024, 2048), copy_bytes=1 << 20, budget_s=0.5)
    assert spec.gflops_by_size == {"1024": 0.5}  # a 2048 product would take 34 s
