"""vLLM engine. The marked tests need vLLM and a CUDA GPU (run them with `pytest -m vllm -s tests/serving`);
the rest check, on CPU, the pieces that do not need vLLM itself."""

from __future__ import annotations

import json

import pytest

from jsontune.errors import JsontuneError
from jsontune.modeling import load_tokenizer
from jsontune.prompts import render_prompts
from jsontune.serving.base import GenerationParams, make_engine, vllm_available
from jsontune.serving.schema import infer_schema
from jsontune.serving.vllm_engine import _max_lora_rank, progress_bar

needs_vllm = pytest.mark.skipif(vllm_available() is not None, reason=vllm_available() or "")
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


@pytest.fixture(scope="module")
def many_prompts(chatty_model, texts):
    """40 prompts: every text with a few different order numbers."""
    variants = [f"{t} (orden {n})" for n in range(8) for t in texts[:5]]
    return render_prompts(load_tokenizer(chatty_model), variants)


def _agreement(a, b) -> float:
    return sum(x.token_ids == y.token_ids for x, y in zip(a, b, strict=True)) / len(a)


def _generate(engine_name, model, prompts, params=PARAMS, dtype="float32", **options):
    engine = make_engine(engine_name, str(model), dtype=dtype, **options)
    try:
        return engine.generate(prompts, params)
    finally:
        engine.close()


@pytest.mark.vllm
@needs_vllm
def test_vllm_greedy_agrees_with_hf_greedy(chatty_model, many_prompts):
    # vLLM first: it starts its engine process before this process has touched CUDA.
    got = _generate("vllm", chatty_model, many_prompts, gpu_memory_utilization=0.3)
    expected = _generate("hf", chatty_model, many_prompts, device="cuda", batch_size=8)
    rate = _agreement(got, expected)
    print(f"\nvLLM vs HF greedy (float32, {len(many_prompts)} prompts): {rate:.1%} of rows token-identical")
    assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]  # same tokens in
    assert rate >= 0.9


@pytest.mark.vllm
@needs_vllm
def test_guided_json_parses_and_fits_the_schema(chatty_model, many_prompts):
    schema = infer_schema([{"producto": "A", "cantidad": 100, "precio_unitario": 50.5}])
    params = GenerationParams(max_new_tokens=64, json_schema=schema)
    got = _generate("vllm", chatty_model, many_prompts, params, gpu_memory_utilization=0.3)
    finished = [g for g in got if g.finish_reason == "stop"]
    print(f"\nguided JSON: {len(finished)}/{len(got)} random-weight generations closed their object")
    assert finished
    for g in finished:
        value = json.loads(g.text)
        assert set(value) == set(schema["properties"])
        assert isinstance(value["producto"], str) and isinstance(value["cantidad"], int)


@pytest.mark.vllm
@needs_vllm
def test_lora_equals_the_merged_model(adapter_and_merged, chatty_model, many_prompts):
    adapter, merged = adapter_and_merged
    # vLLM's LoRA kernels run in 16-bit only: both sides in bfloat16.
    got = _generate("vllm", chatty_model, many_prompts, lora=str(adapter), dtype="bfloat16",
                    gpu_memory_utilization=0.3)
    expected = _generate("vllm", merged, many_prompts, dtype="bfloat16", gpu_memory_utilization=0.3)
    rate = _agreement(got, expected)
    print(f"\nvLLM --lora vs merged (bfloat16): {rate:.1%} of rows token-identical")
    assert rate >= 0.9


@pytest.mark.parametrize("dtype", ["float32", "fp32"])
def test_lora_in_float32_is_refused_before_vllm_loads(tmp_path, dtype):
    from jsontune.serving.vllm_engine import VLLMEngine

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(JsontuneError, match="bfloat16 or float16 only"):
        VLLMEngine("any-model", lora=str(tmp_path), dtype=dtype)
