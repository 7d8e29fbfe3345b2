"""vLLM, run for real: `make` installs its CPU build where there is no GPU, so these run in every `make test`.

vLLM starts cost ~20 s each on 2 CPUs, so the float32 engine over the trained tiny model is one per session
(`vllm_engine` in tests/conftest.py); only the tests that need another model or dtype start their own.
The pieces that need no vLLM (progress, LoRA rank, the settings and refusals before a start) are below too.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from jsontune.errors import JsontuneError
from jsontune.modeling import load_tokenizer
from jsontune.prompts import render_prompts
from jsontune.serving.base import GenerationParams, chunked
from jsontune.serving.registry import make_engine
from jsontune.serving.settings import EngineSettings
from jsontune.serving.vllm_engine import _max_lora_rank, progress_bar, startup_error

PARAMS = GenerationParams(max_new_tokens=16)


def _maybe_tqdm(it, *, use_tqdm, **tqdm_kwargs):
    """vllm/utils/tqdm_utils.py of vLLM 0.26, verbatim but for the import: how prompts are wrapped while
    they are rendered (entrypoints/offline_utils.py `_add_completion_requests`)."""
    from tqdm.auto import tqdm

    if not use_tqdm:
        return it
    tqdm_func = use_tqdm if callable(use_tqdm) else tqdm
    return tqdm_func(it, **tqdm_kwargs)


def test_progress_bar_reports_what_vllm_counts():
    seen = []
    factory = progress_bar(seen.append)
    # What vLLM 0.26's LLM.generate does with the factory: first around the prompts as it renders them ...
    rendered = [p.upper() for p in _maybe_tqdm(["a", "b", "c", "d", "e"], use_tqdm=factory, desc="Rendering prompts")]
    assert rendered == ["A", "B", "C", "D", "E"] and seen == [], "rendering is not generation progress"
    # ... then LLM._run_engine's bar, updated as requests finish.
    bar = factory(total=5, desc="Processed prompts", dynamic_ncols=True, postfix="")
    for n in (2, 3):
        bar.postfix = f"est. speed input: {10 / bar.format_dict['elapsed']:.2f} toks/s"
        bar.update(n)
    bar.refresh()
    bar.close()
    assert seen == [2, 3] and bar.n == 5


@pytest.mark.parametrize(("rank", "expected"), [(8, 8), (16, 16), (20, 32), (64, 64)])
def test_max_lora_rank_holds_the_adapter(tmp_path, rank, expected):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
    assert _max_lora_rank(str(tmp_path)) == expected


def test_lora_needs_an_adapter_folder(tmp_path):
    with pytest.raises(JsontuneError, match="adapter_config.json"):
        _max_lora_rank(str(tmp_path))


@pytest.mark.parametrize("dtype", ["float32", "fp32"])
def test_lora_in_float32_is_refused_before_vllm_loads(tmp_path, dtype):
    from jsontune.serving.vllm_engine import VLLMEngine

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(JsontuneError, match="bfloat16 or float16 only"):
        VLLMEngine("any-model", EngineSettings(dtype=dtype), lora=str(tmp_path))


# Start-up errors that jsontune catches before vLLM starts, each one sentence (these start no engine).
@pytest.mark.vllm
@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"kv_cache_gb": 1e-6}, r"one sequence of --max-model-len 2048 needs .* GiB of KV cache .* --kv-cache-gb"),
        pytest.param(
            {"kv_cache_gb": 1e6},
            r"--kv-cache-gb 1e\+06 is more than the .* GiB of memory free now",
            marks=pytest.mark.cpu_only,  # the CPU engine's KV cache is RAM
        ),
        ({"max_model_len": 10**6}, r"--max-model-len 1000000 is longer than .* allows \(2048 positions\)"),
        pytest.param(
            {"block_size": 16}, r"--block-size 16: vLLM on a CPU takes a multiple of 32", marks=pytest.mark.cpu_only
        ),
        ({"dtype": "float64"}, r"unknown dtype 'float64'; choose one of: auto, float32, bfloat16, float16"),
    ],
)
def test_start_up_problems_are_one_sentence_before_vllm_starts(tiny_model, options, says):
    with pytest.raises(JsontuneError, match=says):
        make_engine("vllm", str(tiny_model), EngineSettings(**options))


def test_a_dead_engine_process_is_named_by_its_root_cause():
    """vLLM's parent learns only that its child died; the child's last real error line is the sentence."""
    log = [
        "(Worker pid=7) INFO 11-30 01:31:16 [cpu_model_runner.py:68] Starting to load model m...",
        "(Worker pid=7) ERROR 11-30 01:31:17 [multiproc_executor.py:953] Traceback (most recent call last):",
        "(Worker pid=7) ERROR 11-30 01:31:17 [multiproc_executor.py:953] safetensors._safetensors_rust."
        "SafetensorError: Error while deserializing header: incomplete metadata",
        "(EngineCore pid=6) ERROR 11-30 01:31:19 [core.py:1510] Exception: WorkerProc initialization failed "
        "due to an exception in a background process. See stack trace for root cause.",
    ]
    error = RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
    settings = {"device": "cpu", "dtype": "float32"}
    assert startup_error(error, "m", settings, log) == (
        "vLLM could not start m on cpu (float32): SafetensorError: Error while deserializing header: "
        "incomplete metadata"
    )
    assert "vLLM's log above says why" in startup_error(error, "m", settings, [])


@pytest.mark.vllm
def test_a_corrupt_checkpoint_is_one_sentence_with_the_cause(tiny_model, tmp_path):
    """The real thing: vLLM's worker process fails to load truncated weights; the user reads why."""
    import shutil
    import struct

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = (broken / "model.safetensors").read_bytes()
    header = struct.unpack("<Q", weights[:8])[0]
    (broken / "model.safetensors").write_bytes(weights[: 8 + header + 100])  # the header whole, the data cut
    with pytest.raises(JsontuneError) as caught:
        make_engine("vllm", str(broken))
    message = str(caught.value)
    print(f"\n{message}")
    assert message.startswith(f"vLLM could not start {broken} on ") and "SafetensorError" in message
    assert "\n" not in message


