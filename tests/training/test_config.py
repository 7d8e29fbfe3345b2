import json
from pathlib import Path

import pytest
import yaml

from jsontune.errors import JsontuneError
from jsontune.training.config import ALIASES, TrainConfig
from jsontune.training.recipe import build_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
REQUIRED = {"model": "m", "train": "t.jsonl", "out": "runs/x"}


def _recipe(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} >= {"tiny-cpu.yaml", "qwen3-0.6b-lora.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_builds_trl_and_peft_configs(path, tmp_path):
    from jsontune.training.sft import lora_config, sft_config

    assert not set(yaml.safe_load(path.read_text())) & set(ALIASES), "shipped recipes use the sft:/lora: sections"
    cfg = build_config(path, **REQUIRED)
    assert cfg.lora["r"] == 16 and cfg.lora["lora_alpha"] == 32
    assert {"q_proj", "k_proj", "v_proj", "o_proj"} <= set(cfg.lora["target_modules"])
    args = sft_config(cfg, "fp32", tmp_path)
    assert args.lr_scheduler_type == "cosine" and args.weight_decay > 0 and 0 < args.warmup_steps < 1
    assert args.learning_rate == cfg.sft["learning_rate"] and args.max_length == cfg.sft["max_length"]
    assert lora_config(cfg).target_modules == set(cfg.lora["target_modules"])


def test_flags_override_the_recipe_sections(tmp_path):
    recipe = _recipe(tmp_path, "sft: {learning_rate: 1.0e-3, per_device_train_batch_size: 4}\nlora: {r: 8}\n")
    cfg = build_config(recipe, lr=1e-5, batch_size=None, lora_r=32, **REQUIRED)
    assert cfg.sft["learning_rate"] == 1e-5 and cfg.lora["r"] == 32
    assert cfg.sft["per_device_train_batch_size"] == 4  # None means "not given"


def test_qwen_recipe_matches_the_design():
    cfg = build_config(Path(CONFIGS[0]).with_name("qwen3-0.6b-lora.yaml"), train="t.jsonl", out="o")
    assert cfg.model == "Qwen/Qwen3-0.6B"
    assert cfg.lora["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.lora["lora_dropout"] == 0.05 and cfg.gradient_checkpointing is True


def test_a_new_trl_or_peft_setting_needs_no_code(tmp_path):
    """Keys jsontune never mentions reach the SFTConfig sft.py builds and the LoraConfig it trains with."""
    from jsontune.training.sft import lora_config, sft_config

    recipe = _recipe(
        tmp_path,
        "sft: {max_grad_norm: 0.5, lr_scheduler_type: constant_with_warmup, optim: adafactor}\n"
        "lora: {use_rslora: true, lora_alpha: 8}\n",
    )
    cfg = build_config(recipe, **REQUIRED)
    args = sft_config(cfg, "fp32", tmp_path)
    assert args.max_grad_norm == 0.5 and args.lr_scheduler_type == "constant_with_warmup" and args.optim == "adafactor"
    lora = lora_config(cfg)
    assert lora.use_rslora is True and lora.lora_alpha == 8 and lora.r == 16  # the rest keeps jsontune's default


def test_the_old_flat_recipe_keys_still_work(tmp_path):
    recipe = _recipe(
        tmp_path, "lr: 1.0e-3\nbatch_size: 4\nlora_r: 8\nscheduler: linear\ntarget_modules: q_proj,v_proj\n"
    )
    cfg = build_config(recipe, **REQUIRED)
    assert cfg.sft["learning_rate"] == 1e-3 and cfg.sft["per_device_train_batch_size"] == 4
    assert cfg.sft["lr_scheduler_type"] == "linear"
    assert cfg.lora["r"] == 8 and cfg.lora["target_modules"] == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("learning_rat: 3\n", "recipe.yaml: learning_rat is not a setting; did you mean sft.learning_rate?"),
        ("learning_rate: 3\n", "learning_rate is a trl.SFTConfig setting; put it under sft:"),
        (
            "sft: {learning_rat: 3}\n",
            "sft.learning_rat is not a trl.SFTConfig setting; did you mean sft.learning_rate?",
        ),
        ("lora: {lora_alfa: 16}\n", "lora.lora_alfa is not a peft.LoraConfig setting; did you mean lora.lora_alpha?"),
        ("sft: [learning_rate]\n", "sft: must be a mapping"),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest_one(tmp_path, text, message):
    with pytest.raises(JsontuneError, match=message.replace("?", r"\?")):
        build_config(_recipe(tmp_path, text), **REQUIRED)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sft: {output_dir: elsewhere}\n", "sft.output_dir is set by jsontune; use --out"),
        ("sft: {completion_only_loss: false}\n", "sft.completion_only_loss is set by jsontune"),
        ("sft: {seed: 1}\n", "sft.seed is set by jsontune; use seed at the top level"),
        ("sft: {bf16: true}\n", "sft.bf16 is set by jsontune; use precision"),
        ("lora: {task_type: SEQ_CLS}\n", "lora.task_type is set by jsontune"),
        ("lr: 1.0e-3\nsft: {learning_rate: 2.0e-3}\n", "sets sft.learning_rate twice, as lr and under sft:"),
    ],
)
def test_keys_jsontune_owns_are_refused(tmp_path, text, message):
    with pytest.raises(JsontuneError, match=message):
        build_config(_recipe(tmp_path, text), **REQUIRED)


