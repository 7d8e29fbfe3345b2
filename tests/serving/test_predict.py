"""run_predictions: the CSV contract and resuming after an interruption (with a scripted engine); the engine
`--engine auto` takes for a job (`registry.auto_engine`)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict

import pytest

from jsontune.data import Record
from jsontune.device import inference_dtype
from jsontune.errors import JsontuneError
from jsontune.predict import COLUMNS, partial_path, run_predictions
from jsontune.serving.base import Generation, GenerationParams, chunked
from jsontune.serving.registry import AUTO_HF_MAX_TFLOP, auto_engine
from jsontune.serving.settings import EngineSettings
from jsontune.shape import job_tokens

ANSWERS = {
    "a": '{"producto": "A", "cantidad": 100}',
    "b": 'Claro:\n```json\n{"producto": "B",\n "precio_unitario": 12.5}\n```',
    "c": "no sé, lo siento",
    "d": '<think>\nhmm, "comillas", y comas\n</think>\n{"cantidad": 7}',
    "e": '{"producto": "E", "cantidad": 3',  # cut off by max_new_tokens: repaired, so not valid JSON
    "f": "[1, 2]",
    "g": "",
}
PARAMS = GenerationParams(max_new_tokens=8)


class ScriptedEngine:
    """Answers each prompt (a record's text) from ANSWERS and remembers what it was asked."""

    name = "scripted"
    settings = {"device": "test"}

    def __init__(self):
        self.asked: list[str] = []

    def generate(self, prompts, params, progress=None):
        self.asked += prompts
        generations = [Generation(ANSWERS[p], 10, len(ANSWERS[p]), "stop") for p in prompts]
        for _ in prompts:  # one prompt at a time, like the sequential baseline
            if progress:
                progress(1)
        return generations

    def stream(self, prompts, params, chunk_size, progress=None):
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows):
        return 256

    def close(self):
        pass


@pytest.fixture
def records():
    return [Record(id=f"id-{key}", text=key) for key in ANSWERS]


def _run(records, out, **kwargs):
    """run_predictions with each record's text as its prompt."""
    engine = kwargs.pop("engine", ScriptedEngine())
    return run_predictions(engine, records, [r.text for r in records], out, PARAMS, **kwargs)


def _sidecar(out, *lines, settings=None):
    """Write OUT's sidecar as a run with PARAMS (or `settings`) would have begun it."""
    header = json.dumps({"settings": settings or asdict(PARAMS)})
    partial_path(out).write_text("\n".join([header, *lines]) + "\n")