@pytest.fixture(scope="module")
def order_prompts(merged_run, synth_dir):
    """40 synthetic orders in the trained model's own prompt format."""
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format

    records = load_records(synth_dir / "train.jsonl").records[:40]
    return render_prompts(load_tokenizer(merged_run), [r.text for r in records], read_prompt_format(merged_run))


def _agreement(a, b) -> float:
    return sum(x.token_ids == y.token_ids for x, y in zip(a, b, strict=True)) / len(a)


def _generate(engine_name, model, prompts, params=PARAMS, lora=None, **options):
    if engine_name == "vllm":  # on a GPU, beside the session's engine
        options.setdefault("gpu_memory_utilization", 0.3)
    engine = make_engine(engine_name, str(model), EngineSettings(**options), lora=lora)
    try:
        return engine.generate(prompts, params)
    finally:
        engine.close()


@pytest.mark.vllm
def test_hf_and_vllm_give_the_same_logprobs_in_float32(vllm_engine, merged_run, order_prompts):
    """Each generated token's log-probability, HF (raw logits, log-softmax) against vLLM (raw_logprobs)."""
    params = GenerationParams(max_new_tokens=24, logprobs=True)
    hf = _generate("hf", merged_run, order_prompts, params, dtype="float32", batch_size=8)
    vllm = vllm_engine.generate(order_prompts, params)
    same = [(h, v) for h, v in zip(hf, vllm, strict=True) if h.token_ids == v.token_ids]
    assert len(same) >= 0.9 * len(hf)
    for h, v in same:
        assert len(h.logprobs) == len(h.token_ids) == len(v.logprobs) > 0
        assert max(abs(a - b) for a, b in zip(h.logprobs, v.logprobs, strict=True)) < 1e-3
    assert any(min(h.logprobs) < -0.01 for h, _ in same)  # not all certain: a comparison that could fail
    assert not vllm_engine.generate(order_prompts[:2], GenerationParams(max_new_tokens=4))[0].logprobs


@pytest.mark.vllm
def test_the_engine_records_the_settings_it_chose(vllm_engine):
    settings = vllm_engine.settings
    assert settings["dtype"] == "float32" and settings["max_model_len"] == 512
    if settings["device"] == "cpu":  # eager, and a KV cache sized for the job, not vLLM's guess
        assert settings["enforce_eager"] is True and 0 < settings["kv_cache_gb"] < 1
        assert settings["cpus"] == os.cpu_count() and "omp_threads_bind" in settings and "ld_preload" in settings


MULTIPROCESSING = "VLLM_ENABLE_V1_MULTIPROCESSING"
# Qwen3-0.6B's shape: 596M parameters, so 1 TFLOP is about 840 tokens of work.
QWEN3_06B = {
    "hidden_size": 1024,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
}


@pytest.mark.parametrize(
    ("settings", "device", "server", "expected"),
    [
        (EngineSettings(job_tokens=800), "cpu", False, (True, "auto: a CPU, a job of 0.954 TFLOP (at most 1)")),
        (EngineSettings(job_tokens=10_000), "cpu", False, (False, "auto: a CPU, a job of 11.9 TFLOP (over 1)")),
        (EngineSettings(), "cpu", False, (True, "auto: a CPU, a job of unknown size")),
        (EngineSettings(job_tokens=10), "cuda", False, (False, "auto: on a GPU, vLLM's own processes")),
        (EngineSettings(job_tokens=10), "cpu", True, (False, "auto: a server keeps vLLM's own processes")),
        (EngineSettings(in_process=True), "cpu", True, (True, "asked")),
        (EngineSettings(job_tokens=10**9, in_process=True), "cpu", False, (True, "asked")),
        (EngineSettings(job_tokens=10, in_process=False), "cpu", False, (False, "asked")),
    ],
)
def test_where_the_engine_runs_follows_the_job(settings, device, server, expected):
    from jsontune.serving.vllm_engine import engine_env, in_process

    assert in_process(settings, QWEN3_06B, device, server=server) == expected
    assert engine_env({"in_process": expected[0], "device": device}).get(MULTIPROCESSING) == (
        "0" if expected[0] else None
    )