@pytest.mark.parametrize(
    "override, flag",
    [
        ({"lr": 0}, "--lr"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lora_r": 0}, "--lora-r"),
        ({"augment_factor": 0.5}, "--augment-factor"),
        ({"report_to": "mlflow"}, "--report-to"),
        ({"model": ""}, "--model"),
        ({"epochs": 0}, "--epochs"),
        ({"eval_batch_size": 0}, "eval_batch_size must be at least 1"),  # the F1 eval's HF batches
        ({"instruction": "  "}, "--instruction is blank; give its text, or none"),
    ],
)
def test_bad_values_name_the_flag(override, flag):
    with pytest.raises(JsontuneError, match=flag):
        build_config(**{**REQUIRED, **override})


def test_a_value_trl_or_peft_refuses_is_one_sentence_naming_the_key(tmp_path):
    from jsontune.training.sft import lora_config, sft_config

    cfg = build_config(_recipe(tmp_path, "sft: {lr_scheduler_type: cosin}\n"), **REQUIRED)
    with pytest.raises(JsontuneError, match=r"trl.SFTConfig refuses sft.lr_scheduler_type = 'cosin': cosin is not"):
        sft_config(cfg, "fp32", tmp_path)
    cfg = build_config(_recipe(tmp_path, "lora: {layers_pattern: layers}\n"), **REQUIRED)
    with pytest.raises(JsontuneError, match=r"peft.LoraConfig refuses lora.layers_pattern = 'layers'"):
        lora_config(cfg)


@pytest.mark.parametrize("report_to, expected", [("none", []), ("tensorboard", ["tensorboard"])])
def test_nothing_phones_home_unless_asked(report_to, expected, tmp_path):
    from jsontune.training.sft import sft_config

    args = sft_config(TrainConfig(**REQUIRED, report_to=report_to), "fp32", tmp_path)
    assert list(args.report_to) == expected


@pytest.mark.cpu_only  # checks the CPU defaults
def test_cpu_training_is_fp32_without_checkpointing(tmp_path):
    from jsontune.training.sft import checkpointing_args, resolve_precision, sft_config

    precision = resolve_precision("auto")
    args = sft_config(TrainConfig(**REQUIRED), precision, tmp_path)
    (key,) = [k for k in checkpointing_args(False) if not k.endswith("_kwargs")]
    assert precision == "fp32" and not args.bf16 and not args.fp16 and getattr(args, key) is False
    assert args.lr_scheduler_type == "cosine" and args.weight_decay == 0.01 and args.completion_only_loss
    assert args.output_dir == str(tmp_path / "checkpoints") and args.save_steps == 50 and args.eval_strategy == "no"


def test_yaml_strings_are_typed_as_the_dataclass_field(tmp_path):
    """YAML reads `2e-4` (no dot) as a string and users quote numbers: each value gets its field's type."""
    recipe = _recipe(
        tmp_path,
        "lr: 2e-4\ngradient_checkpointing: 'true'\neval_steps: '20'\n"
        "sft: {per_device_train_batch_size: '8', max_grad_norm: 5e-1}\n"
        "lora: {lora_dropout: 1e-2, use_rslora: 'true'}\n",
    )
    cfg = build_config(recipe, **REQUIRED)
    assert cfg.sft["learning_rate"] == 2e-4 and cfg.sft["per_device_train_batch_size"] == 8
    assert cfg.sft["max_grad_norm"] == 0.5 and cfg.gradient_checkpointing is True and cfg.eval_steps == 20
    assert cfg.lora["lora_dropout"] == 0.01 and cfg.lora["use_rslora"] is True
    for text, message in [
        ("sft: {learning_rate: fast}\n", "sft.learning_rate has an invalid value .*'fast'"),
        ("lora: {r: many}\n", "lora.r must be int, got 'many'"),
        ("eval_steps: often\n", "eval_steps has an invalid value"),
    ]:
        with pytest.raises(JsontuneError, match=message):
            build_config(_recipe(tmp_path, text), **REQUIRED)


def test_target_modules_and_dropout_from_flags(tmp_path):
    cfg = build_config(model="m", train="t", out=str(tmp_path), target_modules="q_proj, v_proj", lora_dropout=0.1)
    assert cfg.lora["target_modules"] == ["q_proj", "v_proj"] and cfg.lora["lora_dropout"] == 0.1
    with pytest.raises(JsontuneError, match="--lora-dropout"):
        build_config(model="m", train="t", out=str(tmp_path), lora_dropout=1.5)


def test_a_tracker_that_is_not_installed_is_one_sentence(monkeypatch):
    import importlib.util

    from jsontune.training.run_folder import check_report_to

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(JsontuneError, match="--report-to wandb needs the wandb package: pip install wandb"):
        check_report_to("wandb")
    check_report_to("none")


def test_resume_reads_run_json_when_out_comes_from_the_recipe(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    started = build_config(model="m", train="t.jsonl", out=str(run), lora_r=16)
    (run / "run.json").write_text(json.dumps({"settings": started.to_dict()}))
    recipe = _recipe(tmp_path, f"out: {run}\n")
    assert build_config(recipe, resume=True).model == "m"  # nothing but --out (from the recipe) is needed
    with pytest.raises(JsontuneError, match="lora.r was 16"):
        build_config(recipe, resume=True, lora_r=4)
    reordered = build_config(recipe, resume=True, target_modules="o_proj,v_proj,k_proj,q_proj")
    assert sorted(reordered.lora["target_modules"]) == sorted(started.lora["target_modules"])
    assert build_config(recipe, resume=True, max_steps=100, lr=1e-3).sft["max_steps"] == 100  # these may change


@pytest.mark.parametrize(
    "section, message",
    [
        ("lora: {r: 8}", "lora.r was 16 when .* started and is now 8"),
        ("lora: {use_rslora: true}", "lora.use_rslora was False when .* started and is now True"),
        ("sft: {per_device_train_batch_size: 2}", "sft.per_device_train_batch_size was 8 when .* is now 2"),
        ("sft: {packing: true}", "sft.packing was False when .* is now True"),
    ],
)
def test_resume_refuses_a_changed_pass_through_key(tmp_path, section, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"settings": build_config(**REQUIRED).to_dict()}))
    with pytest.raises(JsontuneError, match=f"--resume: {message}"):
        build_config(_recipe(tmp_path, f"{section}\nout: {run}\n"), resume=True)


