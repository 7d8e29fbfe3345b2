"""init-model (jsontune.offline): presets, the Qwen3-style tokenizer and chat template; and the load helpers."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.errors import JsontuneError
from jsontune.modeling import load_model, load_tokenizer
from jsontune.offline import MANIFEST_NAME, PRESETS, init_model, preset_config
from jsontune.prompts import PromptFormat, build_messages, completion_text, render_prompt

THINK_OFF_GENERATION_PROMPT = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps CLI output at the terminal width


def test_tiny_loads_with_plain_transformers(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert model.config.num_hidden_layers == PRESETS["tiny"].num_hidden_layers
    assert model.config.tie_word_embeddings is True
    assert len(tokenizer) <= model.config.vocab_size
    assert 1000 <= len(tokenizer) <= 2100
    manifest = json.loads((tiny_model / MANIFEST_NAME).read_text())
    assert (manifest["preset"], manifest["seed"], manifest["random_weights"]) == ("tiny", 0, True)
    assert manifest["parameters"] == sum(p.numel() for p in model.parameters())
    assert json.loads((tiny_model / "tokenizer_config.json").read_text()).get("padding_side") != "left"
    assert not list(tiny_model.parent.glob(".tiny.*"))  # the temporary folder was renamed away


def test_chat_template_is_trls_qwen3_and_switches_thinking_off(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    trl_template = (resources.files("trl") / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")
    assert tokenizer.chat_template == trl_template

    prompt = render_prompt(tokenizer, "Necesito 100 unidades de producto A, precio 50 pesos", PromptFormat())
    assert prompt.startswith("<|im_start|>user\n")
    assert prompt.endswith("<|im_end|>\n" + THINK_OFF_GENERATION_PROMPT)

    target = {"producto": "A", "cantidad": 100, "precio_unitario": 50}
    answer = completion_text(target)
    chat = build_messages("100 de A a 50") + [{"role": "assistant", "content": answer}]
    full = tokenizer.apply_chat_template(chat, tokenize=False, enable_thinking=False)
    assert full.endswith(THINK_OFF_GENERATION_PROMPT + answer + "<|im_end|>\n")


def test_tokenizer_round_trips_spanish_text_and_has_no_bos(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    text = "Pedido: 1.250 piezas de señalética a $1.250,50 c/u. ¿Qué pasó? ÁÉÍÓÚ ü ½ 日本 🙂"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer("$1.250,50")["input_ids"]) == "$1.250,50"
    assert tokenizer.bos_token is None
    assert ids == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))  # nothing prepended
    # Trained on the prompts: the instruction costs far fewer tokens than it has bytes.
    assert len(tokenizer(build_messages("x")[0]["content"])["input_ids"]) < 60


def test_special_tokens_match_qwen3(tiny_model):
    from transformers import AutoConfig, GenerationConfig

    tokenizer = load_tokenizer(tiny_model)
    config = AutoConfig.from_pretrained(tiny_model)
    generation = GenerationConfig.from_pretrained(tiny_model)
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (im_end, endoftext)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert (config.eos_token_id, config.pad_token_id) == (im_end, endoftext)
    assert set(generation.eos_token_id) == {im_end, endoftext}
    assert generation.pad_token_id == endoftext
    assert generation.do_sample is False
    for token in ["<|im_start|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<|fim_pad|>"]:
        assert len(tokenizer(token)["input_ids"]) == 1, token
    # As in Qwen3, <think> is not a special token: skipping specials keeps a leaked thinking block.
    ids = tokenizer("<think>\nhm\n</think>\n\n{}<|im_end|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>\nhm\n</think>\n\n{}"


def test_same_seed_same_weights_and_other_seed_different(tiny_model, tmp_path):
    import torch

    init_model("tiny", tmp_path / "again", seed=0)
    init_model("tiny", tmp_path / "other", seed=1)
    reference, again, other = _weights(tiny_model), _weights(tmp_path / "again"), _weights(tmp_path / "other")
    assert reference.keys() == again.keys() == other.keys()
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    assert not torch.equal(reference["model.embed_tokens.weight"], other["model.embed_tokens.weight"])
    assert (tmp_path / "other" / "tokenizer.json").read_bytes() == (tiny_model / "tokenizer.json").read_bytes()


def test_forward_pass_and_load_model(tiny_model):
    import torch

    tokenizer = load_tokenizer(tiny_model)
    model = load_model(tiny_model, device="cpu")
    assert model.training is False
    assert model.dtype == torch.float32
    batch = tokenizer(["hola", "Necesito 100 unidades"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], PRESETS["tiny"].vocab_size)
    assert torch.isfinite(logits).all()
    assert load_model(tiny_model, dtype="bfloat16", device="cpu").dtype == torch.bfloat16


def test_qwen3_06b_preset_has_qwen3_06b_shape():
    import torch
    from transformers import Qwen3ForCausalLM

    config = preset_config("qwen3-0.6b")
    assert config.model_type == "qwen3"
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (28, 1024, 3072)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (16, 8, 128)
    assert config.vocab_size == 151936
    assert config.tie_word_embeddings is True
    assert config.rope_parameters["rope_theta"] == 1_000_000
    assert config.rms_norm_eps == 1e-6
    assert config.max_position_embeddings == 40960
    assert config.dtype == torch.bfloat16
    with torch.device("meta"):  # shapes only: no 1.2 GB of weights
        model = Qwen3ForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 596_049_920  # Qwen/Qwen3-0.6B's count


def test_unknown_preset_lists_the_valid_ones(tmp_path):
    with pytest.raises(JsontuneError, match=r"unknown model preset 'huge'.*tiny, qwen3-0.6b"):
        init_model("huge", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_existing_folder_is_refused_unless_forced(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(JsontuneError, match="already exists and is not empty.*--force"):
        init_model("tiny", out)
    assert (out / "notes.txt").read_text() == "keep me"
    init_model("tiny", out, force=True)
    assert not (out / "notes.txt").exists()
    assert (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_missing_models_are_one_sentence():
    with pytest.raises(JsontuneError, match="model folder /no/such/model does not exist"):
        load_tokenizer("/no/such/model")
    with pytest.raises(JsontuneError, match="neither a local folder nor reachable on the Hugging Face Hub"):
        load_model("no-such-org/no-such-model", device="cpu")


def test_folder_without_a_model_names_the_folder(tmp_path):
    with pytest.raises(JsontuneError, match=f"could not load the model from folder {tmp_path}"):
        load_model(tmp_path, device="cpu")


def test_cli_help_lists_presets():
    result = CliRunner().invoke(app, ["init-model", "--help"])
    assert result.exit_code == 0
    assert "--preset" in result.output and "--force" in result.output
    assert "tiny or qwen3-0.6b" in _flat(result.output)


def test_cli_writes_tiny_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "tiny"
    result = CliRunner().invoke(app, ["init-model", "--preset", "tiny", "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["seed"] == 3
    assert f"{manifest['parameters'] / 1e6:.2f}M parameters" in _flat(result.output)
    assert (out / "model.safetensors").is_file()

    again = CliRunner().invoke(app, ["init-model", "--preset", "tiny", "--out", str(out)])
    assert again.exit_code == 1
    assert "pass --force" in _flat(again.output)
    assert "Traceback" not in again.output


def _copy_corpus_loss(folder) -> float:
    import torch

    from jsontune.offline.pretrain import copy_corpus

    tokenizer, model = load_tokenizer(folder), load_model(folder, device="cpu")
    batch = tokenizer(copy_corpus(16, seed=7), return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        return model(**batch, labels=labels).loss.item()


def test_pretrain_steps_lower_the_copy_corpus_loss_and_are_recorded(tiny_model, tmp_path):
    warm = init_model("tiny", tmp_path / "warm", seed=0, pretrain_steps=6)
    manifest = json.loads((warm / MANIFEST_NAME).read_text())
    assert (manifest["pretrain_steps"], manifest["random_weights"]) == (6, False)
    assert json.loads((tiny_model / MANIFEST_NAME).read_text())["pretrain_steps"] == 0
    random_loss, warm_loss = _copy_corpus_loss(tiny_model), _copy_corpus_loss(warm)
    assert warm_loss < random_loss - 0.5
    assert manifest["pretrain_loss"] < random_loss


def test_negative_pretrain_steps_are_refused(tmp_path):
    result = CliRunner().invoke(
        app, ["init-model", "--preset", "tiny", "--out", str(tmp_path / "m"), "--pretrain-steps", "-1"]
    )
    assert result.exit_code == 1
    assert "--pretrain-steps is -1" in _flat(result.output)
    assert not (tmp_path / "m").exists()