@pytest.mark.vllm  # no engine starts: vLLM's build says the device
@pytest.mark.parametrize("in_process", [False, True])
def test_engine_args_return_the_environment_vllm_needs_and_leave_this_ones_alone(tiny_model, monkeypatch, in_process):
    """`engine_args` once set VLLM_WORKER_MULTIPROC_METHOD and VLLM_CPU_NUM_OF_RESERVED_CPU in this process's
    environment; now the environment is a value, applied where vLLM starts, and a value the user set wins."""
    from jsontune.serving.vllm_engine import engine_args, engine_env

    method, reserved = "VLLM_WORKER_MULTIPROC_METHOD", "VLLM_CPU_NUM_OF_RESERVED_CPU"
    for name in (method, reserved, MULTIPROCESSING):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = dict(os.environ)
    args, chosen = engine_args(str(tiny_model), EngineSettings(in_process=in_process))
    assert dict(os.environ) == before
    env = engine_env(chosen)
    assert env[method] == "spawn" and env.get(MULTIPROCESSING) == ("0" if in_process else None)
    if chosen["device"] == "cpu":
        assert env[reserved] == "0" and chosen["reserved_cpus"] == ("none (in process)" if in_process else "0")
        monkeypatch.setenv(reserved, "1")
        assert engine_env(chosen)[reserved] == "1"


@pytest.mark.parametrize(
    ("settings", "device", "dtype", "lora", "server", "expected"),
    [
        # 400 TFLOP of Qwen3-0.6B's work is about 336,000 tokens: 2,000 rows of the demo's prompts and 64 new tokens.
        (EngineSettings(job_tokens=340_000), "cpu", "bfloat16", None, False, (True, "a job of 405 TFLOP (over 400)")),
        (EngineSettings(job_tokens=330_000), "cpu", "bfloat16", None, False, (False, "a job of 393 TFLOP (at most")),
        (EngineSettings(job_tokens=340_000), "cpu", "float16", None, False, (True, "over 400")),
        (EngineSettings(job_tokens=10**9), "cpu", "float32", None, False, (False, "in float32")),
        (EngineSettings(), "cpu", "bfloat16", None, False, (False, "a job of unknown size")),
        (EngineSettings(job_tokens=10**9), "cpu", "bfloat16", None, True, (False, "a server starts eager")),
        (EngineSettings(job_tokens=10**9), "cpu", "bfloat16", "adapter", False, (False, "runs LoRA eager")),
        (EngineSettings(job_tokens=10), "cuda", "bfloat16", None, False, (None, "vLLM's default")),
        (EngineSettings(job_tokens=10, compile=True), "cpu", "float32", None, True, (True, "asked")),
        (EngineSettings(job_tokens=10**9, compile=False), "cpu", "bfloat16", None, False, (False, "asked")),
        (EngineSettings(compile=False), "cuda", "bfloat16", "adapter", False, (False, "asked")),
    ],
)
def test_whether_vllm_compiles_follows_the_job_and_its_dtype(settings, device, dtype, lora, server, expected):
    from jsontune.serving.vllm_engine import compiled, engine_env

    chosen, rule = compiled(settings, QWEN3_06B, device, dtype, lora=lora, server=server)
    assert chosen is expected[0] and expected[1] in rule
    # Compiling on a CPU, vLLM's older compile cache (its AOT artifact does not load on vLLM 0.32's CPU build).
    env = engine_env({"in_process": False, "device": device, "compile": chosen})
    assert env.get("VLLM_USE_AOT_COMPILE") == ("0" if chosen and device == "cpu" else None)


def test_compile_with_a_lora_adapter_on_a_cpu_is_one_sentence():
    from jsontune.serving.vllm_engine import compiled

    with pytest.raises(JsontuneError, match=r"--compile: vLLM runs a LoRA adapter eager on a CPU; merge it first"):
        compiled(EngineSettings(compile=True), QWEN3_06B, "cpu", "bfloat16", lora="adapter", server=False)


@pytest.mark.vllm  # no engine starts: vLLM's build says the device
@pytest.mark.parametrize("compile", [None, False, True])
def test_compile_becomes_vllms_enforce_eager(tiny_model, monkeypatch, compile):
    from jsontune.serving.vllm_engine import engine_args, engine_env

    monkeypatch.delenv("VLLM_USE_AOT_COMPILE", raising=False)
    args, chosen = engine_args(str(tiny_model), EngineSettings(compile=compile, job_tokens=1000))
    if chosen["device"] != "cpu":  # vLLM compiles by default on a GPU; --no-compile makes it eager
        assert args.get("enforce_eager") is (True if compile is False else None)
        return
    eager = compile is not True  # the tiny job of 1,000 tokens is eager by default
    assert args.get("enforce_eager") is (True if eager else None) and chosen["enforce_eager"] is eager
    assert chosen["compile"] is not eager and (chosen["compile_rule"] == "asked") is (compile is not None)
    assert engine_env(chosen).get("VLLM_USE_AOT_COMPILE") == (None if eager else "0")
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")  # the user's value wins
    assert engine_env(chosen).get("VLLM_USE_AOT_COMPILE") == (None if eager else "1")


