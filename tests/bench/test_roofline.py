"""The roofline's arithmetic against numbers worked out by hand, on a GPU's datasheet and a CPU's measured rates."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from jsontune.bench.measure import CPU_FEATURES, count_params, cpu_features, measure_cpu
from jsontune.bench.roofline import (
    GIB,
    FlopShape,
    GpuSpec,
    floor_flops,
    gpu_spec,
    head_flops,
    job_against_floor,
    job_flops,
    roofline,
    sequence_flops,
    share_note,
    shared_prefix,
)
from jsontune.shape import ModelShape, estimate_params, model_shape

# 1e9 parameters in bf16 (2e9 bytes); K and V of one token: 2 * 2 layers * 1 head * 4 dims * 2 bytes = 32.
SHAPE = ModelShape(params=1_000_000_000, layers=2, kv_heads=1, head_dim=4, dtype_bytes=2)
BIG = GpuSpec("test", bandwidth_tb_s=1.0, tflops=100.0, memory_gib=80)
FLOPS = 1.2e11  # the job's forward FLOPs, given: 4 prompts x 15 tokens x 2e9


def test_memory_bound_job_with_every_prompt_in_one_batch():
    # 4 prompts of 10 tokens, 5 new tokens each: one batch of 4, so 5 decode steps read the weights 5 times.
    result = roofline(SHAPE, BIG, n=4, prompt_tokens=10, new_tokens=5, flops=FLOPS)
    assert result["batch"] == 4
    assert result["decode_steps"] == 5
    assert result["weight_bytes_moved"] == 5 * 2e9
    # each new token reads the KV of the tokens before it: 10+11+12+13+14 = 60 tokens per prompt
    assert result["kv_bytes_moved"] == 4 * 32 * 60
    assert result["flops"] == FLOPS and result["flop_per_s"] == 1e14
    assert result["memory_bound_s"] == pytest.approx((1e10 + 7680) / 1e12)
    assert result["compute_bound_s"] == pytest.approx(1.2e11 / 1e14)
    assert result["bound"] == "memory"
    assert result["lower_bound_s"] == result["memory_bound_s"]
    assert result["ceiling_tokens_per_s"] == pytest.approx(4 * 5 / ((1e10 + 7680) / 1e12))
    assert result["ceiling_examples_per_s"] == pytest.approx(4 / ((1e10 + 7680) / 1e12))


def test_memory_limits_the_batch_and_so_multiplies_weight_reads():
    # Room beside the weights for 1000 bytes of KV cache: two sequences of 15 tokens (480 bytes each).
    small = GpuSpec("small", bandwidth_tb_s=1.0, tflops=100.0, memory_gib=(2e9 + 1000) / GIB)
    result = roofline(SHAPE, small, n=4, prompt_tokens=10, new_tokens=5, flops=FLOPS)
    assert result["batch"] == 2
    assert result["decode_steps"] == 2 * 5
    assert result["weight_bytes_moved"] == 10 * 2e9


def test_compute_bound_when_flops_are_scarce():
    slow = GpuSpec("slow", bandwidth_tb_s=1.0, tflops=0.001, memory_gib=80)
    result = roofline(SHAPE, slow, n=4, prompt_tokens=10, new_tokens=5, flops=FLOPS)
    assert result["bound"] == "compute"
    assert result["lower_bound_s"] == pytest.approx(1.2e11 / 1e9)


def test_a_model_that_does_not_fit_has_no_roofline():
    tiny_gpu = GpuSpec("tiny", bandwidth_tb_s=1.0, tflops=1.0, memory_gib=1)
    with pytest.raises(ValueError, match="do not fit"):
        roofline(SHAPE, tiny_gpu, n=1, prompt_tokens=10, new_tokens=5, flops=FLOPS)


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
    result = roofline(SHAPE, cpu_spec, n=4, prompt_tokens=10, new_tokens=5, flops=FLOPS)
    # 1.2e11 FLOPs at 1e11 FLOP/s against 5 reads of 2e9 weight bytes (and 7680 KV bytes) at 1e10 bytes/s
    assert result["compute_bound_s"] == pytest.approx(1.2)
    assert result["memory_bound_s"] == pytest.approx((1e10 + 7680) / 1e10)
    assert result["bound"] == "compute" and result["batch"] == 4
    assert result["ceiling_tokens_per_s"] == pytest.approx(4 * 5 / 1.2)
    assert result["cpu"] == asdict(cpu_spec) and "gpu" not in result


def test_a_cpu_with_little_bandwidth_is_memory_bound(cpu_spec):
    result = roofline(SHAPE, replace(cpu_spec, bandwidth_gb_s=1.0), n=4, prompt_tokens=10, new_tokens=5, flops=FLOPS)
    assert result["bound"] == "memory"
    assert result["ceiling_tokens_per_s"] == pytest.approx(20 / ((1e10 + 7680) / 1e9))


def test_cpu_features_are_named_from_the_cpuinfo_flags():
    flags = ["fpu", "sse", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert cpu_features(flags) == ("AVX2", "AVX-512", "AVX512-BF16", "AMX-BF16")
    assert cpu_features(["sse", "avx", "avx2"]) == ("AVX2",)  # an AVX2-only CPU, such as many AMD EPYCs
    assert cpu_features([]) == ()


def test_measure_cpu_reports_every_dtype_and_kernel_and_restores_the_threads():
    import torch

    before = torch.get_num_threads()
    specs = measure_cpu(
        ["float32", "bfloat16", "float32"],
        shapes=[(64, 32), (32, 64)],
        rows=16,
        copy_bytes=1 << 20,
        threads=1,
        budget_s=0.01,
    )
    assert torch.get_num_threads() == before
    assert list(specs) == ["float32", "bfloat16"]  # each dtype once, in the order asked
    for dtype, spec in specs.items():
        assert (spec.dtype, spec.threads, spec.copy_gib) == (dtype, 1, 1 / 1024)
        assert sorted(spec.gflops_by_kernel["torch"]) == ["16x32x64", "16x64x32"]
        assert spec.gflops == max(r for rates in spec.gflops_by_kernel.values() for r in rates.values()) > 0
        assert spec.bandwidth_gb_s > 0 and spec.memory_gib > 0 and spec.kernels
        assert set(spec.features) <= set(CPU_FEATURES.values())
    assert specs["float32"].bandwidth_gb_s == specs["bfloat16"].bandwidth_gb_s  # one copy for both


def test_measure_cpu_times_vllms_onednn_product_where_vllm_runs():
    from jsontune.serving.base import vllm_available

    if vllm_available() is not None:
        pytest.skip("vLLM is not installed for this CPU")
    spec = measure_cpu(["float32"], shapes=[(64, 64)], rows=16, copy_bytes=1 << 20, budget_s=0.01)["float32"]
    assert set(spec.gflops_by_kernel) == {"torch", "oneDNN"}  # AMX's packed kernel runs 16-bit weights only


def test_measure_cpu_leaves_out_a_product_too_slow_to_time(monkeypatch):
    import torch

    from jsontune.bench import measure

    monkeypatch.setattr(measure, "_seconds", lambda fn: 1.0)  # every product takes a second: a slow bfloat16
    monkeypatch.setattr(measure, "_median_s", lambda fn, budget_s: 1.0)
    monkeypatch.setattr(measure, "linear_kernels", lambda dtype: {"torch": (lambda x, w: lambda: None, lambda k, n: 1)})
    rates = measure._linear_gflops(torch.float32, [(256, 512), (64, 64)], rows=2048, budget_s=0.5)
    # the probe (128 rows x 64 x 64 in 1 s, warmed up) makes 2048 x 64 x 64 a 16 s product: none fits in 2 s, so the
    # smallest weight is timed on the 256 rows that do
    assert rates == {"torch": {"256x64x64": pytest.approx(2 * 256 * 64 * 64 / 1e9)}}


# A decoder small enough to count by hand: hidden 8, 2 layers, 2 heads and 1 KV head of 4 dims, MLP 16, vocab 10.
TOY = FlopShape(hidden=8, layers=2, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=10)


def test_flops_of_a_forward_pass_counted_by_hand():
    # products of a layer (in x out): qkv 8 x 16, o 8 x 8, gate_up 8 x 32, down 16 x 8 = 576 weights
    assert TOY.linear_shapes() == ((8, 16), (8, 8), (8, 32), (16, 8))
    assert TOY.token_flops == 2 * 2 * 576 == 2304  # no FLOPs for the embedding lookup
    assert TOY.head_flops == 2 * 8 * 10 == 160
    # 3 prompt tokens, 2 new: 4 positions through the layers (the last token is never fed back); attention
    # 4 x 2 layers x 2 heads x 4 dims = 64 FLOPs per key, keys 1 + 2 + 3 + 4; the head twice (once per new token)
    assert sequence_flops(TOY, 3, 2) == 4 * 2304 + 64 * 10 + 2 * 160 == 10176
    # its first 2 positions computed already: positions 2 and 3 (keys 3 + 4), the head still twice
    assert sequence_flops(TOY, 3, 2, computed=2) == 2 * 2304 + 64 * 7 + 2 * 160 == 5376
    assert job_flops(TOY, [3, 5], 2) == 10176 + (6 * 2304 + 64 * 21 + 320) == 25664
    # a prefix cache served each prompt's first 2 positions: neither is computed, for either prompt
    assert job_flops(TOY, [3, 5], 2, cached=2) == 5376 + (4 * 2304 + 64 * 18 + 320) == 16064


def test_the_floor_computes_the_shared_head_once():
    assert shared_prefix([[1, 2, 3, 9], [1, 2, 3, 4, 5], [1, 2, 7]]) == 2
    assert shared_prefix([[1, 2], [1, 2, 3]]) == 2 and shared_prefix([[5], [6]]) == 0 and shared_prefix([]) == 0
    assert head_flops(TOY, 2) == 2 * 2304 + 64 * 3 == 4800
    # the head once, then prompt 3 from position 2 (5376) and prompt 5 from position 2: 4 positions, keys 3..6
    assert floor_flops(TOY, [3, 5], 2, shared=2) == 4800 + 5376 + (4 * 2304 + 64 * 18 + 320) == 20864
    assert floor_flops(TOY, [3, 5], 2, shared=0) == job_flops(TOY, [3, 5], 2)


def test_a_job_against_its_floor_as_run_and_for_1000_rows():
    floor = job_against_floor(TOY, [3, 5], 2, shared=2, flop_per_s=1000, load_s=2.0, gen_s=3.0, rows=1000)
    # the second prompt took the 2-token head from the cache the first filled: a mean of 1 position a prompt;
    # 7488 + 13120, where the exact count is the floor's 20864 (the mean moves 64 FLOPs of attention)
    cached = job_against_floor(TOY, [3, 5], 2, shared=2, flop_per_s=1000, load_s=2.0, gen_s=3.0, cached=1)
    assert cached == {**floor, "flops": 20928}
    assert floor == {
        "flops": 25664,
        "flops_floor": 20864,
        "job_s": 5.0,
        "floor_s": 20.864,
        "rows": 1000,
        "job_s_at_rows": 2.0 + 3.0 * 500,  # the start once, generation as 500 times the two rows
        "floor_s_at_rows": pytest.approx((4800 + (20864 - 4800) * 500) / 1000),  # the head once
    }


def test_the_count_matches_the_products_hf_runs(tiny_model):
    """torch's own FLOP counter over HF's generate on the tiny model: its matrix products are the layers' for
    P + T - 1 positions and the head's for T (the embedding and the prompt's logits cost nothing)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    shape = FlopShape.from_config(model.config.to_dict())
    ids = torch.arange(7).unsqueeze(0) + 10
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, min_new_tokens=3, do_sample=False)
    products = counter.get_flop_counts()["Global"]
    assert sum(products.values()) - shape.token_flops * (7 + 3 - 1) - shape.head_flops * 3 == sum(
        count for op, count in products.items() if "attention" in str(op) or "bmm" in str(op)
    )


