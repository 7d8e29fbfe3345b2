"""Tables and notes from hand-made rows: what the report says about estimated, odd or missing numbers."""

from __future__ import annotations

import json
from pathlib import Path

from jsontune.bench import report
from jsontune.bench.config import BenchConfig
from jsontune.bench.results import BenchResult, BenchRow
from jsontune.serving.settings import EngineSettings

HASH = "a" * 64


def _row(engine: str, **fields) -> BenchRow:
    row = {
        "engine": engine,
        "status": "ok",
        "load_s": 2.0,
        "gen_s": 4.0,
        "n_timed": 10,
        "extrapolated": False,
        "examples_per_s": 2.5,
        "output_tokens_per_s": 160.0,
        "speedup": 1.0,
        "wrong_length": 0,
        "prompts_sha256": HASH,
        "peak_rss_gb": 1.0,
        "children_rss_gb": 0.5,
        "gpu_nvml_gb": None,
        "torch_peak_gb": None,
        "device": "CPU test",
        "versions": {"python": "3"},
    }
    return BenchRow.from_dict({**row, **fields})


def _result(rows: list[BenchRow], n: int = 40, n_requested: int = 40, natural: bool = False, **flags) -> BenchResult:
    """A run of `n` prompts for -n `n_requested`, fixed-length unless `natural`; `flags` are BenchConfig's."""
    return BenchResult(
        config=BenchConfig(model="m", input=Path("in.jsonl"), n=n_requested, fixed_length=not natural, **flags),
        rows=rows,
        rooflines={"float32": {"available": False, "reason": "CPU."}},
        model_path="m",
        random_weights=False,
        n=n,
        prompt_tokens_mean=90.0,
        prompt_tokens_max=100,
        prompts_sha256=HASH,
        engine_dtypes={"hf": "float32"},
    )


def test_extrapolated_seconds_are_scaled_to_all_prompts_and_starred():
    result = _result([_row("hf-seq", extrapolated=True)])
    assert report.speed_rows(result) == [["hf-seq", "ok", "2.0", "16.00*", "2.50", "160.0", "—", "1.00×", "—"]]
    assert any(note.startswith("* hf-seq was timed on the first 10 of 40") for note in report.notes(result))


def test_memory_adds_the_children_to_the_workers_peak():
    assert report.memory_rows(_result([_row("vllm")])) == [["vllm", "1.50", "—", "—"]]


def test_notes_flag_wrong_lengths_other_prompts_short_input_and_missing_hf_seq():
    rows = [
        _row("hf-batch", wrong_length=3, prompts_sha256="b" * 64),
        BenchRow("vllm", "failed", reason="exit code 1: CUDA out of memory"),
    ]
    notes = report.notes(_result(rows, n=10, n_requested=1000))
    assert "--input has 10 rows, fewer than -n 1000: all were used." in notes
    assert "hf-batch: 3 of 10 outputs did not have exactly 64 tokens, so its run was not fixed-length." in notes
    assert "hf-batch ran different prompts (hash bbbbbbbbbbbb); do not compare it." in notes
    assert "vllm failed: exit code 1: CUDA out of memory" in notes
    assert "No speedups: they are measured against a finished hf-seq row." in notes
    assert notes[-1] == "No roofline in float32: CPU."


def test_natural_mode_adds_a_quality_table():
    rows = [
        _row("hf-seq", json_valid_rate=0.5, json_repaired_rate=0.25, cut_by_length=3, f1=0.5, exact_match=0.25),
        _row("vllm-guided", json_valid_rate=1.0, json_repaired_rate=0.0, schema_valid_rate=1.0, cut_by_length=0),
    ]
    md = report.markdown(_result(rows, natural=True))
    assert "| engine | valid JSON | repaired | schema-valid | cut | F1 | exact match |" in md
    assert "| hf-seq | 50.0% | 25.0% | — | 3 | 0.5000 | 0.2500 |" in md
    assert "| vllm-guided | 100.0% | 0.0% | 100.0% | 0 | — | — |" in md
    assert "## Quality" not in report.markdown(_result(rows))