def test_the_job_size_comes_from_its_prompts():
    from jsontune.extractor import fit_context

    fitted = fit_context(EngineSettings(), None, [100, 120, 80], new_tokens=64)
    assert fitted.job_tokens == 300 + 3 * 64 and fitted.max_model_len == 184


def test_in_process_is_a_vllm_setting_in_one_sentence(synth_dir, tmp_path):
    from typer.testing import CliRunner

    from jsontune.cli.app import app

    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            str(tmp_path / "never-loaded"),
            "--input",
            str(synth_dir / "test.jsonl"),
            "--out",
            str(tmp_path / "p.csv"),
            "--engine",
            "hf",
            "--in-process",
        ],
    )
    assert result.exit_code != 0
    assert (
        "--in-process is a vllm setting; the hf engine does not take it (drop --in-process, or use --engine vllm)."
        in " ".join(result.output.split())
    )


@pytest.mark.vllm
def test_the_engine_in_this_process_gives_the_session_engines_tokens(
    vllm_engine, merged_run, synth_dir, order_prompts, tmp_path
):
    """One more vLLM start, in the pytest process: no child process appears, the same greedy tokens as the
    session's engine (in its own processes), the manifest says where it ran, and the process is given back."""
    import psutil
    import torch

    from jsontune.data import load_records
    from jsontune.extractor import Extractor, Prompting
    from jsontune.predict import predict_with

    assert vllm_engine.settings["in_process"] is False  # the session's: --no-in-process
    children = {c.pid for c in psutil.Process().children(recursive=True)}
    import vllm.envs

    set_threads, environment = torch.set_num_threads, dict(os.environ)
    engine = make_engine(
        "vllm",
        str(merged_run),
        EngineSettings(dtype="float32", max_model_len=512, gpu_memory_utilization=0.3, in_process=True),
    )
    try:
        assert {c.pid for c in psutil.Process().children(recursive=True)} <= children  # vLLM started none
        assert engine.settings["in_process"] is True and engine.settings["in_process_rule"] == "asked"
        params = GenerationParams(max_new_tokens=24)
        here, there = engine.generate(order_prompts[:12], params), vllm_engine.generate(order_prompts[:12], params)
        rate = _agreement(here, there)
        assert len({g.token_ids for g in here}) >= 3, "outputs must differ for a real comparison"
        assert rate == 1.0 if engine.device == "cpu" else rate >= 0.9
        loaded = load_records(synth_dir / "test.jsonl")
        loaded.records = loaded.records[:6]
        prompting = Prompting.resolve(str(merged_run), params=GenerationParams(max_new_tokens=24))
        predict_with(Extractor(engine, prompting), loaded, tmp_path / "p.csv")
    finally:
        engine.close()
    manifest = json.loads((tmp_path / "p.csv.manifest.json").read_text())
    assert manifest["engine_settings"]["in_process"] is True
    assert manifest["engine_settings"]["omp_threads_bind"] == "none (in process)" or engine.device != "cpu"
    assert torch.set_num_threads is set_threads and os.environ.get(MULTIPROCESSING) == environment.get(MULTIPROCESSING)
    assert not vllm.envs._is_envs_cache_enabled()  # vLLM reads the environment afresh again
    assert vllm_engine.generate(order_prompts[:2], params)[0].token_ids == there[0].token_ids  # still serves


@pytest.mark.vllm
def test_a_compiled_engine_writes_the_eager_engines_tokens(vllm_engine, merged_run, order_prompts):
    """--compile fuses the norms and activations; in float32 on a CPU the greedy tokens stay the session's (eager)
    engine's, token for token, and the engine records that it compiled and why."""
    assert vllm_engine.settings["compile"] in (False, None)  # the session's: eager on a CPU, vLLM's on a GPU
    engine = make_engine(
        "vllm",
        str(merged_run),
        EngineSettings(dtype="float32", max_model_len=512, gpu_memory_utilization=0.3, in_process=False, compile=True),
    )
    try:
        assert engine.settings["compile"] is True and engine.settings["compile_rule"] == "asked"
        params = GenerationParams(max_new_tokens=24)
        compiled, eager = engine.generate(order_prompts[:12], params), vllm_engine.generate(order_prompts[:12], params)
    finally:
        engine.close()
    assert len({g.token_ids for g in eager}) >= 3, "outputs must differ for a real comparison"
    rate = _agreement(compiled, eager)
    assert rate == 1.0 if engine.device == "cpu" else rate >= 0.9


