"""The bench's rooflines, one in each dtype the engines ran in, and what each row is held against: its share of
the ceiling (with a note when over 100 %) and its whole job against the fewest FLOPs it needs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from jsontune.bench.results import BenchRow
from jsontune.bench.roofline import FlopShape, job_against_floor, job_flops
from jsontune.bench.runner import job_roofline, job_rooflines, with_floors, with_roofline_shares

LENGTHS = [90] * 10  # 10 prompts of 90 tokens, 8 new tokens each


def _gpu_row(tokens_per_s: float) -> BenchRow:
    return BenchRow("hf-batch", "ok", gpu="NVIDIA H100 80GB HBM3", output_tokens_per_s=tokens_per_s)


def _cpu_row(engine: str, tokens_per_s: float, dtype: str, **fields) -> BenchRow:
    settings = {"device": "cpu", "dtype": dtype}
    return BenchRow(engine, "ok", output_tokens_per_s=tokens_per_s, engine_settings=settings, **fields)


def test_roofline_share_of_a_gpu_row(tiny_model):
    manifest = json.loads((tiny_model / "jsontune.json").read_text())
    rows = [replace(_gpu_row(1000.0), engine_settings={"dtype": "bfloat16"}), BenchRow("vllm", "failed", reason="x")]
    roof = job_roofline(rows, str(tiny_model), "bfloat16", LENGTHS, new_tokens=8)
    assert roof["available"] and roof["gpu"]["name"] == "H100 SXM"
    assert roof["model"]["params"] == manifest["parameters"]
    config = json.loads((tiny_model / "config.json").read_text())
    assert roof["flops"] == job_flops(FlopShape.from_config(config), LENGTHS, 8)
    shared = with_roofline_shares(rows, {"bfloat16": roof})
    assert shared[0].roofline_share == pytest.approx(1000.0 / roof["ceiling_tokens_per_s"])
    assert shared[1] == rows[1] and rows[0].roofline_share is None  # new rows; the ones passed in are as they were


@pytest.mark.parametrize(
    ("rows", "dtype", "reason"),
    [
        ([_gpu_row(1.0)], "auto", "the weights are float32"),
        ([replace(_gpu_row(1.0), gpu="NVIDIA GeForce RTX 4090")], "bfloat16", "is not in the roofline table"),
        ([replace(_gpu_row(1.0), gpu=None)], "bfloat16", "its matmul and copy rates in bfloat16 were not measured"),
        ([BenchRow("vllm", "skipped", reason="no vLLM")], "bfloat16", "no engine finished"),
    ],
)
def test_no_roofline_says_why(tiny_model, rows, dtype, reason):
    roof = job_roofline(rows, str(tiny_model), dtype, LENGTHS, new_tokens=8)
    assert roof["available"] is False and reason in roof["reason"]
    assert with_roofline_shares(rows, {dtype: roof}) == rows


def test_every_cpu_row_gets_a_share_of_the_ceiling_in_its_own_dtype(tiny_model, cpu_spec):
    """HF in float32 beside vLLM in bfloat16, as `--dtype auto` runs them on a CPU with bf16 instructions: each
    is held against the CPU's rates in its own dtype."""
    rows = [_cpu_row("hf-batch", 30.0, "float32"), _cpu_row("vllm", 20.0, "bfloat16"), BenchRow("x", "failed")]
    cpus = {"float32": replace(cpu_spec, dtype="float32", gflops=50.0), "bfloat16": cpu_spec}
    roofs = job_rooflines(rows, str(tiny_model), ["float32", "bfloat16", "float32"], LENGTHS, 8, cpus)
    assert list(roofs) == ["float32", "bfloat16"]
    assert [roofs[d]["cpu"]["gflops"] for d in roofs] == [50.0, 100.0]
    batch, vllm, failed = with_roofline_shares(rows, roofs)
    assert batch.roofline_share == pytest.approx(30.0 / roofs["float32"]["ceiling_tokens_per_s"])
    assert vllm.roofline_share == pytest.approx(20.0 / roofs["bfloat16"]["ceiling_tokens_per_s"])
    assert batch.roofline_note is None and vllm.roofline_note is None and failed == rows[2]


def test_a_share_over_100_percent_comes_with_a_note(tiny_model, cpu_spec):
    rows = [_cpu_row("vllm", 1.0, "bfloat16")]
    roofs = job_rooflines(rows, str(tiny_model), ["bfloat16"], LENGTHS, 8, {"bfloat16": cpu_spec})
    fast = roofs["bfloat16"]["ceiling_tokens_per_s"] * 2.44
    (row,) = with_roofline_shares([replace(rows[0], output_tokens_per_s=fast)], roofs)
    assert row.roofline_share == pytest.approx(2.44)
    assert row.roofline_note.startswith("ran at 244% of the ceiling, over the bound")
    hits = replace(rows[0], output_tokens_per_s=fast, prompt_tokens=900, cached_tokens=300)
    (row,) = with_roofline_shares([hits], roofs)
    assert "it took 33% of its prompt tokens from its prefix cache" in row.roofline_note


def test_a_cpu_row_beside_gpu_rows_has_no_share_of_the_gpus_roofline(tiny_model):
    rows = [replace(_gpu_row(1000.0), engine_settings={"dtype": "bfloat16"}), _cpu_row("hf-seq", 5.0, "bfloat16")]
    roofs = job_rooflines(rows, str(tiny_model), ["bfloat16"], LENGTHS, 8, {})
    gpu, cpu = with_roofline_shares(rows, roofs)
    assert gpu.roofline_share is not None and cpu.roofline_share is None
    assert cpu.roofline_note == "ran on the CPU and the roofline is NVIDIA H100 80GB HBM3's: no share."


def test_each_row_is_held_against_the_floor_of_its_own_answers(tiny_model, cpu_spec):
    timing = {"load_s": 2.0, "gen_s": 1.5, "n_timed": 5, "output_tokens": 5 * 6}  # --seq-limit 5: 6 tokens each
    rows = [_cpu_row("hf-seq", 30.0, "bfloat16", **timing), BenchRow("vllm", "skipped", reason="no vLLM")]
    roofs = job_rooflines(rows, str(tiny_model), ["bfloat16"], LENGTHS, 8, {"bfloat16": cpu_spec})
    seq, skipped = with_floors(rows, roofs, str(tiny_model), LENGTHS, shared=40)
    shape = FlopShape.from_config(json.loads((tiny_model / "config.json").read_text()))
    # the first 5 of 10 prompts timed in 1.5 s: all 10 take 3 s; its answers are 6 tokens long
    assert seq.floor == job_against_floor(shape, LENGTHS, 6, 40, 100e9, load_s=2.0, gen_s=3.0)
    assert seq.floor["flops"] > seq.floor["flops_floor"] and skipped == rows[1]
    # vLLM took 5 x 32 prompt tokens from its prefix cache: 32 positions a prompt it did not compute
    vllm = _cpu_row("vllm", 30.0, "bfloat16", **timing, prompt_tokens=5 * 90, cached_tokens=5 * 32)
    (cached,) = with_floors([vllm], roofs, str(tiny_model), LENGTHS, shared=40)
    assert cached.floor == job_against_floor(shape, LENGTHS, 6, 40, 100e9, 2.0, 3.0, cached=32)
    assert cached.floor["flops"] < seq.floor["flops"]
    no_rate = {"bfloat16": {"available": False, "reason": "none"}}
    assert with_floors(rows, no_rate, str(tiny_model), LENGTHS, shared=40) == rows
