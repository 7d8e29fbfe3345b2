"""The HF engine: batched greedy output equals sequential greedy output token for token."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import torch

from jsontune.errors import JsontuneError
from jsontune.modeling import load_tokenizer
from jsontune.prompts import render_prompts
from jsontune.serving.base import GenerationParams
from jsontune.serving.hf_engine import HFEngine
from jsontune.serving.registry import make_engine
from jsontune.serving.settings import EngineSettings

PARAMS = GenerationParams(max_new_tokens=12)


@pytest.fixture(scope="module")
def prompts(chatty_model, texts):
    return render_prompts(load_tokenizer(chatty_model), texts)


def _tokens(generations):
    return [g.token_ids for g in generations]


def test_batched_equals_sequential_token_for_token(chatty_model, prompts):
    sequential = make_engine("hf", chatty_model, EngineSettings(sequential=True, dtype="float32"))
    batched = make_engine("hf", chatty_model, EngineSettings(batch_size=3, dtype="float32"))
    expected = sequential.generate(prompts, PARAMS)
    got = batched.generate(prompts, PARAMS)
    assert len({g.token_ids for g in expected}) == len(prompts)  # every prompt gets its own answer
    assert len({g.prompt_tokens for g in expected}) > 3  # lengths differ, so batches carry left padding
    assert _tokens(got) == _tokens(expected)
    assert [g.text for g in got] == [g.text for g in expected]
    assert (sequential.name, batched.name) == ("hf-seq", "hf-batch")


def test_batched_logprobs_equal_sequential_ones(chatty_model, prompts):
    params = GenerationParams(max_new_tokens=PARAMS.max_new_tokens, logprobs=True)
    sequential = make_engine("hf", chatty_model, EngineSettings(sequential=True, dtype="float32"))
    batched = make_engine("hf", chatty_model, EngineSettings(batch_size=3, dtype="float32"))
    expected, got = sequential.generate(prompts, params), batched.generate(prompts, params)
    assert _tokens(got) == _tokens(expected)
    for e, g in zip(expected, got, strict=True):
        assert len(e.logprobs) == len(e.token_ids) == len(g.logprobs)
        assert max(abs(a - b) for a, b in zip(e.logprobs, g.logprobs, strict=True)) < 1e-4
        assert all(lp <= 0 for lp in e.logprobs)
    assert len({round(lp, 3) for g in got for lp in g.logprobs}) > 5  # real numbers, not a constant
    assert not sequential.generate(prompts[:1], PARAMS)[0].logprobs  # only when asked for


@pytest.fixture(scope="module")
def stopping_model(chatty_model, prompts, tmp_path_factory):
    """`chatty_model` with its most frequent greedy token made an end-of-sequence id too, so rows of
    one batch finish at different steps and the rest of each row is padding."""
    tokens = _tokens(make_engine("hf", chatty_model, EngineSettings(sequential=True)).generate(prompts, PARAMS))
    frequent = Counter(t for row in tokens for t in row[1:]).most_common(1)[0][0]
    out = tmp_path_factory.mktemp("stopping") / "model"
    shutil.copytree(chatty_model, out)
    config = json.loads((out / "generation_config.json").read_text())
    config["eos_token_id"] = [*config["eos_token_id"], frequent]
    (out / "generation_config.json").write_text(json.dumps(config))
    return out, frequent


def test_batched_equals_sequential_when_rows_stop_early(stopping_model, prompts):
    model, eos = stopping_model
    expected = make_engine("hf", model, EngineSettings(sequential=True)).generate(prompts, PARAMS)
    got = make_engine("hf", model, EngineSettings(batch_size=3)).generate(prompts, PARAMS)
    assert _tokens(got) == _tokens(expected)
    stopped = [g for g in expected if g.finish_reason == "stop"]
    assert stopped and len(stopped) < len(expected)
    # A stopped row ends with its end-of-sequence token and nothing (no padding) after it.
    assert all(g.token_ids[-1] == eos and eos not in g.token_ids[:-1] for g in stopped)
    assert all(g.output_tokens == len(g.token_ids) for g in got)
    assert [g.finish_reason for g in got] == [g.finish_reason for g in expected]


def test_ignore_eos_generates_the_full_length(stopping_model, prompts):
    model, _ = stopping_model
    params = GenerationParams(max_new_tokens=6, ignore_eos=True)
    got = make_engine("hf", model, EngineSettings(batch_size=4)).generate(prompts, params)
    assert [g.output_tokens for g in got] == [6] * len(prompts)


def test_out_of_memory_halves_the_batch_and_keeps_results(chatty_model, prompts, monkeypatch):
    engine = HFEngine.load(chatty_model, EngineSettings(batch_size=4))
    expected = engine.generate(prompts, PARAMS)
    real = HFEngine._generate_batch
    sizes = []

    def flaky(self, batch, params):
        sizes.append(len(batch))
        if len(batch) > 2 and sizes.count(len(batch)) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch, params)

    monkeypatch.setattr(HFEngine, "_generate_batch", flaky)
    got = engine.generate(prompts, PARAMS)
    assert _tokens(got) == _tokens(expected)
    assert engine.batch_size == 2
    assert sizes == [4, 2, 2, 2, 1]  # 7 prompts: the failed 4, then 2 + 2 + 2 + 1


def test_progress_reports_every_prompt_once(chatty_model, prompts):
    seen = []
    make_engine("hf", chatty_model, EngineSettings(batch_size=3)).generate(prompts, PARAMS, progress=seen.append)
    assert seen == [3, 3, 1]


def test_lora_adapter_equals_the_merged_model(adapter_and_merged, chatty_model, prompts):
    adapter, merged = adapter_and_merged
    with_adapter = make_engine("hf", chatty_model, EngineSettings(batch_size=3), lora=str(adapter)).generate(
        prompts, PARAMS
    )
    from_merged = make_engine("hf", merged, EngineSettings(batch_size=3)).generate(prompts, PARAMS)
    base = make_engine("hf", chatty_model, EngineSettings(batch_size=3)).generate(prompts, PARAMS)
    assert _tokens(with_adapter) == _tokens(from_merged)
    assert _tokens(with_adapter) != _tokens(base)  # the adapter does change the answers


def test_hf_engine_refuses_guided_json(chatty_model):
    engine = make_engine("hf", chatty_model)
    with pytest.raises(JsontuneError, match="--engine vllm"):
        engine.generate(["x"], GenerationParams(max_new_tokens=2, json_schema={"type": "object"}))


def test_a_tokenizer_without_pad_token_still_batches(chatty_model, prompts):
    """Llama-style folders have no pad token: the engine pads with an eos id and leaves the tokenizer as it was."""
    from jsontune.modeling import load_model

    params = GenerationParams(max_new_tokens=6)
    want = make_engine("hf", str(chatty_model), EngineSettings(batch_size=3)).generate(prompts, params)
    tokenizer = load_tokenizer(str(chatty_model))
    tokenizer.pad_token = None
    side = tokenizer.padding_side
    engine = HFEngine(load_model(str(chatty_model), dtype="float32", device="cpu"), tokenizer, batch_size=3)
    assert _tokens(engine.generate(prompts, params)) == _tokens(want)
    assert tokenizer.padding_side == side
