"""The real training entry point on CPU with the tiny model: masks, files written, weights, resume."""

from __future__ import annotations

import json

import pytest
import torch

from jsontune.prompts import PromptFormat, render_prompt, training_example
from jsontune.training.config import build_config
from jsontune.training.sft import lora_config, sft_config, train

STEPS = 6  # tests/conftest.py: train_config's max_steps


def test_completion_only_labels_on_the_real_tokenizer_path(tiny_model, tmp_path):
    """Every prompt token is -100, every completion token (JSON + <|im_end|>) is trained, and the trained
    prompt is token-for-token what predict sends."""
    from datasets import Dataset
    from trl import SFTTrainer

    from jsontune.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    fmt = PromptFormat()
    text, target = "Necesito 1.500 unidades de tornillos M8 a $12,50 c/u", {"producto": "tornillos M8",
                                                                           "cantidad": 1500,
                                                                           "precio_unitario": 12.5}
    cfg = build_config(model=str(tiny_model), train="unused", out=str(tmp_path), max_steps=1)
    trainer = SFTTrainer(
        model=load_model(str(tiny_model), dtype="float32", device="cpu"),
        args=sft_config(cfg, "fp32", tmp_path),
        train_dataset=Dataset.from_list([training_example(text, target, fmt)]),
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    input_ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()

    prompt_ids = tokenizer(render_prompt(tokenizer, text, fmt), add_special_tokens=False)["input_ids"]
    assert input_ids[: len(prompt_ids)] == prompt_ids, "training prompt differs from the inference prompt"
    assert all(label == -100 for label in labels[: len(prompt_ids)])
    completion = input_ids[len(prompt_ids):]
    assert labels[len(prompt_ids):] == completion, "some completion token is not trained"
    decoded = tokenizer.decode(completion)
    assert decoded.startswith(json.dumps(target, ensure_ascii=False, separators=(",", ":")))
    assert "<|im_end|>" in decoded


def test_run_folder_is_complete(trained_run):
    out, summary = trained_run
    for adapter in ("best", "last"):
        assert (out / adapter / "adapter_model.safetensors").is_file()
        assert (out / adapter / "adapter_config.json").is_file()
        assert (out / adapter / "tokenizer_config.json").is_file()
        assert json.loads((out / adapter / "jsontune.json").read_text())["kind"] == "adapter"
    assert (out / "curves.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in r and "learning_rate" in r for r in rows)
    evals = [r for r in rows if "eval_f1" in r]
    assert [r["step"] for r in evals] == [0, 3, 6]
    run = json.loads((out / "run.json").read_text())
    assert run["lora"]["r"] == 16 and run["lora"]["lora_alpha"] == 32
    assert set(run["lora"]["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert len(run["data"]["train"]["sha256"]) == 64
    assert run["prompt_format"]["enable_thinking"] is False
    assert {"torch", "transformers", "trl", "peft"} <= set(run["versions"])
    assert run["summary"]["steps"] == STEPS == summary.steps
    assert summary.best_f1 == max(r["eval_f1"] for r in evals)


def test_lora_weights_change_and_base_weights_do_not(trained_run, tiny_model):
    from peft import PeftModel

    from jsontune.modeling import load_model

    out, _ = trained_run
    base = load_model(str(tiny_model), dtype="float32", device="cpu")
    reference = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = PeftModel.from_pretrained(base, out / "last")
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b), "LoRA B starts at zero and must have moved"
    for name, value in tuned.get_base_model().state_dict().items():
        key = name.replace(".base_layer", "")
        if "lora_" not in name:
            assert torch.equal(value, reference[key]), f"base weight {key} changed"


def test_resume_continues_from_the_last_checkpoint(make_train_config, tiny_model, synth_dir, tmp_path):
    out = tmp_path / "run"
    train(make_train_config(tiny_model, synth_dir, out, max_steps=3))
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    summary = train(make_train_config(tiny_model, synth_dir, out, max_steps=STEPS, resume=True))
    assert summary.steps == STEPS
    loss_steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
                  if "loss" in json.loads(line)]
    assert loss_steps == list(range(1, STEPS + 1)), "resume repeated or skipped steps"


def test_existing_run_folder_needs_resume(make_train_config, trained_run, tiny_model, synth_dir):
    from jsontune.errors import JsontuneError

    out, _ = trained_run
    with pytest.raises(JsontuneError, match="--resume"):
        train(make_train_config(tiny_model, synth_dir, out))


def test_training_is_reproducible_on_cpu(make_train_config, trained_run, tiny_model, synth_dir, tmp_path):
    from safetensors.torch import load_file

    out, _ = trained_run
    train(make_train_config(tiny_model, synth_dir, tmp_path / "again"))
    first = load_file(out / "last" / "adapter_model.safetensors")
    second = load_file(tmp_path / "again" / "last" / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