def _read(out):
    with open(out, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_csv_contract(records, tmp_path):
    out = tmp_path / "pred.csv"
    summary = _run(records, out, chunk_size=3)
    header, *rows = _read(out)
    assert tuple(header) == COLUMNS
    assert [row[0] for row in rows] == [r.id for r in records]  # input order, one row per id
    by_key = {row[0].removeprefix("id-"): row for row in rows}
    assert by_key["a"][1:3] == ['{"producto":"A","cantidad":100}', "true"]
    assert by_key["b"][1:3] == ['{"producto":"B","precio_unitario":12.5}', "true"]
    assert by_key["c"][1:3] == ["", "false"]
    assert by_key["d"][1:3] == ['{"cantidad":7}', "true"]
    assert by_key["e"][1:3] == ['{"producto":"E","cantidad":3}', "false"]  # the repaired object is kept
    assert by_key["f"][1:3] == ["", "false"]  # valid JSON, but not an object
    assert by_key["g"][1:3] == ["", "false"]
    assert [row[3] for row in rows] == list(ANSWERS.values())  # raw output survives newlines and quotes
    assert (summary.rows, summary.generated, summary.thinking_leaks) == (7, 7, 1)
    assert summary.valid_json_rate == pytest.approx(3 / 7) and summary.repaired_rate == pytest.approx(1 / 7)
    assert summary.output_tokens == sum(len(a) for a in ANSWERS.values())
    assert summary.engine == "scripted"
    assert not partial_path(out).exists()


def test_resume_after_interruption_loses_and_repeats_nothing(records, tmp_path):
    reference = tmp_path / "reference.csv"
    _run(records, reference, chunk_size=3)

    out = tmp_path / "pred.csv"

    def interrupt_in_second_chunk(done, total):
        if done > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(records, out, chunk_size=3, progress=interrupt_in_second_chunk)
    partial = partial_path(out)
    saved = [json.loads(line) for line in partial.read_text().splitlines()]
    assert saved[0] == {"settings": asdict(PARAMS)}
    assert [row["id"] for row in saved[1:]] == ["id-a", "id-b", "id-c"]
    assert not out.exists()

    engine, seen = ScriptedEngine(), []
    summary = _run(
        records, out, chunk_size=3, resume=True, engine=engine, progress=lambda done, total: seen.append(done)
    )
    assert engine.asked == ["d", "e", "f", "g"]  # only what the first run had not saved
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists()
    assert (summary.rows, summary.generated) == (7, 4)
    assert seen == [3, 4, 5, 6, 7]


def test_resume_drops_a_torn_last_line(records, tmp_path):
    out = tmp_path / "pred.csv"
    _sidecar(out, json.dumps({"id": "id-a", "raw_output": ANSWERS["a"]}), '{"id": "id-b", "raw_ou')
    engine = ScriptedEngine()
    _run(records, out, resume=True, engine=engine)
    assert engine.asked == list("bcdefg")
    assert [row[0] for row in _read(out)[1:]] == [r.id for r in records]


def test_a_leftover_partial_file_needs_resume(records, tmp_path):
    out = tmp_path / "pred.csv"
    _sidecar(out, json.dumps({"id": "id-a", "raw_output": "{}"}))
    with pytest.raises(JsontuneError, match="--resume"):
        _run(records, out)


def test_a_partial_file_from_another_input_is_refused(records, tmp_path):
    out = tmp_path / "pred.csv"
    _sidecar(out, json.dumps({"id": "other-7", "raw_output": "{}"}))
    with pytest.raises(JsontuneError, match="other-7"):
        _run(records, out, resume=True)


def test_resume_refuses_other_settings(records, tmp_path):
    out = tmp_path / "pred.csv"
    _sidecar(out, settings={**asdict(PARAMS), "max_new_tokens": 64})
    with pytest.raises(JsontuneError, match="different max_new_tokens"):
        _run(records, out, resume=True)
    _sidecar(out, settings={**asdict(PARAMS), "model": "m2"})
    with pytest.raises(JsontuneError, match="different model"):
        _run(records, out, resume=True, settings={"model": "m1"})
    _run(records, out, resume=True, settings={"model": "m2"})
    assert out.exists()


def test_resume_keeps_rows_whose_text_holds_unicode_line_breaks(records, tmp_path):
    out = tmp_path / "pred.csv"
    _sidecar(out, json.dumps({"id": "id-a", "raw_output": "uno\u2028dos\u0085tres"}, ensure_ascii=False))
    engine = ScriptedEngine()
    _run(records, out, resume=True, engine=engine)
    assert engine.asked == list("bcdefg")
    assert _read(out)[1][3] == "uno\u2028dos\u0085tres"


def test_the_manifest_records_rates_cut_rows_and_the_engines_settings(records, tmp_path):
    from jsontune.predict import manifest_path
    from jsontune.schema import infer_schema

    class CutEngine(ScriptedEngine):
        def generate(self, prompts, params, progress=None):
            return [
                replace(g, finish_reason="length" if p == "e" else "stop")
                for p, g in zip(prompts, super().generate(prompts, params, progress), strict=True)
            ]

    from dataclasses import replace

    schema = infer_schema([{"producto": "A", "cantidad": 1}])  # both keys required
    out = tmp_path / "pred.csv"
    summary = _run(records, out, engine=CutEngine(), schema=schema, settings={"model": "m"})
    assert summary.cut_by_length == 1 and not summary.guided
    assert summary.schema_valid_rate == pytest.approx(2 / 7)  # a and e have both keys; b and d miss one
    made = json.loads(manifest_path(out).read_text())
    assert made["kind"] == "predictions" and made["model"] == "m" and made["engine_settings"] == {"device": "test"}
    assert made["cut_by_length"] == 1 and made["schema"] == schema and made["rows"] == 7 and made["versions"]
    assert made["valid_json_rate"] == pytest.approx(3 / 7) and made["repaired_rate"] == pytest.approx(1 / 7)


def test_the_prefix_cache_share_is_this_runs_prompt_tokens_as_the_engine_counts_them(records, tmp_path):
    """Summary and manifest: the prompt tokens of the rows this run generated and those the engine took from its
    prefix cache (a resumed row is not counted again); an engine that does not say gives no share, not 0."""
    from dataclasses import replace

    from jsontune.predict import manifest_path
    from jsontune.serving.base import prefix_cache_line

    class Caching(ScriptedEngine):  # 10 prompt tokens a row; 8 from the cache, but none for "a" (the first)
        def generate(self, prompts, params, progress=None):
            made = super().generate(prompts, params, progress)
            return [replace(g, cached_tokens=0 if p == "a" else 8) for p, g in zip(prompts, made, strict=True)]

    out = tmp_path / "pred.csv"
    summary = _run(records, out, engine=Caching(), chunk_size=3)
    assert (summary.prompt_tokens, summary.cached_tokens) == (70, 48)
    made = json.loads(manifest_path(out).read_text())
    assert (made["prompt_tokens"], made["cached_tokens"], made["prefix_cache_share"]) == (70, 48, 48 / 70)
    assert prefix_cache_line(48, 70) == "prompt tokens from the prefix cache: 48 of 70 (68.6 %)"

    _sidecar(out, json.dumps({"id": "id-b", "raw_output": ANSWERS["b"], "prompt_tokens": 10, "output_tokens": 1}))
    resumed = _run(records, out, engine=Caching(), resume=True)
    assert (resumed.prompt_tokens, resumed.cached_tokens, resumed.prefix_cache_share) == (60, 40, 40 / 60)

    plain = _run(records, tmp_path / "plain.csv")  # ScriptedEngine says nothing of a cache, like HF
    assert (plain.prompt_tokens, plain.cached_tokens, plain.prefix_cache_share) == (70, None, None)
    assert json.loads(manifest_path(tmp_path / "plain.csv").read_text())["prefix_cache_share"] is None


def test_valid_json_is_strict_and_a_repaired_object_is_kept_with_false(tmp_path, monkeypatch):
    """The CSV rule: valid_json "true" only where json.loads reads the object as written; a repaired one (here a
    raw control character inside a string, as xgrammar's maxLength let through) is the prediction, with false."""
    monkeypatch.setitem(ANSWERS, "h", '{"producto": "H\x07", "cantidad": 1}')
    records = [Record(id=f"id-{key}", text=key) for key in "ahc"]
    summary = _run(records, tmp_path / "pred.csv")
    rows = {row[0]: row for row in _read(tmp_path / "pred.csv")[1:]}
    assert rows["id-a"][1:3] == ['{"producto":"A","cantidad":100}', "true"]
    assert rows["id-h"][1:] == ['{"producto":"H\\u0007","cantidad":1}', "false", ANSWERS["h"]]
    assert json.loads(rows["id-h"][1]) == {"producto": "H\x07", "cantidad": 1}  # the prediction itself is strict
    assert rows["id-c"][1:3] == ["", "false"]
    assert (summary.valid_json_rate, summary.repaired_rate) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_vllm_context_is_the_longest_prompt_plus_new_tokens_or_the_row_that_does_not_fit(tmp_path):
    from jsontune.data import LoadResult
    from jsontune.extractor import fit_context

    rows = LoadResult("in.jsonl", [Record(id="short", text="x"), Record(id="long", text="y")])
    assert fit_context(EngineSettings(), rows, [10, 120], 64).max_model_len == 184
    assert fit_context(EngineSettings(max_model_len=200), rows, [10, 120], 64).max_model_len == 200
    with pytest.raises(JsontuneError, match=r"in.jsonl: row 'long' has a prompt of 120 tokens.*--max-model-len 100"):
        fit_context(EngineSettings(max_model_len=100), rows, [10, 120], 64)


def test_max_new_tokens_is_checked_against_the_schema(tiny_model):
    from jsontune.extractor import _check_room
    from jsontune.modeling import load_tokenizer
    from jsontune.schema import infer_schema, longest_output, minimal_output

    schema = infer_schema([{"producto": "tornillos", "cantidad": 100, "precio_unitario": 12.5}])
    assert minimal_output(schema) == '{"producto":"","cantidad":0,"precio_unitario":0}'
    most = longest_output(schema)
    # {} + "producto":<18 chars, quoted> + "cantidad":<sign, 6 digits> + "precio_unitario":<sign, 5.6 digits> + 2 commas
    assert most == 2 + (10 + 1 + 20) + (10 + 1 + 7) + (17 + 1 + 13) + 2
    tokenizer = load_tokenizer(tiny_model)
    with pytest.raises(JsontuneError, match="--max-new-tokens 4 cannot hold even the shortest JSON"):
        _check_room(tokenizer, schema, 4)
    assert "would be cut" in _check_room(tokenizer, schema, most - 1)[0]
    assert _check_room(tokenizer, schema, most + 1) == []


def test_an_engine_failing_in_mid_run_says_what_is_saved_and_how_to_go_on(records, tmp_path):
    class FailsSecondChunk(ScriptedEngine):
        def generate(self, prompts, params, progress=None):
            if self.asked:
                raise JsontuneError("vLLM failed while generating (EngineDeadError: gone).")
            return super().generate(prompts, params, progress)

    out = tmp_path / "pred.csv"
    with pytest.raises(
        JsontuneError,
        match=r"gone\)\. The 3 row\(s\) done so far are saved in .*pred\.csv\.partial"
        r"\.jsonl; rerun with --resume",
    ):
        _run(records, out, engine=FailsSecondChunk(), chunk_size=3)
    summary = _run(records, out, resume=True, chunk_size=3)
    assert summary.generated == len(records) - 3


def test_resume_names_what_changed(records, tmp_path):
    """A sidecar records what made the rows (for a server: the model and checkpoint, not its URL)."""
    out = tmp_path / "pred.csv"

    class Stop(ScriptedEngine):
        def generate(self, prompts, params, progress=None):
            if self.asked:
                raise JsontuneError("stopped")
            return super().generate(prompts, params, progress)

    made_by = {"engine": "server", "model": "merged", "served_from": "/runs/merged", "prompt_format": {"v": 1}}
    with pytest.raises(JsontuneError, match="stopped"):
        run_predictions(Stop(), records, [r.text for r in records], out, PARAMS, settings=made_by, chunk_size=3)
    elsewhere = {**made_by, "served_from": "/runs/other"}
    with pytest.raises(
        JsontuneError, match=r"different served_from \(served_from \"/runs/merged\" then, \"/runs/other\" now\)"
    ):
        run_predictions(
            ScriptedEngine(), records, [r.text for r in records], out, PARAMS, settings=elsewhere, resume=True
        )
    summary = run_predictions(
        ScriptedEngine(), records, [r.text for r in records], out, PARAMS, settings=made_by, resume=True
    )
    assert summary.rows == len(records)


def test_a_run_refused_before_its_first_row_leaves_no_sidecar_and_no_resume_hint(records, tmp_path):
    class Refuses(ScriptedEngine):
        def generate(self, prompts, params, progress=None):
            raise JsontuneError("--guided-json needs --engine vllm; the HF engine cannot constrain decoding.")

    out = tmp_path / "pred.csv"
    with pytest.raises(JsontuneError) as refused:
        _run(records, out, engine=Refuses())
    assert str(refused.value) == "--guided-json needs --engine vllm; the HF engine cannot constrain decoding."
    assert not partial_path(out).exists() and not out.exists()
    # Rows an unfinished run saved are kept, and the hint says how to finish.
    _sidecar(out, json.dumps({"id": "id-a", "raw_output": "{}", "prompt_tokens": 1, "output_tokens": 1}))
    with pytest.raises(JsontuneError, match=r"The 1 row\(s\) done so far are saved in .*; rerun with --resume"):
        _run(records, out, engine=Refuses(), resume=True)
    assert len(partial_path(out).read_text().splitlines()) == 2


@pytest.fixture
def vllm_on_a_cpu(monkeypatch):
    """As where vLLM's CPU build is installed, whether or not it is: nothing starts vLLM here."""
    from jsontune.serving import base, registry

    monkeypatch.setattr(registry, "vllm_available", lambda: None)
    monkeypatch.setattr(base, "vllm_build", lambda: "cpu")


# The tiny model has 0.53M parameters: 0.3 TFLOP is some 280k tokens of work.
SMALL, LARGE = job_tokens([80] * 20, 64), job_tokens([200] * 2000, 64)


def _runs(model, settings, size, **asked):
    """The engine `auto` takes for a job of `size` tokens, and the dtype that engine computes in on a CPU."""
    kind, rule = auto_engine(str(model), settings, size, **asked)
    return kind, inference_dtype(settings.dtype, "cpu", engine=kind), rule


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_runs_a_small_job_and_a_large_one_in_the_same_precision(tiny_model, vllm_on_a_cpu, monkeypatch, has_bf16):
    """A row's answer does not depend on how many rows run with it: on a CPU with bf16 instructions vLLM would
    compute `auto` in bfloat16 and HF in float32, so every job runs on vLLM; without them both compute in float32,
    where HF's greedy answers are vLLM's (tests/serving/test_vllm.py), and a small job runs on HF."""
    monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: has_bf16)
    small, large = _runs(tiny_model, EngineSettings(), SMALL), _runs(tiny_model, EngineSettings(), LARGE)
    if has_bf16:
        assert small[:2] == large[:2] == ("vllm", "bfloat16")
        assert small[2] == large[2] and "only where both engines compute in float32" in small[2]
    else:
        assert (small[:2], large[:2]) == (("hf", "float32"), ("vllm", "float32"))
        assert small[2] == "auto: HF for a CPU job of 0.00307 TFLOP (at most 0.3; both in float32)"
        assert large[2].startswith("auto: vLLM for a CPU job of") and f"(over {AUTO_HF_MAX_TFLOP:g}" in large[2]