@pytest.mark.vllm
def test_the_prompt_head_every_row_shares_is_computed_once_and_changes_no_token(
    vllm_engine, merged_run, synth_dir, tmp_path, monkeypatch
):
    """predict reports the prompt tokens vLLM took from its prefix cache (its own count) in its summary and its
    manifest. The cache reuses whole blocks: with the default block (32 on a CPU) the 40-token head every row
    shares fills one, so every row after the first reuses it, 30 % of the test set's prompt tokens (none with
    vLLM's CPU block of 128). An engine with --no-prefix-caching writes the very same tokens (float32)."""
    from typer.testing import CliRunner

    from jsontune.cli.app import app
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format
    from jsontune.predict import manifest_path
    from jsontune.serving import registry
    from jsontune.serving.base import prefix_cache_line

    test = synth_dir / "test.jsonl"
    tokenizer = load_tokenizer(merged_run)
    prompts = render_prompts(tokenizer, [r.text for r in load_records(test).records], read_prompt_format(merged_run))
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    block = vllm_engine.settings["block_size"]
    block = block if isinstance(block, int) else 16  # vLLM's own on a GPU
    # What the cache can serve a prompt: its longest head in common with an earlier prompt, in whole blocks, and
    # never its last token (computed to sample from).
    expected = sum(
        min(max(len(os.path.commonprefix([x, y])) for y in ids[:i]), len(x) - 1) // block * block
        for i, x in enumerate(ids)
        if i
    )
    vllm_engine.reset_cache()  # the session's engine may have seen these prompts
    monkeypatch.setattr(registry, "make_engine", lambda *a, **k: _Counting(vllm_engine))
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(merged_run), "--input", str(test), "--out", str(out), "--max-new-tokens", "24"]
    result = CliRunner().invoke(app, [*args, "--engine", "vllm"])
    assert result.exit_code == 0, result.output
    made = json.loads(manifest_path(out).read_text())
    total = sum(map(len, ids))
    assert (made["cached_tokens"], made["prompt_tokens"]) == (expected, total) and made["prefix_cache_share"] >= 0.3
    assert prefix_cache_line(expected, total) in " ".join(result.output.split())

    params = GenerationParams(max_new_tokens=24)
    warm = vllm_engine.generate(prompts, params)  # every prompt but its last token from the cache now
    assert sum(g.cached_tokens for g in warm) >= total - len(prompts) * block
    off = _generate("vllm", merged_run, prompts, params, dtype="float32", max_model_len=512, prefix_caching=False)
    assert {g.cached_tokens for g in off} == {0}
    assert len({g.token_ids for g in off}) >= 5, "outputs must differ for a real comparison"
    if vllm_engine.device != "cpu":  # a GPU's kernels may round a cached head's keys differently
        assert _agreement(warm, off) >= 0.9
        return
    assert [g.token_ids for g in warm] == [g.token_ids for g in off]
    with out.open(encoding="utf-8", newline="") as f:
        assert [row["raw_output"] for row in csv.DictReader(f)] == [g.text for g in off]
    print(f"\n{prefix_cache_line(expected, total)} (block {block}); cache off: the same tokens")


@pytest.mark.vllm
def test_vllm_greedy_equals_hf_greedy(vllm_engine, merged_run, order_prompts):
    params = GenerationParams(max_new_tokens=24)
    got = vllm_engine.generate(order_prompts, params)
    expected = _generate("hf", merged_run, order_prompts, params, dtype="float32", batch_size=8)
    rate = _agreement(got, expected)
    print(f"\nvLLM ({vllm_engine.device}) vs HF greedy, float32, {len(order_prompts)} prompts: {rate:.1%} identical")
    assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]  # the same tokens went in
    assert len({g.token_ids for g in expected}) >= 5, "outputs must differ for a real comparison"
    # On a CPU both run the same float32 arithmetic; a GPU's kernels may round differently.
    assert rate == 1.0 if vllm_engine.device == "cpu" else rate >= 0.9


@pytest.mark.vllm
def test_guided_json_always_parses_and_fits_the_schema(vllm_engine, merged_run, order_prompts):
    from jsonschema import Draft202012Validator

    from jsontune.parsing import extract_json, find_json, valid_json
    from jsontune.schema import guided_json_schema, longest_output, schema_valid_rate

    schema = guided_json_schema(None, [str(merged_run)])  # inferred from the run's training data, every field bounded
    params = GenerationParams(max_new_tokens=longest_output(schema))  # room for the longest answer allowed
    free = vllm_engine.generate(order_prompts, GenerationParams(max_new_tokens=params.max_new_tokens))
    guided = vllm_engine.generate(order_prompts, replace(params, json_schema=schema))
    for name, outputs in (("free", free), ("guided", guided)):
        found = [find_json(g.text) for g in outputs]
        print(
            f"\n{name} decoding: valid JSON {sum(map(valid_json, found)) / len(found):.0%}, repaired "
            f"{sum(bool(f and f.repaired) for f in found) / len(found):.0%}, schema-valid "
            f"{schema_valid_rate([f.value if f else None for f in found], schema):.0%}, "
            f"cut {sum(g.finish_reason == 'length' for g in outputs)}"
        )
    assert [g.finish_reason for g in guided] == ["stop"] * len(guided), "a guided output ran into the cap"
    values = [json.loads(g.text) for g in guided]  # whole documents, strict JSON, no repair
    assert values == [extract_json(g.text) for g in guided]  # and the pipeline's parser reads the same
    validator = Draft202012Validator(schema)
    assert all(validator.is_valid(v) for v in values)