def test_resume_reads_the_flat_run_json_of_earlier_versions(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    flat = {"model": "m", "train": "t.jsonl", "out": str(run), "lr": 2e-4, "batch_size": 8, "lora_r": 16}
    (run / "run.json").write_text(json.dumps({"settings": {**flat, "target_modules": ["q_proj", "v_proj"]}}))
    cfg = build_config(out=str(run), resume=True)
    assert cfg.sft["per_device_train_batch_size"] == 8 and cfg.lora["target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(JsontuneError, match="sft.per_device_train_batch_size was 8"):
        build_config(out=str(run), resume=True, batch_size=4)


@pytest.mark.parametrize("on", [True, False])
def test_checkpointing_reaches_the_installed_transformers(on, tmp_path):
    """Whichever name this transformers uses, the setting arrives, with non-reentrant checkpoints when on."""
    from jsontune.training.sft import sft_config

    args = sft_config(TrainConfig(**REQUIRED, gradient_checkpointing=on), "fp32", tmp_path)
    new = getattr(args, "activation_checkpointing", None)
    assert bool(new if new is not None else args.gradient_checkpointing) is on
    kwargs = getattr(args, "activation_checkpointing_kwargs", None) or args.gradient_checkpointing_kwargs
    assert (kwargs == {"use_reentrant": False}) if on else not kwargs


def test_the_input_columns_travel_as_one_input_columns(tmp_path):
    """`train` takes the --text-col, ... flags as one InputColumns, nothing copied field by field: a flag wins
    over the recipe's top-level key of the same column, the others stay, and run.json gives them back on
    --resume, which refuses a changed column by name (run.json of earlier versions kept them flat)."""
    from jsontune.data import InputColumns

    run = tmp_path / "run"
    run.mkdir()
    recipe = _recipe(tmp_path, "text_col: texto\ntarget_col: salida\nskip_bad_rows: 'true'\n")
    cfg = build_config(recipe, model="m", train="t.jsonl", out=str(run), columns=InputColumns(target_col="json"))
    assert cfg.columns == InputColumns(text_col="texto", target_col="json", skip_bad_rows=True)
    (run / "run.json").write_text(json.dumps({"settings": cfg.to_dict()}))
    assert build_config(out=str(run), resume=True).columns == cfg.columns
    with pytest.raises(JsontuneError, match="--resume: text_col was 'texto' when .* started and is now 'text'"):
        build_config(out=str(run), resume=True, columns=InputColumns(text_col="text"))
    flat = {"model": "m", "train": "t.jsonl", "out": str(run), "text_col": "texto", "skip_bad_rows": True}
    (run / "run.json").write_text(json.dumps({"settings": flat}))
    assert build_config(out=str(run), resume=True).columns == InputColumns(text_col="texto", skip_bad_rows=True)
    with pytest.raises(JsontuneError, match="columns.text is not a column setting"):
        build_config(_recipe(tmp_path, "columns: {text: texto}\n"), **REQUIRED)


def test_train_takes_one_file_or_several_and_each_once(tmp_path):
    """A recipe's `train: FILE` (and the run.json of a run before several files) is a list of one; paths that
    exist are kept absolute; a file given twice is refused by name."""
    data = tmp_path / "train.jsonl"
    data.write_text("")
    assert build_config(_recipe(tmp_path, f"train: {data}\n"), model="m", out="o").train == [str(data)]
    both = build_config(model="m", train=[str(data), "corrections.jsonl"], out="o").train
    assert both == [str(data.resolve()), "corrections.jsonl"]
    with pytest.raises(JsontuneError, match=f"--train names {data} twice"):
        build_config(model="m", train=[str(data), str(data)], out="o")


def test_resume_refuses_a_train_file_whose_content_changed(tmp_path):
    """run.json keeps each --train file's SHA-256; a resumed run on other content is refused by name (a run.json
    from before several files holds one description, not a list)."""
    from jsontune.training.run_folder import check_resumed_data

    run = tmp_path / "run"
    run.mkdir()
    now = {"train": [{"path": "a.jsonl", "sha256": "1" * 64}, {"path": "fixes.jsonl", "sha256": "2" * 64}]}
    (run / "run.json").write_text(json.dumps({"data": now}))
    check_resumed_data(run, now)
    changed = {"train": [now["train"][0], {"path": "fixes.jsonl", "sha256": "3" * 64}]}
    with pytest.raises(JsontuneError, match="--resume: fixes.jsonl changed since .* started"):
        check_resumed_data(run, changed)
    (run / "run.json").write_text(json.dumps({"data": {"train": {"path": "a.jsonl", "sha256": "4" * 64}}}))
    with pytest.raises(JsontuneError, match="--resume: a.jsonl changed"):
        check_resumed_data(run, now)
