"""`jsontune bench` through typer's CliRunner, and the checks that run before any model is loaded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jsontune.bench.config import BenchConfig
from jsontune.bench.results import BenchResult, BenchRow
from jsontune.bench.runner import (
    load_inputs,
    resolve_model,
    with_quality,
    with_speedups,
)
from jsontune.cli.app import app
from jsontune.data import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.settings import EngineSettings


def test_natural_with_gold_scores_every_engine(tiny_model, synth_dir, tmp_path):
    from jsontune.data import load_records
    from jsontune.metrics import score
    from jsontune.parsing import find_json, valid_json

    test = synth_dir / "test.jsonl"
    args = [
        "bench",
        "--model",
        str(tiny_model),
        "--input",
        str(test),
        "--gold",
        str(test),
        "--natural",
        "-n",
        "4",
        "--max-new-tokens",
        "8",
        "--engines",
        "hf-seq,hf-batch",
        "--repeats",
        "1",
        "--warmup",
        "1",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} >= {"bench.json", "bench.md", "bench.png"}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "natural" and summary["n"] == 4
    assert set(summary["engines"]) == {"hf-seq", "hf-batch"}
    assert "bench speed" in result.stdout and "bench memory" in result.stdout and "bench quality" in result.stdout
    golds = [r.target for r in load_records(test).records[:4]]
    for row in json.loads((tmp_path / "bench.json").read_text())["rows"]:
        outputs = [json.loads(line)["text"] for line in Path(row["outputs"]).read_text().splitlines()]
        found = [find_json(text) for text in outputs]
        assert row["f1"] == score([f.value if f else None for f in found], golds)["f1"]
        assert row["json_valid_rate"] == sum(map(valid_json, found)) / 4
        assert row["json_repaired_rate"] == sum(bool(f and f.repaired) for f in found) / 4
        assert summary["engines"][row["engine"]]["f1"] == row["f1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engines", "hf-seq,turbo"], "list engines from hf-seq, hf-batch, vllm"),
        (["--engines", "hf-seq,hf-seq"], "each at most once"),
        (["--gold", "gold.jsonl"], "add --natural"),
        (["-n", "0"], "-n must be at least 1, got 0"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--ray", "--replicas", "0"], "--replicas must be at least 1, got 0"),  # checked where predict's is
        (["--replicas", "2"], "--replicas needs --ray"),
        (["--max-model-len", "0"], "--max-model-len must be at least 1, got 0"),
        (["--dtype", "int3"], "unknown dtype 'int3'"),
        (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization is a share in (0, 1], got 1.5"),
    ],
)
def test_bad_flags_are_one_sentence(args, message, tmp_path):
    result = CliRunner().invoke(app, ["bench", "--model", "tiny", "--out", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_gold_without_an_input_id_names_it(synth_dir, tmp_path):
    config = BenchConfig(
        model="tiny", input=synth_dir / "test.jsonl", gold=synth_dir / "val.jsonl", n=2, fixed_length=False
    )
    with pytest.raises(JsontuneError, match=r"val\.jsonl has no record for 2 of the input's ids \(the first: 'synth"):
        load_inputs(config)


def test_command_reruns_the_configuration():
    config = BenchConfig(model="runs/my model", n=6, engines=("hf-seq", "hf-batch"), fixed_length=False)
    assert config.command() == "jsontune bench --model 'runs/my model' -n 6 --engines hf-seq,hf-batch --natural"


def test_the_command_parses_back_to_the_same_configuration(tmp_path, monkeypatch):
    """bench.json's command reruns the same bench: every flag (a False optional bool as --no-x, --ray alone, a
    quoted path) read back by the real CLI gives an equal BenchConfig. `--no-in-process` was written as
    `--in-process`."""
    import shlex

    import jsontune.bench.runner

    config = BenchConfig(
        model="runs/my model",
        input=tmp_path / "in put.jsonl",
        n=7,
        engines=("hf-batch", "vllm"),
        fixed_length=False,
        seq_limit=3,
        out=tmp_path / "out",
        ray="local",
        replicas=2,
        settings=EngineSettings(dtype="bf16", in_process=False, trust_remote_code=True, kv_cache_gb=1.5, seed=4),
        columns=InputColumns(text_col="texto", skip_bad_rows=True),
    )
    assert "--no-in-process" in config.command().split()
    parsed = []

    def captured(config, on_engine):
        parsed.append(config)
        raise JsontuneError("parsed")

    monkeypatch.setattr(jsontune.bench.runner, "run_bench", captured)
    for asked in (config, replace(config, settings=replace(config.settings, in_process=True), ray="auto")):
        words = shlex.split(asked.command())
        assert words[:2] == ["jsontune", "bench"]
        result = CliRunner().invoke(app, words[1:])
        assert result.exit_code == 1 and "parsed" in result.output, result.output
        assert parsed.pop() == asked


def test_a_preset_is_built_once_then_reused(tmp_path, monkeypatch):
    import jsontune.offline

    path, random_weights = resolve_model("tiny", tmp_path)
    assert path == str(tmp_path / "tiny") and random_weights
    assert (tmp_path / "tiny" / "config.json").is_file()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the preset was built again")

    monkeypatch.setattr(jsontune.offline, "init_model", no_rebuild)
    assert resolve_model("tiny", tmp_path) == (path, True)


def test_speedups_are_new_rows_over_hf_seqs_examples_per_s():
    rows = [
        BenchRow("hf-batch", "ok", examples_per_s=6.0),
        BenchRow("vllm", "failed", reason="exit code 1"),
        BenchRow("hf-seq", "ok", examples_per_s=2.0),
    ]
    given = list(rows)
    assert [r.speedup for r in with_speedups(rows)] == [3.0, None, 1.0]
    assert rows == given and all(r.speedup is None for r in rows)  # nothing passed in was changed
    assert [r.speedup for r in with_speedups(rows[:2])] == [None, None]  # no hf-seq row, no speedups


def test_gold_is_matched_by_id_and_scored_in_input_order(tmp_path):
    """A gold file in another order still scores each output against its own row."""
    targets = {f"r{i}": {"producto": p, "cantidad": i + 1} for i, p in enumerate("ABC")}
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": k, "text": f"pedido {k}", "target": t}) + "\n" for k, t in targets.items())
    )
    (tmp_path / "gold.jsonl").write_text(
        "".join(json.dumps({"id": k, "text": f"pedido {k}", "target": targets[k]}) + "\n" for k in ["r2", "r0", "r1"])
    )
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(
        "".join(json.dumps({"text": json.dumps(t), "finish_reason": "stop"}) + "\n" for t in targets.values())
    )
    for gold in (tmp_path / "gold.jsonl", None):  # --gold, and --natural on the labelled input itself
        config = BenchConfig(model="m", input=tmp_path / "in.jsonl", gold=gold, fixed_length=False)
        _, golds, _ = load_inputs(config)
        scored = with_quality(BenchRow("hf-seq", "ok", outputs=str(outputs)), golds)
        assert scored.f1 == 1.0 and scored.exact_match == 1.0
    shifted = tmp_path / "shifted.jsonl"
    shifted.write_text(
        "".join(outputs.read_text().splitlines(keepends=True)[1:] + outputs.read_text().splitlines(keepends=True)[:1])
    )
    assert with_quality(BenchRow("hf-seq", "ok", outputs=str(shifted)), golds).f1 < 0.5


def test_fixed_length_asks_every_engine_for_exactly_max_new_tokens(tmp_path):
    from jsontune.bench.runner import engine_spec

    for fixed in (True, False):
        config = BenchConfig(model="m", max_new_tokens=24, fixed_length=fixed)
        for name in ("hf-seq", "hf-batch", "vllm"):
            params = engine_spec(name, config, "m", tmp_path)["params"]
            if fixed:
                assert params == {"max_new_tokens": 24, "min_new_tokens": 24, "ignore_eos": True}
            else:
                assert params == {"max_new_tokens": 24}


def test_bench_fails_when_no_engine_ran(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    args = [
        "bench",
        "--model",
        str(broken),
        "-n",
        "2",
        "--engines",
        "hf-batch",
        "--max-new-tokens",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path / "b"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "no engine ran to the end" in result.output
    row = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"][0]
    assert row["status"] == "failed" and "\n" not in row["reason"]


def _result(**changes) -> BenchResult:
    """A small BenchResult with no roofline, for what report.notes and to_json say of it."""
    made = {
        "config": BenchConfig(model="m"),
        "rows": [],
        "rooflines": {"float32": {"available": False, "reason": "CPU."}},
        "model_path": "m",
        "random_weights": False,
        "n": 2,
        "prompt_tokens_mean": 9.0,
        "prompt_tokens_max": 10,
        "prompts_sha256": "x",
        **changes,
    }
    return BenchResult(**made)


def test_bad_input_rows_are_skipped_with_a_note_and_the_flag_is_rerun(tmp_path):
    from jsontune.bench import report

    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a", "text": "10 de A"}\n{"id": "b", "text": ""}\n{"id": "c", "text": "5 de B"}\n')
    config = BenchConfig(model="m", input=data, columns=InputColumns(skip_bad_rows=True))
    records, _, skipped = load_inputs(config)
    assert [r.id for r in records] == ["a", "c"] and len(skipped) == 1
    assert config.command().endswith(f"--input {data} --skip-bad-rows")
    result = _result(config=config, engine_dtypes={"hf": "float32"}, skipped_rows=skipped)
    assert any(n.startswith("--skip-bad-rows: 1 bad --input rows skipped") for n in report.notes(result))
    assert result.to_json()["config"]["skipped_rows"] == skipped
    with pytest.raises(JsontuneError, match="--skip-bad-rows"):
        load_inputs(BenchConfig(model="m", input=data))


def test_each_engine_gets_the_dtype_its_predict_runs_and_auto_follows_vllm_on_a_gpu(tiny_model, monkeypatch):
    import torch

    from jsontune.bench.runner import engine_dtype, engine_dtypes
    from jsontune.serving.settings import EngineSettings

    assert engine_dtype(str(tiny_model), "float16", engine="hf") == "float16"
    assert engine_dtypes(str(tiny_model), BenchConfig(model="m", settings=EngineSettings(dtype="bf16"))) == {
        "hf": "bfloat16",
        "vllm": "bfloat16",
    }
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for has_bf16, vllm in ((True, "bfloat16"), (False, "float32")):  # CPU: vLLM's by the CPU, HF's float32
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda has=has_bf16: has)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        config = BenchConfig(model="m", engines=("hf-seq", "hf-batch", "vllm"))
        assert engine_dtypes(str(tiny_model), config) == {"hf": "float32", "vllm": vllm}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    stored = json.loads((tiny_model / "config.json").read_text()).get("dtype", "float32")
    for engine in ("hf", "vllm"):
        assert engine_dtype(str(tiny_model), "auto", engine=engine) == ("bfloat16" if stored == "float32" else stored)


def test_a_run_in_two_dtypes_says_so():
    from jsontune.bench import report

    rows = [BenchRow("hf-batch", "skipped", reason="-"), BenchRow("vllm", "skipped", reason="-")]
    result = _result(rows=rows, engine_dtypes={"hf": "float32", "vllm": "bfloat16"})
    said = [n for n in report.notes(result) if "different dtypes" in n]
    assert said == [
        "The engines ran in different dtypes, each in what predict runs it in (hf in float32, vllm in "
        "bfloat16); give --dtype to time them in one."
    ]
    assert not any("different dtypes" in n for n in report.notes(replace(result, engine_dtypes={"hf": "float32"})))


def test_natural_rows_report_schema_validity_and_cut_outputs(tmp_path):
    """Guided vs free decoding is compared on four rates: valid (strict) JSON, repaired, schema-valid and cut."""
    from jsontune.schema import infer_schema

    schema = infer_schema([{"producto": "A", "cantidad": 1}])
    texts = [
        ('{"producto": "B", "cantidad": 2}', "stop"),
        ('{"producto": "B"}', "stop"),  # missing a key
        ('{"producto": "aaaaaaaaaaaaaaaaaaaaaaaa', "length"),
        ("no JSON", "stop"),
        ('{"producto": "B\x07", "cantidad": 2}', "stop"),  # a raw control character: repaired, not strict
    ]
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("".join(json.dumps({"text": t, "finish_reason": r}) + "\n" for t, r in texts))
    row = BenchRow("vllm", "ok", outputs=str(outputs))
    scored = with_quality(row, None, schema)
    # the cut string and the control character are repaired into JSON, but neither fits the schema's strings
    assert (scored.json_valid_rate, scored.json_repaired_rate) == (0.4, 0.4)
    assert scored.schema_valid_rate == 0.2 and scored.cut_by_length == 1
    assert scored.f1 is None and scored.exact_match is None  # no gold
    assert row == BenchRow("vllm", "ok", outputs=str(outputs))  # a new row; the one passed in is as it was
    assert with_quality(scored, None).schema_valid_rate is None
