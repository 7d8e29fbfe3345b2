"""The real training entry point on CPU with the tiny model: masks, files written, weights, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from jsontune.prompts import DEFAULT_INSTRUCTION, PromptFormat, prompt_format, render_prompt, training_example
from jsontune.training.data import training_length
from jsontune.training.recipe import build_config
from jsontune.training.sft import lora_config, sft_config, train

STEPS = 6  # tests/conftest.py: train_config's max_steps


@pytest.mark.parametrize("fmt", [PromptFormat(), prompt_format("none")], ids=["instruction", "no-instruction"])
def test_completion_only_labels_on_the_real_tokenizer_path(tiny_model, tmp_path, fmt):
    """Every prompt token is -100, every completion token (JSON + <|im_end|>) is trained, and the trained
    prompt is token-for-token what predict sends, with the instruction and without it."""
    from datasets import Dataset
    from trl import SFTTrainer

    from jsontune.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    text, target = (
        "Necesito 1.500 unidades de tornillos M8 a $12,50 c/u",
        {"producto": "tornillos M8", "cantidad": 1500, "precio_unitario": 12.5},
    )
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
    completion = input_ids[len(prompt_ids) :]
    assert labels[len(prompt_ids) :] == completion, "some completion token is not trained"
    decoded = tokenizer.decode(completion)
    assert decoded.startswith(json.dumps(target, ensure_ascii=False, separators=(",", ":")))
    assert "<|im_end|>" in decoded
    # TRL gets sft.max_length too: it cuts nothing, as drop_too_long counts the very tokens TRL trains on.
    assert len(input_ids) == training_length(tokenizer, training_example(text, target, fmt))


def test_recipe_sections_reach_the_trainer(tiny_model, tmp_path):
    """sft: and lora: keys jsontune never names arrive in the SFTTrainer's args and the PeftModel's config."""
    from datasets import Dataset
    from trl import SFTTrainer

    from jsontune.modeling import load_model, load_tokenizer

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("sft: {max_grad_norm: 0.5, lr_scheduler_type: constant}\nlora: {use_rslora: true, r: 4}\n")
    cfg = build_config(recipe, model=str(tiny_model), train="unused", out=str(tmp_path / "run"), max_steps=1)
    trainer = SFTTrainer(
        model=load_model(str(tiny_model), dtype="float32", device="cpu"),
        args=sft_config(cfg, "fp32", tmp_path / "run"),
        train_dataset=Dataset.from_list([training_example("1 caja de guantes", {"producto": "guantes"})]),
        processing_class=load_tokenizer(str(tiny_model)),
        peft_config=lora_config(cfg),
    )
    assert trainer.args.max_grad_norm == 0.5 and trainer.args.lr_scheduler_type == "constant"
    peft = trainer.model.peft_config["default"]
    assert peft.use_rslora is True and peft.r == 4 and peft.lora_alpha == 32
    assert trainer.model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.shape[0] == 4


def test_a_run_without_the_instruction_is_asked_without_it(make_train_config, tiny_model, synth_dir, tmp_path):
    """--instruction none: run.json and the adapter's manifest record a format with no instruction, and what
    predict, bench, serve's client and the Extractor render from the adapter (`Prompting.resolve`) is what
    training rendered: "Texto: " and the text right after the chat header."""
    from jsontune.extractor import Prompting
    from jsontune.modeling import load_tokenizer

    out = tmp_path / "run"
    train(make_train_config(tiny_model, synth_dir, out, instruction="none", max_steps=1, eval_steps=1))
    assert json.loads((out / "run.json").read_text())["prompt_format"]["instruction"] == ""
    prompting = Prompting.resolve(str(tiny_model), str(out / "best"))
    assert prompting.fmt == prompt_format("none") != PromptFormat()
    text = "Necesito 100 tornillos a 50 pesos"
    [asked] = prompting.prompts([text])
    tokenizer = load_tokenizer(str(tiny_model))
    assert asked == render_prompt(tokenizer, text, prompt_format("none"))
    assert asked.startswith(f"<|im_start|>user\nTexto: {text}<|im_end|>") and DEFAULT_INSTRUCTION not in asked
    trained = tokenizer.apply_chat_template(
        training_example(text, {"producto": "tornillos"}, prompting.fmt)["prompt"],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    assert trained == asked


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
    assert run["sft"]["learning_rate"] == 5e-3 and run["sft"]["per_device_train_batch_size"] == 4
    assert run["settings"]["sft"]["max_steps"] == STEPS and run["settings"]["lora"]["r"] == 16
    best = json.loads((out / "best" / "jsontune.json").read_text())
    assert best["sft"] == run["sft"] and best["lora"] == run["lora"]
    assert [len(f["sha256"]) for f in run["data"]["train"]] == [64]
    assert run["prompt_format"]["enable_thinking"] is False
    assert {"torch", "transformers", "trl", "peft"} <= set(run["versions"])
    assert run["summary"]["steps"] == STEPS == summary.steps
    assert summary.best_f1 == max(r["eval_f1"] for r in evals)


class _Snapshot(TrainerCallback):
    """Copies every parameter when training begins and keeps the model, to compare at the end."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_weights_change_and_base_weights_do_not(make_train_config, tiny_model, synth_dir, tmp_path):
    from safetensors.torch import load_file

    snapshot = _Snapshot()
    base_file = tiny_model / "model.safetensors"
    base_on_disk = load_file(base_file)
    train(make_train_config(tiny_model, synth_dir, tmp_path / "run", max_steps=3, eval_steps=3), callbacks=(snapshot,))
    after = dict(snapshot.model.named_parameters())
    lora = [n for n in after if "lora_" in n]
    assert lora and all(after[n].requires_grad for n in lora)
    assert all(not torch.equal(after[n], snapshot.before[n]) for n in lora if "lora_B" in n), "LoRA B did not train"
    frozen = [n for n in after if "lora_" not in n]
    assert frozen and not any(after[n].requires_grad for n in frozen)
    changed = [n for n in frozen if not torch.equal(after[n], snapshot.before[n])]
    assert not changed, f"base weights changed in memory: {changed[:3]}"
    assert all(torch.equal(t, base_on_disk[k]) for k, t in load_file(base_file).items()), "base file changed"
    saved = load_file(tmp_path / "run" / "last" / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved), "the adapter must hold LoRA weights only"


