from pathlib import Path

import pytest

from jsontune.errors import JsontuneError
from jsontune.training.config import TrainConfig, build_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
REQUIRED = {"model": "m", "train": "t.jsonl", "out": "runs/x"}


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} >= {"tiny-cpu.yaml", "qwen3-0.6b-lora.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = build_config(path, **REQUIRED)
    assert isinstance(cfg, TrainConfig)
    assert cfg.lora_r == 16 and cfg.lora_alpha == 32
    assert {"q_proj", "k_proj", "v_proj", "o_proj"} <= set(cfg.target_modules)
    assert cfg.scheduler == "cosine" and cfg.weight_decay > 0 and cfg.warmup_ratio > 0


def test_flags_override_the_recipe():
    cfg = build_config(CONFIGS[0], lr=1e-5, batch_size=None, **REQUIRED)
    assert cfg.lr == 1e-5
    assert cfg.batch_size == build_config(CONFIGS[0], **REQUIRED).batch_size  # None means "not given"


def test_qwen_recipe_matches_the_design():
    cfg = build_config(Path(CONFIGS[0]).with_name("qwen3-0.6b-lora.yaml"), train="t.jsonl", out="o")
    assert cfg.model == "Qwen/Qwen3-0.6B"
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.lora_dropout == 0.05 and cfg.gradient_checkpointing is True


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-4\nlearning_rat: 3\n")
    with pytest.raises(JsontuneError, match="learning_rat"):
        build_config(bad, **REQUIRED)


@pytest.mark.parametrize(
    "override, flag",
    [
        ({"lr": 0}, "--lr"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lora_r": 0}, "--lora-r"),
        ({"augment_factor": 0.5}, "--augment-factor"),
        ({"report_to": "mlflow"}, "--report-to"),
        ({"model": ""}, "--model"),
    ],
)
def test_bad_values_name_the_flag(override, flag):
    with pytest.raises(JsontuneError, match=flag):
        TrainConfig(**{**REQUIRED, **override})


@pytest.mark.parametrize("report_to, expected", [("none", []), ("tensorboard", ["tensorboard"])])
def test_nothing_phones_home_unless_asked(report_to, expected, tmp_path):
    from jsontune.training.sft import sft_config

    args = sft_config(TrainConfig(**REQUIRED, report_to=report_to), "fp32", tmp_path)
    assert list(args.report_to) == expected


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU defaults")
def test_cpu_training_is_fp32_without_checkpointing(tmp_path):
    from jsontune.training.sft import checkpointing_args, resolve_precision, sft_config

    precision = resolve_precision("auto")
    args = sft_config(TrainConfig(**REQUIRED), precision, tmp_path)
    (key,) = [k for k in checkpointing_args(False) if not k.endswith("_kwargs")]
    assert precision == "fp32" and not args.bf16 and not args.fp16 and getattr(args, key) is False
    assert args.lr_scheduler_type == "cosine" and args.weight_decay == 0.01 and args.completion_only_loss


def test_yaml_numbers_written_in_e_notation_are_numbers(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 2e-4\nbatch_size: '8'\ngradient_checkpointing: true\n")
    cfg = build_config(recipe, **REQUIRED)
    assert cfg.lr == 2e-4 and cfg.batch_size == 8 and cfg.gradient_checkpointing is True
    recipe.write_text("lr: fast\n")
    with pytest.raises(JsontuneError, match="lr must be float"):
        build_config(recipe, **REQUIRED)


def test_target_modules_and_dropout_from_flags(tmp_path):
    cfg = build_config(model="m", train="t", out=str(tmp_path), target_modules="q_proj, v_proj", lora_dropout=0.1)
    assert cfg.target_modules == ["q_proj", "v_proj"] and cfg.lora_dropout == 0.1
    with pytest.raises(JsontuneError, match="--lora-dropout"):
        build_config(model="m", train="t", out=str(tmp_path), lora_dropout=1.5)


def test_a_tracker_that_is_not_installed_is_one_sentence(monkeypatch):
    import importlib.util

    from jsontune.training.sft import check_report_to

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(JsontuneError, match="--report-to wandb needs the wandb package: pip install wandb"):
        check_report_to("wandb")
    check_report_to("none")


def test_resume_reads_run_json_when_out_comes_from_the_recipe(tmp_path):
    import json

    run = tmp_path / "run"
    run.mkdir()
    started = build_config(model="m", train="t.jsonl", out=str(run), lora_r=16)
    (run / "run.json").write_text(json.dumps({"settings": started.to_dict()}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"out: {run}\n")
    assert build_config(recipe, resume=True).model == "m"  # nothing but --out (from the recipe) is needed
    with pytest.raises(JsontuneError, match="lora_r was 16"):
        build_config(recipe, resume=True, lora_r=4)
    reordered = build_config(recipe, resume=True, target_modules="o_proj,v_proj,k_proj,q_proj")
    assert sorted(reordered.target_modules) == sorted(started.target_modules)


@pytest.mark.parametrize("on", [True, False])
def test_checkpointing_reaches_the_installed_transformers(on, tmp_path):
    """Whichever name this transformers uses, the setting arrives, with non-reentrant checkpoints when on."""
    from jsontune.training.sft import sft_config

    args = sft_config(TrainConfig(**REQUIRED, gradient_checkpointing=on), "fp32", tmp_path)
    new = getattr(args, "activation_checkpointing", None)
    assert bool(new if new is not None else args.gradient_checkpointing) is on
    kwargs = getattr(args, "activation_checkpointing_kwargs", None) or args.gradient_checkpointing_kwargs
    assert (kwargs == {"use_reentrant": False}) if on else not kwargs
