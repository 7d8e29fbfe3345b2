"""`from jsontune import Extractor`: the model loaded once, and what `predict` writes for the same texts."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from jsontune import Extraction, Extractor
from jsontune.cli.app import app
from jsontune.data import load_records
from jsontune.errors import JsontuneError
from jsontune.serving.base import GenerationParams
from jsontune.serving.settings import EngineSettings

runner = CliRunner()


def _predicted(out) -> list[dict | None]:
    with open(out, encoding="utf-8", newline="") as f:
        return [json.loads(row["prediction"]) if row["prediction"] else None for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def test_orders(synth_dir):
    return synth_dir / "test.jsonl"


def test_extract_gives_what_predict_writes_on_hf(merged_run, test_orders, tmp_path):
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(merged_run), "--input", str(test_orders), "--out", str(out)]
    result = runner.invoke(app, [*args, "--engine", "hf", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    records = load_records(test_orders).records
    with Extractor.load(merged_run, engine="hf", params=GenerationParams(max_new_tokens=24)) as extractor:
        assert extractor.extract([r.text for r in records]) == _predicted(out)
        extractions = extractor.extract_records(records)
        assert extractor.extract(records[0].text) == [extractions[0].prediction]  # one text alone
    assert extractor.engine.__dict__.get("model") is None  # closed on leaving the block: the model is freed
    assert [e.id for e in extractions] == [r.id for r in records]
    assert all(isinstance(e, Extraction) and e.output_tokens > 0 for e in extractions)
    assert [e.valid_json for e in extractions] == [row["valid_json"] == "true" for row in _rows(out)]
    repaired = [row["prediction"] != "" and row["valid_json"] == "false" for row in _rows(out)]
    assert [e.repaired for e in extractions] == repaired


def test_a_lora_adapter_is_served_as_predict_serves_it(tiny_model, trained_run, test_orders, tmp_path):
    lora = trained_run[0] / "best"
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(tiny_model), "--lora", str(lora), "--input", str(test_orders), "--out", str(out)]
    assert runner.invoke(app, [*args, "--engine", "hf", "--max-new-tokens", "12"]).exit_code == 0
    texts = [r.text for r in load_records(test_orders).records]
    with Extractor.load(tiny_model, engine="hf", lora=lora, params=GenerationParams(max_new_tokens=12)) as extractor:
        assert [e.raw_output for e in extractor.extract_records(texts)] == _raw(out)


def _rows(out) -> list[dict[str, str]]:
    with open(out, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _raw(out) -> list[str]:
    return [row["raw_output"] for row in _rows(out)]


def test_refusals_are_sentences(merged_run, tmp_path):
    with pytest.raises(JsontuneError, match="--guided-json needs --engine vllm"):
        Extractor.load(merged_run, engine="hf", guided_json=True)
    with pytest.raises(JsontuneError, match="is not a PEFT adapter folder"):
        Extractor.load(merged_run, engine="hf", lora=tmp_path)


@pytest.mark.vllm
def test_extract_gives_what_predict_writes_on_vllm(vllm_engine, merged_run, test_orders, tmp_path, monkeypatch):
    """predict runs on the session's engine; the Extractor loads a vLLM of its own, guided, as a user would."""
    from jsontune.serving import registry

    class Shared:  # the session's engine, left running when predict closes it
        name, settings = vllm_engine.name, vllm_engine.settings
        generate, reset_cache = vllm_engine.generate, vllm_engine.reset_cache
        stream, chunk_size = vllm_engine.stream, vllm_engine.chunk_size

        def close(self):
            pass

    out = tmp_path / "pred.csv"
    with monkeypatch.context() as patched:
        patched.setattr(registry, "make_engine", lambda *a, **k: Shared())
        args = ["predict", "--model", str(merged_run), "--input", str(test_orders), "--out", str(out)]
        result = runner.invoke(app, [*args, "--engine", "vllm", "--guided-json", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    texts = [r.text for r in load_records(test_orders).records]
    params, settings = GenerationParams(max_new_tokens=24), EngineSettings(dtype="float32")
    with Extractor.load(merged_run, engine="vllm", guided_json=True, params=params, settings=settings) as ex:
        extractions = ex.extract_records(texts)
    assert [e.raw_output for e in extractions] == _raw(out)
    # Guided outputs are strict JSON; one cut by --max-new-tokens 24 holds its object only after repair.
    assert all(e.valid_json for e in extractions if e.finish_reason == "stop")
    assert all(e.valid_json or e.repaired for e in extractions) and any(e.valid_json for e in extractions)


def test_the_engine_is_complete_when_built_and_the_auto_rule_is_the_extractors(merged_run, test_orders, monkeypatch):
    """Why `auto` took the engine was written into the engine's settings after it was built; it is the
    Extractor's own record now (predict's manifest adds it beside the engine's settings)."""
    from jsontune.serving import base, registry

    monkeypatch.setattr(registry, "vllm_available", lambda: None)  # as with vLLM's CPU build: nothing starts it
    monkeypatch.setattr(base, "vllm_build", lambda: "cpu")
    monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: False)  # both engines in float32: HF takes it
    loaded = load_records(test_orders)
    with Extractor.load(merged_run, "auto", fit=loaded, params=GenerationParams(max_new_tokens=4)) as extractor:
        assert extractor.engine.name == "hf-batch" and "engine_rule" not in extractor.engine.settings
        assert extractor.recorded["engine_rule"].startswith("auto: HF for a CPU job of")