def test_summary_line_is_one_json_object_per_engine():
    result = _result([_row("hf-seq"), BenchRow("vllm", "skipped", reason="no vLLM")])
    line = json.dumps(report.summary_line(result, {"json": Path("out/bench.json")}))
    parsed = json.loads(line)
    assert parsed["engines"]["hf-seq"]["examples_per_s"] == 2.5
    assert parsed["engines"]["vllm"] == {key: None for key in report.SUMMARY_KEYS} | {"status": "skipped"}
    assert parsed["files"] == {"json": "out/bench.json"}


def test_vllm_gpu_memory_is_explained_as_its_reservation():
    result = _result(
        [_row("hf-batch", gpu_nvml_gb=1.2), _row("vllm", gpu_nvml_gb=70.0)],
        settings=EngineSettings(gpu_memory_utilization=0.9),
    )
    said = [n for n in report.notes(result) if "reserves up front" in n]
    assert len(said) == 1 and said[0].startswith("vllm's GPU memory") and "0.9" in said[0]


def _cpu_roofline(cpu: dict, ceiling: float) -> dict:
    return {
        "available": True,
        "device": cpu["name"],
        "cpu": cpu,
        "batch": 40,
        "bound": "compute",
        "flops": 3.68e12,
        "lower_bound_s": 4.0,
        "ceiling_tokens_per_s": ceiling,
    }


FLOOR = {
    "flops": 3.68e12,
    "flops_floor": 2.58e12,
    "job_s": 40.0,
    "floor_s": 10.0,
    "rows": 1000,
    "job_s_at_rows": 1000.0,
    "floor_s_at_rows": 250.0,
}


def test_every_cpu_row_is_rendered_with_the_share_of_the_ceiling_in_its_dtype(cpu_spec):
    from dataclasses import asdict

    fp32 = {**asdict(cpu_spec), "dtype": "float32", "gflops": 50.0}
    rows = [
        _row("hf-batch", roofline_share=0.25, floor=FLOOR),
        _row("vllm", roofline_share=2.44, roofline_note="ran at 244% of the ceiling, over the bound: why."),
    ]
    result = _result(rows)
    result.engine_dtypes, result.shared_prefix_tokens = {"hf": "float32", "vllm": "bfloat16"}, 40
    result.rooflines = {"float32": _cpu_roofline(fp32, 320.0), "bfloat16": _cpu_roofline(asdict(cpu_spec), 640.0)}
    assert [row[-1] for row in report.speed_rows(result)] == ["25.0%", "244.0%"]
    said = report.notes(result)
    assert "vllm ran at 244% of the ceiling, over the bound: why." in said
    assert "The 40 prompts share their first 40 tokens: the floor computes them once." in said
    assert said[-1] == (
        "Roofline in bfloat16 on test (2 CPUs) [AVX2, AVX-512; torch's kernels AVX512], measured at the start in "
        "bfloat16 on 2 threads in 2.0 s: products 100.0 GFLOP/s (the best median of torch 80.0, oneDNN 100.0 on "
        "2048 rows by the model's 2 linear weights), copy 10.0 GB/s (1.00 GiB), 16.0 GiB free, load average 0.5 "
        "(other work on these cores lowers the rates): 40 prompts × 64 tokens (3.68 TFLOP) take at least 4.000 s "
        "(compute-bound at batch 40), a ceiling of 640 output tok/s."
    )
    assert said[-2].startswith("Roofline in float32 on test (2 CPUs)") and "products 50.0 GFLOP/s" in said[-2]
    md = report.markdown(result)
    assert "| hf-batch | ok | 2.0 | 16.00 | 2.50 | 160.0 | — | 1.00× | 25.0% |" in md and said[-1] in md
    assert "| engine | FLOPs done / fewest | job s / floor s | 1,000 rows: job s / floor s |" in md
    assert "| hf-batch | 3.68 TFLOP / 2.58 TFLOP (1.4×) | 40.0 / 10.00 (4.0×) | 1,000 / 250.0 (4.0×) |" in md
    assert "| vllm |" not in md.split("## Floor")[1]  # no floor without one
    summary = report.summary_line(result, {})
    assert summary["engines"]["hf-batch"]["roofline_share"] == 0.25
    assert summary["ceiling_tokens_per_s"] == {"float32": 320.0, "bfloat16": 640.0}
    result.rooflines["bfloat16"]["ceiling_tokens_per_s"] = 4.367  # a CPU's ceiling can be a few tokens a second
    assert report.roofline_sentence(result, "bfloat16").endswith("a ceiling of 4.37 output tok/s.")