class _Interrupt(TrainerCallback):
    """Ctrl-C after `step`, as a user would press it (the checkpoint before it is the one to resume from)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_after_an_interruption_continues_from_the_last_checkpoint(
    make_train_config, tiny_model, synth_dir, tmp_path
):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(make_train_config(tiny_model, synth_dir, out), callbacks=(_Interrupt(4),))
    assert (out / "checkpoints" / "checkpoint-3").is_dir() and not (out / "last").exists()
    # --resume needs nothing but the run folder: the settings come from run.json
    summary = train(build_config(out=str(out), resume=True))
    assert summary.steps == STEPS
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, STEPS + 1)), "resume repeated or lost steps"
    assert [r["step"] for r in rows if "eval_f1" in r] == [0, 3, 6]
    assert (out / "last" / "adapter_model.safetensors").is_file()


def test_resume_refuses_a_changed_setting_by_name(make_train_config, trained_run, tiny_model, synth_dir):
    from jsontune.errors import JsontuneError

    out, _ = trained_run
    with pytest.raises(JsontuneError, match="lora.r was 16 .* now 8"):
        make_train_config(tiny_model, synth_dir, out, lora_r=8, resume=True)


def test_resume_before_the_first_checkpoint_starts_over(make_train_config, tiny_model, synth_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(make_train_config(tiny_model, synth_dir, out, max_steps=3), callbacks=(_Interrupt(1),))
    notes = []
    summary = train(build_config(out=str(out), resume=True), on_event=lambda r: notes.append(r.get("note")))
    assert summary.steps == 3 and any(n and "starting from step 0" in n for n in notes)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1, "the metrics of the lost attempt must not stay"


def test_rows_longer_than_max_length_are_left_out_and_named(make_train_config, tiny_model, synth_dir, tmp_path):
    from jsontune.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    rows = [json.loads(line) for line in (synth_dir / "train.jsonl").read_text().splitlines()]
    lengths = sorted(training_length(tokenizer, training_example(r["text"], r["target"])) for r in rows)
    limit = lengths[len(lengths) // 2]  # about half the rows are longer
    expected = sum(n > limit for n in lengths)
    notes = []
    summary = train(
        make_train_config(tiny_model, synth_dir, tmp_path / "run", max_steps=1, max_length=limit),
        on_event=lambda r: notes.append(r.get("note")),
    )
    assert summary.train_rows == len(rows) - expected
    assert any(n and n.startswith(f"{expected} training rows are longer than --max-length {limit}") for n in notes)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["data"]["too_long"]["rows"] == expected


def test_without_validation_best_is_the_last_adapter(make_train_config, tiny_model, synth_dir, tmp_path):
    out = tmp_path / "run"
    summary = train(make_train_config(tiny_model, synth_dir, out, max_steps=2, val=None))
    assert summary.best_f1 is None and summary.best_step == 2
    best = json.loads((out / "best" / "jsontune.json").read_text())
    assert best["selected_by"].startswith("last step")
    assert (out / "best" / "adapter_model.safetensors").read_bytes() == (
        out / "last" / "adapter_model.safetensors"
    ).read_bytes()


def test_local_paths_are_recorded_absolute(make_train_config, trained_run):
    out, _ = trained_run
    run = json.loads((out / "run.json").read_text())
    adapter = json.loads((out / "best" / "adapter_config.json").read_text())
    assert run["base_model"].startswith("/") and adapter["base_model_name_or_path"] == run["base_model"]
    assert run["settings"]["train"][0].startswith("/")


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


def test_a_torn_metrics_line_does_not_stop_a_resume(tmp_path):
    from jsontune.training.run_folder import keep_metrics_until

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 4, "loss": 1.0}\n{"step": 5, "lo')
    keep_metrics_until(path, 3)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n'


def _corrections(synth_dir, path):
    """A corrections file: the fourth training row with another quantity (the same id), and one new row."""
    rows = [json.loads(line) for line in (synth_dir / "train.jsonl").read_text().splitlines()]
    fixed = {**rows[3], "target": {**rows[3]["target"], "cantidad": 12345}}
    new = {"id": "review-1", "text": "2 cajas de guantes a 10 pesos", "target": {"producto": "guantes", "cantidad": 2}}
    path.write_text(json.dumps(fixed) + "\n" + json.dumps(new) + "\n")
    return rows, fixed, new


def test_a_later_train_file_replaces_the_rows_with_its_ids_in_place(make_train_config, tiny_model, synth_dir, tmp_path):
    from jsontune.training.data import load_data

    rows, fixed, new = _corrections(synth_dir, tmp_path / "fixes.jsonl")
    train_files = [str(synth_dir / "train.jsonl"), str(tmp_path / "fixes.jsonl")]
    notes = []
    records, _, info = load_data(
        make_train_config(tiny_model, synth_dir, tmp_path / "run", train=train_files),
        lambda r: notes.append(r.get("note")),
    )
    assert [r.id for r in records] == [r["id"] for r in rows] + ["review-1"]
    assert records[3].target == fixed["target"] and records[-1].target == new["target"]
    assert [f["replaces"] for f in info["train"]] == [0, 1] and [f["rows"] for f in info["train"]] == [len(rows), 2]
    assert any(
        n and n.endswith(f"1 rows replace the rows of an earlier --train file with the same id ({fixed['id']}).")
        for n in notes
    ), notes


def test_training_on_two_files_records_both_in_run_json(make_train_config, tiny_model, synth_dir, tmp_path):
    rows, _, _ = _corrections(synth_dir, tmp_path / "fixes.jsonl")
    train_files = [str(synth_dir / "train.jsonl"), str(tmp_path / "fixes.jsonl")]
    out = tmp_path / "run"
    summary = train(make_train_config(tiny_model, synth_dir, out, train=train_files, max_steps=2, eval_steps=2))
    assert summary.steps == 2 and summary.train_rows == len(rows) + 1  # one row replaced, one added
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["train"] == [str(Path(f).resolve()) for f in train_files]
    assert [f["path"] for f in run["data"]["train"]] == run["settings"]["train"]
    assert [len(f["sha256"]) for f in run["data"]["train"]] == [64, 64]
    assert json.loads((out / "best" / "jsontune.json").read_text())["data"]["train"] == run["settings"]["train"]