@pytest.mark.parametrize(
    ("settings", "runs"),
    [(EngineSettings(dtype="float32"), ("hf", "float32")), (EngineSettings(dtype="bf16"), ("vllm", "bfloat16"))],
)
def test_auto_takes_hf_for_a_small_job_only_in_float32_whatever_the_cpu(tiny_model, vllm_on_a_cpu, settings, runs):
    """--dtype float32 makes both engines compute in float32; HF's bfloat16 is not vLLM's."""
    assert _runs(tiny_model, settings, SMALL)[:2] == runs
    assert _runs(tiny_model, settings, LARGE)[:2] == (("vllm",) + runs[1:])


@pytest.mark.parametrize(
    ("settings", "asked", "rule"),
    [
        (EngineSettings(), {"guided": True}, "auto: vLLM, for --guided-json"),
        (EngineSettings(), {"ray": True}, "auto: vLLM, for --ray"),
        (EngineSettings(kv_cache_gb=1.0), {}, "auto: vLLM, for the vLLM settings given"),
    ],
)
def test_auto_takes_vllm_for_a_small_job_that_asks_for_it(
    tiny_model, vllm_on_a_cpu, monkeypatch, settings, asked, rule
):
    monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: False)  # where a small job would run on HF
    assert auto_engine(str(tiny_model), settings, SMALL, **asked) == ("vllm", rule)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_takes_hf_for_a_lora_adapter_vllm_would_have_to_serve_in_float32(
    tiny_model, vllm_on_a_cpu, monkeypatch, has_bf16
):
    """vLLM serves LoRA in bfloat16 or float16 only: where `auto` would run it in float32 (a CPU without bf16
    instructions, or --dtype float32), a job of any size with an adapter runs on HF instead of being refused."""
    monkeypatch.setattr("jsontune.device.cpu_has_bf16", lambda: has_bf16)
    for settings in (EngineSettings(), EngineSettings(dtype="float32")):
        vllm_in_float32 = settings.dtype == "float32" or not has_bf16
        for size in (SMALL, LARGE):
            kind, rule = auto_engine(str(tiny_model), settings, size, lora=True)
            assert kind == ("hf" if vllm_in_float32 else "vllm")
            assert ("for a LoRA adapter in float32" in rule) is vllm_in_float32
    # Guided decoding needs vLLM all the same: its own sentence then says what to do about the dtype.
    assert auto_engine(str(tiny_model), EngineSettings(dtype="float32"), LARGE, lora=True, guided=True)[0] == "vllm"


def test_auto_is_vllm_on_a_gpu(tiny_model, vllm_on_a_cpu, monkeypatch):
    from jsontune.serving import base

    monkeypatch.setattr(base, "vllm_build", lambda: "cuda")
    assert auto_engine(str(tiny_model), EngineSettings(dtype="float32"), SMALL) == ("vllm", "auto: vLLM on a GPU")