ODD_ORDERS = [
    "necesito\tcosas: 3 de eso y 2 de lo otro, luego vemos el precio",
    "¿Me mandan 1.000.000 de tornillos a 0,0001 € c/u? Gracias!!!",
    'PEDIDO URGENTE >>> 12 cajas {de} guantes "talla M" a $1,250.50',
    "hola",
    "",
    '\\ " {} [] ñandú 🙏 €€€ \u2028 x',
    "Producto: —\nCantidad: cero\nPrecio unitario: gratis",
    "quiero 7 litros de pintura blanca marca Ñ&Q (ref #A-12/7) por 99,99 pesos cada uno, sin IVA",
]


@pytest.mark.vllm
def test_guided_output_is_strict_json_on_a_barely_trained_model(barely_trained, synth_dir, tmp_path):
    """What a client's plain `json.loads` reads, on every row: texts the model never saw, through the predict
    job, decoded under the inferred schema by a model that has not learned what belongs in a string."""
    import csv

    from jsontune.data import Record, load_records
    from jsontune.data.synth import generate_orders
    from jsontune.manifest import read_prompt_format
    from jsontune.predict import run_predictions
    from jsontune.schema import guided_json_schema, longest_output

    seen = {r.text for split in ("train", "val", "test") for r in load_records(synth_dir / f"{split}.jsonl").records}
    unseen = [r for r in generate_orders(60, seed=2024) if r.text not in seen][:40]
    records = unseen + [Record(id=f"odd-{i}", text=text) for i, text in enumerate(ODD_ORDERS)]
    prompts = render_prompts(
        load_tokenizer(barely_trained), [r.text for r in records], read_prompt_format(barely_trained)
    )
    schema = guided_json_schema(None, [str(barely_trained)])
    # Characters, not tokens, bound an answer: a token of a multi-byte character may be one byte of it.
    params = GenerationParams(max_new_tokens=4 * longest_output(schema), json_schema=schema)
    engine = make_engine(
        "vllm", str(barely_trained), EngineSettings(dtype="float32", max_model_len=1024, gpu_memory_utilization=0.3)
    )
    try:
        summary = run_predictions(engine, records, prompts, tmp_path / "pred.csv", params)
    finally:
        engine.close()
    with (tmp_path / "pred.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    not_strict = []
    for row in rows:
        try:
            json.loads(row["raw_output"])
        except ValueError as e:
            not_strict.append(f"{row['id']}: {row['raw_output']!r} ({e})")
    print(f"\nguided, 6-step model, {len(rows)} unseen texts: {len(not_strict)} not strict JSON")
    assert not not_strict, f"{len(not_strict)} of {len(rows)} raw outputs are not strict JSON:\n" + "\n".join(
        not_strict[:5]
    )
    assert [row["valid_json"] for row in rows] == ["true"] * len(rows)
    assert summary.valid_json_rate == 1.0 and summary.repaired_rate == 0.0


@pytest.mark.vllm
def test_lora_equals_the_merged_model(format_run, merged_run, tiny_model, order_prompts):
    """The trained adapter served by vLLM on its base == the same adapter merged, also served by vLLM."""
    # vLLM's LoRA kernels run in 16-bit only: both sides in bfloat16.
    params = GenerationParams(max_new_tokens=24)
    got = _generate(
        "vllm", tiny_model, order_prompts, params, lora=str(format_run / "best"), dtype="bfloat16", max_model_len=512
    )
    expected = _generate("vllm", merged_run, order_prompts, params, dtype="bfloat16", max_model_len=512)
    rate = _agreement(got, expected)
    print(f"\nvLLM --lora vs the same adapter merged (bfloat16, {len(order_prompts)} prompts): {rate:.1%} identical")
    assert len({g.token_ids for g in expected}) >= 5
    # bfloat16 rounds W x + B A x and (W + B A) x differently, so a near tie can flip (36 of 40 agreed here)
    assert rate >= 0.8


class _Counting:
    """The session's engine, counting what it is asked; close() leaves it running for the other tests."""

    def __init__(self, engine):
        self.engine, self.asked = engine, []
        self.name, self.settings = engine.name, engine.settings

    def generate(self, prompts, params, progress=None):
        self.asked += prompts
        return self.engine.generate(prompts, params, progress)

    def stream(self, prompts, params, chunk_size, progress=None):
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows):
        return self.engine.chunk_size(rows)

    def reset_cache(self):
        self.engine.reset_cache()

    def close(self):
        pass


