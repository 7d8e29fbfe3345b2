"""The real bench on CPU with the tiny model: every engine in its own worker process, files written.

No test asserts a speed: speeds are what the bench reports, so only their sanity is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsontune.bench import report, runner
from jsontune.bench.config import BenchConfig
from jsontune.bench.results import BenchRow
from jsontune.bench.runner import run_bench

N, T = 6, 8


@pytest.fixture(scope="module")
def fixed_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(model=str(tiny_model), n=N, max_new_tokens=T, repeats=1, warmup=1, out=out)
    return run_bench(config)


@pytest.fixture(scope="module")
def files(fixed_run):
    return report.write_all(fixed_run, fixed_run.config.out)


def test_every_output_file_is_written(fixed_run, files):
    assert json.loads(files["json"].read_text()) == json.loads(json.dumps(fixed_run.to_json(), default=str))
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = files["markdown"].read_text()
    assert "| hf-seq | ok |" in md and "| hf-batch | ok |" in md
    assert "the weights are random" in md
    assert fixed_run.config.command() in md


def test_one_row_per_engine_in_order(files):
    rows = json.loads(files["json"].read_text())["rows"]
    assert [r["engine"] for r in rows] == ["hf-seq", "hf-batch", "vllm"]


def test_a_row_is_its_workers_result_and_bench_json_holds_all_of_it(fixed_run, files):
    saved = json.loads(files["json"].read_text())["rows"]
    for row, as_saved in zip(fixed_run.rows, saved, strict=True):
        assert BenchRow.from_dict(as_saved) == row
    for row in fixed_run.rows[:2]:
        measured = json.loads(Path(row.log).with_name(f"{row.engine}.result.json").read_text())
        assert {key: getattr(row, key) for key in measured} == measured
        assert None not in (row.gen_s, row.output_tokens, row.peak_rss_gb, row.versions, row.prompts_sha256)


@pytest.mark.vllm
def test_the_vllm_row_ran_with_its_memory_and_cpu_settings(fixed_run):
    vllm = fixed_run.rows[2]
    assert vllm.status == "ok", vllm.reason
    assert vllm.output_tokens == N * T and vllm.wrong_length == 0 and vllm.n_timed == N
    settings = vllm.engine_settings
    # A job this small runs vLLM's engine in the worker's own process on a CPU; in child processes elsewhere.
    assert settings["in_process"] is (settings["device"] == "cpu") and settings["in_process_rule"].startswith("auto: ")
    assert vllm.peak_rss_gb > 0.05 and (vllm.children_rss_gb > 0) is not settings["in_process"]
    assert settings["max_model_len"] == fixed_run.prompt_tokens_max + T  # sized for the job
    assert settings["dtype"] == fixed_run.engine_dtypes["vllm"]  # what predict runs vLLM in
    if settings["device"] == "cpu":
        assert settings["enforce_eager"] and settings["kv_cache_gb"] > 0
    # Each timed run starts with an empty prefix cache; every prompt after the first reuses the 40-token head's
    # first 32 (one block on a CPU, two on a GPU). HF keeps no such cache.
    assert vllm.cached_tokens >= (N - 1) * 32 and fixed_run.rows[0].cached_tokens is None
    assert "| vllm | ok |" in report.markdown(fixed_run)


def test_hf_rows_record_their_settings(fixed_run):
    for row in fixed_run.rows[:2]:
        assert row.engine_settings["dtype"] == fixed_run.engine_dtypes["hf"]  # what predict runs HF in
        assert row.engine_settings["device"]  # cpu, or cuda:N


def test_hf_rows_generate_exactly_n_times_max_new_tokens(fixed_run):
    for row in fixed_run.rows[:2]:
        assert row.status == "ok"
        assert row.n_timed == N and not row.extrapolated
        assert row.output_tokens == N * T
        assert row.wrong_length == 0
        outputs = [json.loads(line) for line in Path(row.outputs).read_text().splitlines()]
        assert [o["output_tokens"] for o in outputs] == [T] * N


def test_hf_rows_have_positive_speeds_and_memory(fixed_run):
    for row in fixed_run.rows[:2]:
        assert row.load_s > 0 and row.gen_s > 0 and len(row.gen_s_repeats) == 1
        assert row.examples_per_s == pytest.approx(N / row.gen_s)
        assert row.output_tokens_per_s == pytest.approx(N * T / row.gen_s)
        assert row.peak_rss_gb > 0.05  # torch alone is more than that
        assert row.device and row.versions["torch"]


def test_speedups_are_over_hf_seq(fixed_run):
    seq, batch = fixed_run.rows[:2]
    assert seq.speedup == 1.0
    assert batch.speedup == pytest.approx(batch.examples_per_s / seq.examples_per_s)


def test_every_engine_ran_the_prompts_prompts_py_renders(fixed_run, tiny_model):
    from jsontune.bench.worker import prompts_sha256
    from jsontune.data.synth import generate_orders
    from jsontune.manifest import read_prompt_format
    from jsontune.modeling import load_tokenizer
    from jsontune.prompts import render_prompts

    texts = [r.text for r in generate_orders(N, seed=0)]
    expected = prompts_sha256(render_prompts(load_tokenizer(tiny_model), texts, read_prompt_format(tiny_model)))
    assert fixed_run.prompts_sha256 == expected
    assert [r.prompts_sha256 for r in fixed_run.rows[:2]] == [expected, expected]


def test_a_cpu_run_has_a_roofline_in_each_dtype_and_every_row_its_share_and_floor(fixed_run, files):
    """HF runs in float32 and vLLM, on a CPU with bf16 instructions, in bfloat16: the CPU's rates are measured in
    both, so every row has its share of the ceiling in its own dtype, and its job against its floor."""
    if any(r.gpu for r in fixed_run.rows):
        pytest.skip("ran on a GPU")
    ran = [r for r in fixed_run.rows if r.ok]
    assert set(fixed_run.rooflines) == {runner.row_dtype(r) for r in ran}
    for dtype, roof in fixed_run.rooflines.items():
        assert roof["available"] and roof["cpu"]["dtype"] == dtype
        assert roof["cpu"]["threads"] >= 1 and roof["cpu"]["gflops"] > 0 and roof["cpu"]["bandwidth_gb_s"] > 0
    for row in ran:
        roof = fixed_run.rooflines[runner.row_dtype(row)]
        assert row.roofline_share == pytest.approx(row.output_tokens_per_s / roof["ceiling_tokens_per_s"])
        assert (row.roofline_note is None) == (row.roofline_share <= 1)
        assert row.floor["flops_floor"] > 0 and row.floor["job_s"] > row.load_s
        if row.cached_tokens is None:  # HF computes every prompt whole
            assert row.floor["flops"] > row.floor["flops_floor"]
    assert fixed_run.shared_prefix_tokens > 0  # the chat header and the instruction
    md = files["markdown"].read_text()
    assert "No roofline" not in md and "## Floor" in md
    for dtype, roof in fixed_run.rooflines.items():
        assert f"Roofline in {dtype} on" in md and f"in {dtype} on {roof['cpu']['threads']} threads" in md
    saved = json.loads(files["json"].read_text())
    assert {roof["cpu"]["name"] for roof in saved["rooflines"].values()} == {fixed_run.rows[0].device}


def test_a_crashing_engine_is_a_failed_row_and_the_others_survive(tiny_model, tmp_path, monkeypatch):
    real_spec = runner.engine_spec

    def broken_batch(name, config, model, work, schema=None, replicas=None):
        spec = real_spec(name, config, model, work, schema, replicas)
        return {**spec, "model": str(tmp_path / "no-such-model")} if name == "hf-batch" else spec

    monkeypatch.setattr(runner, "engine_spec", broken_batch)
    config = BenchConfig(
        model=str(tiny_model),
        n=3,
        max_new_tokens=2,
        engines=("hf-batch", "hf-seq"),
        repeats=1,
        warmup=0,
        seq_limit=1,
        out=tmp_path / "out",
    )
    result = run_bench(config)
    failed, seq = result.rows
    assert failed.status == "failed"
    assert "no-such-model" in failed.reason and "does not exist" in failed.reason
    assert seq.status == "ok" and seq.speedup == 1.0
    # --seq-limit 1: one prompt timed, flagged, and its seconds scaled to all three in the table
    assert seq.extrapolated and seq.n_timed == 1 and seq.output_tokens == 2
    md = report.markdown(result)
    assert "| hf-batch | failed |" in md
    assert f"| hf-seq | ok | {seq.load_s:.1f} | {seq.gen_s * 3:.2f}* |" in md


def test_a_worker_past_its_timeout_is_stopped(tiny_model, tmp_path):
    config = BenchConfig(model=str(tiny_model), engines=("hf-seq",), out=tmp_path)
    spec = runner.engine_spec("hf-seq", config, str(tiny_model), tmp_path)
    row = runner.run_worker(spec, tmp_path, timeout_s=0.001)  # Python cannot even start in a millisecond
    assert row.status == "failed" and row.log == str(tmp_path / "hf-seq.log")
    assert row.reason.startswith("timed out after 0.001 s; raise --timeout-s or time fewer prompts")


def test_logprobs_rows_time_the_same_outputs_with_log_probs(tiny_model, tmp_path):
    """hf-batch+logprobs: what field confidences cost, on the very outputs hf-batch writes."""
    engines = ("hf-batch", "hf-batch+logprobs")
    config = BenchConfig(
        model=str(tiny_model), n=N, max_new_tokens=T, repeats=1, warmup=0, out=tmp_path, engines=engines
    )
    rows = {row.engine: row for row in run_bench(config).rows}
    assert all(row.ok for row in rows.values())
    outputs = [Path(rows[name].outputs).read_text() for name in engines]
    assert outputs[0] == outputs[1] and rows["hf-batch+logprobs"].output_tokens_per_s > 0
    spec = json.loads((tmp_path / "workers" / "hf-batch+logprobs.spec.json").read_text())
    assert spec["params"]["logprobs"] is True and spec["kind"] == "hf"
