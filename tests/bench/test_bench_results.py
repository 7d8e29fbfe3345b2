"""A bench row is typed at the worker's JSON boundary, and bench.json keeps the keys readers rely on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from jsontune.bench.config import BenchConfig
from jsontune.bench.results import BenchResult, BenchRow

# What worker.run() writes to RESULT.json on CPU (tests/bench/test_bench_run.py checks a real one).
WORKER_RESULT = {
    "status": "ok",
    "engine_settings": {"dtype": "float32", "device": "cpu"},
    "load_s": 1.5,
    "warmup_s": 0.25,
    "gen_s": 2.0,
    "gen_s_repeats": [2.0, 2.5],
    "peak_rss_gb": 0.5,
    "children_rss_gb": 0.0,
    "torch_peak_gb": None,
    "gpu": None,
    "gpu_nvml_gb": None,
    "gpu_memory_method": None,
    "n_timed": 4,
    "extrapolated": False,
    "prompt_tokens": 360,
    "output_tokens": 32,
    "wrong_length": 0,
    "examples_per_s": 2.0,
    "output_tokens_per_s": 16.0,
    "device": "CPU test (2 CPUs)",
    "versions": {"torch": "2"},
    "prompts_sha256": "a" * 64,
}


def test_a_worker_result_round_trips_through_a_row():
    data = {"engine": "hf-batch", **WORKER_RESULT, "log": "w/hf-batch.log", "outputs": "w/hf-batch.outputs.jsonl"}
    row = BenchRow.from_dict(json.loads(json.dumps(data)))
    assert row.ok and row.gen_s_repeats == [2.0, 2.5] and row.speedup is None
    as_json = json.loads(json.dumps(dataclasses.asdict(row)))
    assert {k: as_json[k] for k in data} == data  # every key the worker wrote, with its value
    assert BenchRow.from_dict(as_json) == row


def test_a_key_no_field_holds_is_named():
    with pytest.raises(ValueError, match=r"'hf-seq' has keys that BenchRow does not know: tokens_per_sec, ttft_s"):
        BenchRow.from_dict({"engine": "hf-seq", **WORKER_RESULT, "ttft_s": 0.1, "tokens_per_sec": 16.0})


def test_rows_are_frozen():
    row = BenchRow("hf-seq", "ok", examples_per_s=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.speedup = 1.0  # type: ignore[misc]


def test_bench_json_has_the_config_keys_and_every_field_of_every_row():
    config = BenchConfig(model="m", n=8, engines=("hf-seq", "vllm"), out=Path("runs/b"))
    rows = [BenchRow.from_dict({"engine": "hf-seq", **WORKER_RESULT}), BenchRow("vllm", "skipped", reason="no vLLM")]
    result = BenchResult(
        config=config,
        rows=rows,
        rooflines={"float32": {"available": False, "reason": "CPU."}},
        model_path="m",
        random_weights=True,
        n=4,
        prompt_tokens_mean=90.0,
        prompt_tokens_max=100,
        prompts_sha256="a" * 64,
        engine_dtypes={"hf": "float32", "vllm": "bfloat16"},
    )
    saved = json.loads(json.dumps(result.to_json()))
    flags = {f.name for f in dataclasses.fields(BenchConfig)}
    job = {"skipped_rows", "command", "model_path", "random_weights", "mode", "n_requested", "input_label"}
    job |= {"prompt_tokens_mean", "prompt_tokens_max", "prompts_sha256", "engine_dtypes", "shared_prefix_tokens"}
    assert set(saved["config"]) == flags | job
    assert set(saved) == {"config", "rows", "rooflines"} and saved["rooflines"]["float32"]["reason"] == "CPU."
    assert saved["config"]["n"] == 4 and saved["config"]["n_requested"] == 8  # prompts run, -n asked
    assert saved["config"]["out"] == "runs/b" and saved["config"]["engines"] == ["hf-seq", "vllm"]
    assert saved["config"]["command"] == "jsontune bench --model m -n 8 --engines hf-seq,vllm --out runs/b"
    every = [f.name for f in dataclasses.fields(BenchRow)]
    assert [list(row) for row in saved["rows"]] == [every, every]
    assert saved["rows"][1]["reason"] == "no vLLM" and saved["rows"][1]["examples_per_s"] is None
