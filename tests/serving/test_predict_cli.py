"""`jsontune predict` end to end on the tiny model: CSV, summary, --gold, --resume and clear refusals."""

from __future__ import annotations

import csv
import json
import re

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.metrics import flatten
from jsontune.parsing import find_json, valid_json
from jsontune.predict import partial_path, predict
from jsontune.serving import registry
from jsontune.serving.base import Generation, GenerationParams, chunked
from jsontune.serving.settings import EngineSettings

runner = CliRunner()


@pytest.fixture
def orders(tmp_path, texts):
    path = tmp_path / "orders.jsonl"
    rows = [{"id": f"o{i}", "text": t, "target": {"producto": "A", "n": i}} for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _predict(model, orders, out, *extra):
    args = ["predict", "--model", str(model), "--input", str(orders), "--out", str(out), "--engine", "hf"]
    return runner.invoke(app, [*args, "--max-new-tokens", "6", *extra])


def _rows(out):
    with open(out, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_no_confidence_keeps_the_four_columns(tiny_model, orders, tmp_path):
    out = tmp_path / "pred.csv"
    assert _predict(tiny_model, orders, out, "--no-confidence").exit_code == 0
    assert list(_rows(out)[0]) == ["id", "prediction", "valid_json", "raw_output"]


def test_predict_writes_the_csv_and_a_summary(tiny_model, orders, tmp_path, texts):
    out = tmp_path / "pred.csv"
    result = _predict(tiny_model, orders, out, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert list(rows[0]) == ["id", "prediction", "valid_json", "raw_output", "confidence", "min_confidence"]
    assert [r["id"] for r in rows] == [f"o{i}" for i in range(len(texts))]
    for r in rows:  # a confidence per field of a strict object, the row's its lowest
        if r["valid_json"] == "true":
            fields = json.loads(r["confidence"])
            assert set(fields) == {p for p, _ in flatten(json.loads(r["prediction"]))}
            numbers = [v for v in fields.values() if v is not None]
            assert all(0 < v <= 1 for v in numbers)
            assert (float(r["min_confidence"]) if r["min_confidence"] else None) == (min(numbers) if numbers else None)
    assert {r["valid_json"] for r in rows} <= {"true", "false"}
    assert all(r["valid_json"] == "false" for r in rows if r["prediction"] == "")  # true only with an object
    assert all(valid_json(find_json(r["raw_output"])) == (r["valid_json"] == "true") for r in rows)
    assert "hf-batch" in result.output and "valid JSON" in result.output and "tokens/s" in result.output


class SameAnswer:
    """An engine that answers every prompt with o0's target: right for o0, half right for the rest."""

    name = "same-answer"
    settings = {"device": "test"}

    def generate(self, prompts, params, progress=None):
        return [Generation('{"producto": "A", "n": 0}', 1, 1, "stop") for _ in prompts]

    def stream(self, prompts, params, chunk_size, progress=None):
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows):
        return 256

    def close(self):
        pass


def test_gold_prints_evals_metrics(tiny_model, orders, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "make_engine", lambda *args, **kwargs: SameAnswer())
    out = tmp_path / "pred.csv"
    result = _predict(tiny_model, orders, out, "--gold", str(orders))
    assert result.exit_code == 0, result.output
    evaluated = runner.invoke(app, ["eval", str(out), "--gold", str(orders), "--json"])
    metrics = json.loads(evaluated.stdout)
    assert 0 < metrics["f1"] < 1
    table = r"eval.*?\n.*?precision.*?\n.*?\n.*?([\d.]+)\s.*?([\d.]+)\s.*?([\d.]+)"
    printed = re.search(table, result.output, re.S)
    assert printed, result.output
    assert [float(x) for x in printed.groups()] == pytest.approx(
        [metrics["precision"], metrics["recall"], metrics["f1"]], abs=1e-4
    )
    assert "per field" in result.output


def test_resume_with_the_real_engine_equals_an_uninterrupted_run(merged_run, orders, tmp_path, texts):
    """The confidence columns included (all null on this briefly trained model, which writes repaired JSON: the
    vLLM resume test compares numbers)."""
    reference = tmp_path / "reference.csv"
    assert _predict(merged_run, orders, reference, "--sequential", "--max-new-tokens", "64").exit_code == 0
    assert all(r["confidence"] for r in _rows(reference) if r["prediction"])

    out = tmp_path / "pred.csv"

    def interrupt(done, total):
        if done > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict(
            str(merged_run),
            orders,
            out,
            engine="hf",
            chunk_size=3,
            progress=interrupt,
            settings=EngineSettings(sequential=True),
            params=GenerationParams(max_new_tokens=64, logprobs=True),
        )
    assert len(partial_path(out).read_text().splitlines()) == 1 + 3  # the settings, then one chunk

    result = _predict(
        merged_run, orders, out, "--sequential", "--resume", "--chunk-size", "3", "--max-new-tokens", "64"
    )
    assert result.exit_code == 0, result.output
    assert "3 row(s) came from the unfinished run" in result.output
    assert [r["id"] for r in _rows(out)] == [f"o{i}" for i in range(len(texts))]
    assert out.read_bytes() == reference.read_bytes()
    assert not partial_path(out).exists()


def test_leftover_partial_without_resume_is_one_sentence(tiny_model, orders, tmp_path):
    out = tmp_path / "pred.csv"
    partial_path(out).write_text(json.dumps({"id": "o0", "raw_output": "{}"}) + "\n")
    result = _predict(tiny_model, orders, out)
    assert result.exit_code == 1
    assert "--resume" in result.output and "Traceback" not in result.output


def _one_sentence_error(result) -> str:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_engine_vllm_without_vllm_or_gpu_is_refused(tiny_model, orders, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "vllm" else real(name, *rest))
    args = ["predict", "--model", str(tiny_model), "--input", str(orders), "--out", str(tmp_path / "p.csv")]
    line = _one_sentence_error(runner.invoke(app, [*args, "--engine", "vllm"]))
    assert "--engine hf" in line and "vllm" in line


def test_sequential_is_an_hf_mode(tiny_model, orders, tmp_path):
    result = _predict(tiny_model, orders, tmp_path / "p.csv", "--sequential", "--engine", "vllm")
    line = _one_sentence_error(result)
    assert "--engine hf" in line


def test_missing_input_names_the_file(tiny_model, tmp_path):
    missing = tmp_path / "nope.jsonl"
    line = _one_sentence_error(_predict(tiny_model, missing, tmp_path / "p.csv"))
    assert "nope.jsonl" in line


def test_guided_json_needs_vllm(tiny_model, orders, tmp_path):
    line = _one_sentence_error(_predict(tiny_model, orders, tmp_path / "p.csv", "--guided-json"))
    assert "--engine vllm" in line


def test_bad_rows_are_named_or_skipped_and_counted(tiny_model, tmp_path):
    orders = tmp_path / "orders.jsonl"
    rows = [{"id": "a", "text": "10 de A"}, {"id": "b", "text": ""}, {"id": "c", "text": "5 de B"}]
    orders.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = _one_sentence_error(_predict(tiny_model, orders, tmp_path / "p.csv"))
    assert "orders.jsonl" in line and "--skip-bad-rows" in line
    out = tmp_path / "pred.csv"
    result = _predict(tiny_model, orders, out, "--skip-bad-rows")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in _rows(out)] == ["a", "c"]
    assert "skipped 1 bad input row" in result.output


def test_lora_that_is_not_an_adapter_is_one_sentence(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from jsontune.cli.app import app

    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "1", "text": "hola"}\n')
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            str(tiny_model),
            "--input",
            str(data),
            "--out",
            str(tmp_path / "p.csv"),
            "--engine",
            "hf",
            "--lora",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1 and "not a PEFT adapter folder" in result.output
    assert "Traceback" not in result.output


def test_out_that_is_a_folder_is_refused_before_any_work(tiny_model, orders, tmp_path):
    line = _one_sentence_error(_predict(tiny_model, orders, tmp_path))
    assert "is a folder" in line and "predictions.csv" in line
    assert not list(tmp_path.glob("*.partial*"))


def test_a_corrupt_weights_file_is_one_sentence(tiny_model, orders, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    line = _one_sentence_error(_predict(broken, orders, tmp_path / "p.csv"))
    assert "could not load the model from folder" in line and str(broken) in line


def test_a_local_looking_model_path_that_is_missing_fails_at_once(orders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    line = _one_sentence_error(_predict("data/model", orders, tmp_path / "p.csv"))
    assert "model folder data/model does not exist" in line


def test_chunk_size_zero_is_refused(tiny_model, orders, tmp_path):
    line = _one_sentence_error(_predict(tiny_model, orders, tmp_path / "p.csv", "--chunk-size", "0"))
    assert "--chunk-size must be at least 1" in line


def test_trust_remote_code_is_off_unless_asked(tiny_model, orders, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen = []
    for cls in (AutoModelForCausalLM, AutoTokenizer):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append(kwargs.get("trust_remote_code"))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    assert _predict(tiny_model, orders, tmp_path / "a.csv").exit_code == 0
    assert seen and not any(seen)
    seen.clear()
    assert _predict(tiny_model, orders, tmp_path / "b.csv", "--trust-remote-code").exit_code == 0
    assert seen and all(seen)


def test_a_run_refused_by_its_settings_leaves_no_sidecar_and_no_resume_hint(tiny_model, orders, tmp_path):
    """The HF engine refuses guided decoding when asked to generate: nothing was done, so nothing is left to
    resume (`--engine auto` takes vLLM for --guided-json, and --engine hf refuses it before the model loads)."""
    from jsontune.data import load_records
    from jsontune.errors import JsontuneError
    from jsontune.extractor import Extractor, Prompting
    from jsontune.predict import predict_with

    guided = GenerationParams(max_new_tokens=6, json_schema={"type": "object"})
    prompting = Prompting.resolve(str(tiny_model), params=guided)
    extractor = Extractor(registry.make_engine("hf", str(tiny_model)), prompting)
    out = tmp_path / "pred.csv"
    with pytest.raises(JsontuneError) as refused:
        predict_with(extractor, load_records(orders), out)
    assert str(refused.value) == "--guided-json needs --engine vllm; the HF engine cannot constrain decoding."
    assert not partial_path(out).exists() and not out.exists()


def _auto(model, orders, out, *extra):
    args = ["predict", "--model", str(model), "--input", str(orders), "--out", str(out), "--max-new-tokens", "24"]
    return runner.invoke(app, [*args, *extra])


def test_auto_takes_hf_for_a_small_job_where_both_engines_compute_in_float32(merged_run, orders, tmp_path, monkeypatch):
    from jsontune.serving import base

    monkeypatch.setattr(registry, "vllm_available", lambda: None)  # as with vLLM's CPU build: nothing starts it
    monkeypatch.setattr(base, "vllm_build", lambda: "cpu")
    monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: False)
    out, plain = tmp_path / "pred.csv", tmp_path / "hf.csv"
    result = _auto(merged_run, orders, out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "pred.csv.manifest.json").read_text())
    assert manifest["engine"] == "hf-batch" and manifest["engine_settings"]["engine_rule"].startswith(
        "auto: HF for a CPU job of"
    )
    assert _auto(merged_run, orders, plain, "--engine", "hf").exit_code == 0
    assert [r["raw_output"] for r in _rows(out)] == [r["raw_output"] for r in _rows(plain)]


@pytest.mark.vllm
def test_guided_json_with_the_default_engine_runs_a_small_job_on_vllm(merged_run, orders, tmp_path):
    """The schema is inferred from the training data `merged_run`'s manifest names; vLLM starts in this process."""
    out = tmp_path / "pred.csv"
    result = _auto(merged_run, orders, out, "--guided-json", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "pred.csv.manifest.json").read_text())
    assert manifest["engine"] == "vllm" and manifest["guided"] is True
    assert manifest["engine_settings"]["engine_rule"] == "auto: vLLM, for --guided-json"
    rows = _rows(out)
    assert [r["id"] for r in rows] == [f"o{i}" for i in range(len(rows))] and len(rows) == 7
    valid = sum(r["valid_json"] == "true" for r in rows)
    assert valid >= len(rows) - manifest["cut_by_length"] and valid > 0  # guided: strict JSON unless cut short
    assert not partial_path(out).exists()