@pytest.mark.vllm
def test_predict_on_vllm_killed_then_resumed(vllm_engine, merged_run, synth_dir, tmp_path, monkeypatch):
    """SIGKILL in mid-run (vLLM's engine processes too), then --resume: every id once, in input order, and
    only the ids the killed run had not saved are generated again."""
    import csv

    from typer.testing import CliRunner

    from jsontune.cli.app import app
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format
    from jsontune.predict import partial_path
    from jsontune.serving import registry

    source = synth_dir / "train.jsonl"
    out = tmp_path / "pred.csv"
    args = [
        "predict",
        "--model",
        str(merged_run),
        "--input",
        str(source),
        "--out",
        str(out),
        "--engine",
        "vllm",
        "--max-new-tokens",
        "48",
        "--guided-json",  # strict JSON, so that every row has its confidences to compare
        "--gpu-memory-utilization",
        "0.3",
        "--dtype",
        "float32",  # the reference below is the session's float32 engine: bf16 may break a near-tie otherwise
    ]
    log = (tmp_path / "killed.log").open("w")
    killed = subprocess.Popen(
        [sys.executable, "-m", "jsontune.cli.app", *args, "--chunk-size", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sidecar, deadline = partial_path(out), time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None:
        if sidecar.exists() and len(sidecar.read_text().splitlines()) >= 4:  # the settings + three rows
            break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the whole group: the CLI and vLLM's engine processes
    killed.wait()
    assert not out.exists(), (tmp_path / "killed.log").read_text()[-2000:]
    before = [json.loads(line)["id"] for line in sidecar.read_text().splitlines()[1:] if line.endswith("}")]
    records = load_records(source).records
    assert 3 <= len(before) < len(records), "the run must be killed in mid-run"

    counting = _Counting(vllm_engine)
    monkeypatch.setattr(registry, "make_engine", lambda *a, **k: counting)
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [r.id for r in records]  # every id exactly once, in input order
    prompts = render_prompts(load_tokenizer(merged_run), [r.text for r in records], read_prompt_format(merged_run))
    todo = [p for r, p in zip(records, prompts, strict=True) if r.id not in set(before)]
    assert counting.asked == todo  # nothing the killed run saved is generated twice
    from jsontune.extractor import Extractor, Prompting
    from jsontune.schema import guided_json_schema

    params = GenerationParams(max_new_tokens=48, logprobs=True, json_schema=guided_json_schema(None, [str(merged_run)]))
    reference = vllm_engine.generate(prompts, params)
    assert [r["raw_output"] for r in rows] == [g.text for g in reference]
    # The confidences too: the killed run's rows keep the ones computed when they were generated.
    scorer = Extractor(vllm_engine, Prompting(load_tokenizer(merged_run), read_prompt_format(merged_run), params))
    expected = [scorer.confidences(g) for g in reference]
    assert sum(lowest is not None for _, lowest in expected) >= len(expected) // 2  # numbers to compare
    for row, (fields, lowest) in zip(rows, expected, strict=True):
        got = json.loads(row["confidence"]) if row["confidence"] else None
        assert (got or {}).keys() == (fields or {}).keys()
        for k in fields or {}:
            assert (got[k] is None) == (fields[k] is None) and abs((got[k] or 0) - (fields[k] or 0)) < 1e-4
        assert (row["min_confidence"] == "") == (lowest is None)
    print(f"\nkilled after {len(before)} of {len(records)} rows; --resume generated {len(todo)}")


@pytest.mark.vllm
def test_predict_guided_reports_its_rates_and_settings(vllm_engine, merged_run, synth_dir, tmp_path, monkeypatch):
    """predict's summary and OUT.manifest.json: guided vs free valid-JSON and schema-valid rates, rows cut, and
    the settings the vLLM engine chose."""
    from typer.testing import CliRunner

    from jsontune.cli.app import app
    from jsontune.predict import manifest_path
    from jsontune.serving import registry

    monkeypatch.setattr(registry, "make_engine", lambda *a, **k: _Counting(vllm_engine))
    found = {}
    for mode in ("free", "guided"):
        out = tmp_path / f"{mode}.csv"
        args = [
            "predict",
            "--model",
            str(merged_run),
            "--input",
            str(synth_dir / "test.jsonl"),
            "--out",
            str(out),
            "--engine",
            "vllm",
            "--max-new-tokens",
            "140",
        ]
        result = CliRunner().invoke(app, args + (["--guided-json"] if mode == "guided" else []))
        assert result.exit_code == 0, result.output
        assert "schema-valid" in result.output and "engine settings: device=" in result.output
        found[mode] = json.loads(manifest_path(out).read_text())
    guided, free = found["guided"], found["free"]
    assert guided["guided"] and not free["guided"] and guided["schema"] == free["schema"]
    assert guided["valid_json_rate"] == 1.0 and guided["schema_valid_rate"] == 1.0 and guided["cut_by_length"] == 0
    assert free["schema_valid_rate"] < 1.0  # the barely trained model, unconstrained, breaks the schema
    assert guided["engine_settings"] == vllm_engine.settings and guided["rows"] == 20
    rates = [
        f"{m}: valid JSON {r['valid_json_rate']:.0%}, schema-valid {r['schema_valid_rate']:.0%}"
        for m, r in found.items()
    ]
    print(f"\npredict on {guided['rows']} rows, {'; '.join(rates)}")


def test_an_engine_that_dies_while_generating_is_one_sentence():
    """vLLM's EngineDeadError (its engine process killed, out of memory) reaches the user as a sentence that says
    how to go on, not as vLLM's traceback."""
    from jsontune.serving.vllm_engine import VLLMEngine

    class DeadLLM:
        def generate(self, *args, **kwargs):
            raise RuntimeError("EngineCore encountered an issue. See stack trace (above) for the root cause.")

    engine = VLLMEngine.__new__(VLLMEngine)  # no vLLM start: only generate's error path is under test
    engine.llm, engine.lora_request = DeadLLM(), None
    with pytest.raises(JsontuneError, match=r"^vLLM failed while generating \(RuntimeError: EngineCore encountered"):
        engine.generate(["x"], PARAMS)


def _ends_inside_a_character(tokenizer, ids) -> bool:
    """Whether the bytes of `ids` (a byte-level BPE's tokens; special ones, and ids past the vocabulary that a model
    with a padded embedding may write, have none) end with the first bytes of a multi-byte character: an
    incremental UTF-8 decoder still holds them when the input runs out."""
    import codecs

    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte = {c: b for b, c in bytes_to_unicode().items()}
    tokens = tokenizer.convert_ids_to_tokens([i for i in ids if i not in tokenizer.all_special_ids])
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    decoder.decode(bytes(byte[c] for token in tokens for c in token or ""))
    pending, _ = decoder.getstate()
    return bool(pending)


@pytest.mark.vllm
def test_predict_writes_the_same_raw_output_on_hf_and_vllm(barely_trained, synth_dir, tmp_path):
    """`jsontune predict --engine hf` and `--engine vllm` (float32, so the same tokens on a CPU) write the same
    raw_output on every row, also where the 6-step model's output ends inside a multi-byte character or in a stray
    byte: both decode the token ids with `decode_output`. Each engine's own decoding differed there (HF wrote a
    last U+FFFD that vLLM's detokenizer held back): on 3 of these 20 rows, one of them cut inside a character."""
    import csv

    from typer.testing import CliRunner

    from jsontune.cli.app import app
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format
    from jsontune.serving.hf_engine import HFEngine

    source, max_new_tokens = synth_dir / "test.jsonl", 21  # 21 tokens leave 3 of these outputs ending in U+FFFD
    raw = {}
    for engine in ("hf", "vllm"):
        out = tmp_path / f"{engine}.csv"
        args = ["predict", "--model", str(barely_trained), "--input", str(source), "--out", str(out)]
        args += ["--engine", engine, "--max-new-tokens", str(max_new_tokens), "--dtype", "float32"]
        result = CliRunner().invoke(app, [*args, "--gpu-memory-utilization", "0.3"] if engine == "vllm" else args)
        assert result.exit_code == 0, result.output
        with out.open(encoding="utf-8", newline="") as f:
            raw[engine] = [row["raw_output"] for row in csv.DictReader(f)]

    tokenizer = load_tokenizer(barely_trained)
    texts = [r.text for r in load_records(source).records]
    prompts = render_prompts(tokenizer, texts, read_prompt_format(barely_trained))
    engine = HFEngine.load(str(barely_trained))  # the same greedy float32 tokens, to see where outputs were cut
    try:
        generations = engine.generate(prompts, GenerationParams(max_new_tokens=max_new_tokens))
    finally:
        engine.close()
    cut = [i for i, g in enumerate(generations) if _ends_inside_a_character(tokenizer, g.token_ids)]
    differ = [i for i, (a, b) in enumerate(zip(raw["hf"], raw["vllm"], strict=True)) if a != b]
    print(f"\npredict hf vs vllm, {len(texts)} rows: {len(cut)} cut inside a character, {len(differ)} differ")
    assert cut, "no output ends inside a multi-byte character: the comparison would prove nothing"
    assert raw["hf"] == raw["vllm"], [(i, raw["hf"][i], raw["vllm"][i]) for i in differ]
    assert not any(text.endswith("\ufffd") for text in raw["hf"])


@pytest.mark.vllm
def test_review_below_writes_the_least_confident_rows_as_training_records(
    vllm_engine, merged_run, synth_dir, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from jsontune.cli.app import app
    from jsontune.predict import review_path
    from jsontune.serving import registry

    monkeypatch.setattr(registry, "make_engine", lambda *a, **k: _Counting(vllm_engine))
    out, below = tmp_path / "pred.csv", 0.5
    args = ["predict", "--model", str(merged_run), "--input", str(synth_dir / "test.jsonl"), "--out", str(out)]
    flags = ["--engine", "vllm", "--guided-json", "--max-new-tokens", "48", "--review-below", str(below)]
    result = CliRunner().invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    queue = [json.loads(line) for line in review_path(out).read_text(encoding="utf-8").splitlines()]
    lowest = [row["min_confidence"] for row in queue]
    assert queue and all(
        c is None or any(v is not None and v < below for v in row["confidence"].values())
        for row, c in zip(queue, lowest, strict=True)
    )
    ranked = [-1.0 if c is None else c for c in lowest]
    assert ranked == sorted(ranked)  # least confident first, rows without a confidence before all
    with out.open(encoding="utf-8", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    expected = [r for r in csv_rows if r["min_confidence"] == "" or float(r["min_confidence"]) < below]
    assert sorted(r["id"] for r in queue) == sorted(r["id"] for r in expected)
    checked = CliRunner().invoke(app, ["data", "check", str(review_path(out))])
    assert checked.exit_code == 0, checked.output  # the records `train` reads
    assert f"review queue: {len(queue)} row(s)" in " ".join(result.output.split())