def test_qwen3_0_6b_job_counts_what_a_forward_pass_does():
    from jsontune.offline import preset_config

    shape = FlopShape.from_config(preset_config("qwen3-0.6b").to_dict())
    assert shape.token_flops == 2 * 28 * (1024 * 4096 + 2048 * 1024 + 1024 * 6144 + 3072 * 1024) == 880_803_840
    # 32 prompts of 108 tokens x 16: 3.68 TFLOP, where 2 x 596M parameters x every token counted 4.73
    assert job_flops(shape, [108] * 32, 16) == pytest.approx(3.682e12, rel=1e-3)


def test_a_share_over_100_percent_says_why(cpu_spec):
    from dataclasses import asdict

    cpu_roof = {"cpu": asdict(cpu_spec)}
    assert share_note(0.97, cpu_roof) is None and share_note(1.0, cpu_roof) is None
    said = share_note(2.44, cpu_roof)
    assert said.startswith("ran at 244% of the ceiling, over the bound: the CPU's rates measured at the start")
    assert "load average 0.5" in said and "prefix cache" in said
    assert "datasheet" in share_note(1.2, {"gpu": {"name": "H100 SXM"}})
    assert "it took 31% of its prompt tokens from its prefix cache" in share_note(1.1, cpu_roof, cached=0.308)
