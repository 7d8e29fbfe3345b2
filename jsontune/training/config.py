"""Training settings: jsontune's own in `TrainConfig`, TRL's and PEFT's passed through unchanged.

A recipe (configs/*.yaml) holds TrainConfig's fields at the top level and two sections whose keys go
to `trl.SFTConfig` and `peft.LoraConfig` as they are, so a new TRL or PEFT setting needs no code:

    model: Qwen/Qwen3-0.6B
    augment_factor: 2.0
    sft: {learning_rate: 2.0e-4, per_device_train_batch_size: 16, max_grad_norm: 0.5}
    lora: {r: 16, lora_alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj]}

The `jsontune train` flags set the keys ALIASES names (--lr is sft.learning_rate), and win over the recipe.
Errors name the flag or the key to change, and the nearest real key when one is misspelt.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError

REPORT_TO = ("none", "tensorboard", "wandb", "trackio")
SECTIONS = ("sft", "lora")
# The short names of pass-through keys: the `jsontune train` flags (--lr, --lora-r, ...) and the top-level
# recipe keys of the flat recipes written before the sections, which a recipe may still use.
ALIASES = {
    "epochs": ("sft", "num_train_epochs"),
    "max_steps": ("sft", "max_steps"),
    "lr": ("sft", "learning_rate"),
    "batch_size": ("sft", "per_device_train_batch_size"),
    "grad_accum": ("sft", "gradient_accumulation_steps"),
    "max_length": ("sft", "max_length"),
    "weight_decay": ("sft", "weight_decay"),
    "warmup_ratio": ("sft", "warmup_steps"),  # a float below 1 is a ratio of the total steps
    "scheduler": ("sft", "lr_scheduler_type"),
    "logging_steps": ("sft", "logging_steps"),
    "save_total_limit": ("sft", "save_total_limit"),
    "lora_r": ("lora", "r"),
    "lora_alpha": ("lora", "lora_alpha"),
    "lora_dropout": ("lora", "lora_dropout"),
    "target_modules": ("lora", "target_modules"),
}
# jsontune's choices where TRL's and PEFT's defaults differ; a recipe or a flag overrides any of them.
DEFAULTS = {
    "sft": {
        "num_train_epochs": 3.0,
        "learning_rate": 2e-4,
        "per_device_train_batch_size": 8,
        "max_length": 512,  # longer rows are left out (and counted) rather than cut: see sft.drop_too_long
        "weight_decay": 0.01,
        "warmup_steps": 0.05,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "save_total_limit": 2,
        "save_strategy": "steps",
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # every LoRA weight is used every step; searching costs a pass
        "disable_tqdm": True,  # a library does not print: on_event reports every log
    },
    "lora": {
        "r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    },
}
# Keys jsontune sets itself (sft.py), and what to use instead: the run folder, the completion-only mask,
# precision, checkpointing, seed and the F1 eval depend on them.
RESERVED = {
    "sft": {
        "output_dir": "--out (checkpoints go to OUT/checkpoints)",
        "completion_only_loss": "nothing: jsontune trains on the JSON completion only",
        "assistant_only_loss": "nothing: jsontune trains on the JSON completion only",
        "dataset_kwargs": "nothing: jsontune builds the prompt/completion dataset",
        "eval_strategy": "--eval-steps (jsontune's generation F1 is the eval)",
        "bf16": "precision (auto, bf16, fp16 or fp32)",
        "fp16": "precision (auto, bf16, fp16 or fp32)",
        "use_cpu": "precision: fp32 trains on the CPU when there is no GPU",
        "gradient_checkpointing": "gradient_checkpointing at the top level (--gradient-checkpointing)",
        "gradient_checkpointing_kwargs": "gradient_checkpointing at the top level (--gradient-checkpointing)",
        "activation_checkpointing": "gradient_checkpointing at the top level (--gradient-checkpointing)",
        "activation_checkpointing_kwargs": "gradient_checkpointing at the top level (--gradient-checkpointing)",
        "seed": "seed at the top level (--seed): it also seeds augmentation and the LoRA init",
        "data_seed": "seed at the top level (--seed): it also seeds augmentation and the LoRA init",
        "report_to": "report_to at the top level (--report-to)",
    },
    "lora": {
        "task_type": "nothing: jsontune trains causal LMs (CAUSAL_LM)",
        "inference_mode": "nothing: jsontune trains the adapter",
        "base_model_name_or_path": "--model",
    },
}
# Settings a resumed run must keep: its checkpoint, data order and adapter shape depend on them. Every
# lora key is kept too.
RESUME_FIXED = (
    "model",
    "train",
    "text_col",
    "target_col",
    "id_col",
    "skip_bad_rows",
    "augment_factor",
    "augment_strategies",
    "instruction",
    "seed",
)
RESUME_FIXED_SFT = (
    "max_length",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "packing",
    "packing_strategy",
    "padding_free",
    "train_sampling_strategy",
)


@dataclass
class TrainConfig:
    model: str = ""
    train: str = ""
    val: str | None = None
    out: str = ""
    # data
    text_col: str | None = None
    target_col: str | None = None
    id_col: str | None = None
    skip_bad_rows: bool = False
    augment_factor: float = 1.0
    augment_strategies: list[str] | None = None
    instruction: str | None = None
    # the run
    gradient_checkpointing: bool | None = None  # None: on with a GPU, off on CPU
    precision: str = "auto"  # auto: bf16 if the GPU has it, else fp16; fp32 on CPU
    seed: int = 42
    eval_steps: int = 50
    eval_samples: int | None = 64
    eval_batch_size: int = 16
    eval_max_new_tokens: int = 64
    report_to: str = "none"
    resume: bool = False
    trust_remote_code: bool = False  # run the base model repository's own Python code
    # passed through: trl.SFTConfig and peft.LoraConfig keys, over jsontune's DEFAULTS
    sft: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sft = {**DEFAULTS["sft"], **self.sft}
        self.lora = {**DEFAULTS["lora"], **self.lora}
        for ok, message in self._checks():
            if not ok:
                raise JsontuneError(message)
        # Local paths are kept absolute: the adapter, run.json and the manifest name the base model and the
        # training data, and merge/predict run from other folders.
        for name in ("model", "train", "val"):
            value = getattr(self, name)
            if value and Path(value).exists():
                setattr(self, name, str(Path(value).resolve()))

    def _checks(self) -> list[tuple[Any, str]]:
        """(condition, the sentence when it is false), naming the flag and the key."""
        sft, eval_samples = self.sft, self.eval_samples
        lr, batch = sft["learning_rate"], sft["per_device_train_batch_size"]
        accum = sft.get("gradient_accumulation_steps", 1)
        steps = sft["num_train_epochs"] > 0 or sft.get("max_steps", -1) > 0
        rank, dropout, modules = self.lora["r"], self.lora["lora_dropout"], self.lora["target_modules"]
        return [
            (self.model, "--model is required (a Hugging Face id or a local model folder)."),
            (self.train, "--train is required (a .jsonl/.json/.csv/.parquet file)."),
            (self.out, "--out is required (the run folder)."),
            (lr > 0, f"--lr must be positive, got {lr} (sft.learning_rate in a recipe)."),
            (batch >= 1, f"--batch-size must be at least 1, got {batch} (sft.per_device_train_batch_size)."),
            (accum >= 1, f"--grad-accum must be at least 1, got {accum} (sft.gradient_accumulation_steps)."),
            (steps, "give --epochs > 0 or --max-steps > 0 (sft.num_train_epochs, sft.max_steps)."),
            (rank >= 1, f"--lora-r must be at least 1, got {rank} (lora.r in a recipe)."),
            (0 <= dropout < 1, f"--lora-dropout must be in [0, 1), got {dropout} (lora.lora_dropout)."),
            (modules, "--target-modules must name a module, e.g. q_proj,v_proj (lora.target_modules)."),
            (self.augment_factor >= 1, f"--augment-factor must be at least 1, got {self.augment_factor}."),
            (self.eval_steps >= 1, f"--eval-steps must be at least 1, got {self.eval_steps}."),
            (eval_samples is None or eval_samples >= 1, f"--eval-samples must be at least 1, got {eval_samples}."),
            (self.report_to in REPORT_TO, f"--report-to must be one of {', '.join(REPORT_TO)}."),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16."),
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_config(yaml_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Recipe values, then every override that is not None (TrainConfig fields, ALIASES, `sft`, `lora`).

    With `resume`, the settings the run started with (RUN/run.json) come first, so a resumed run needs
    no flag but --out; a recipe or flag may still change what does not shape the run (more steps, other
    eval settings), and a change to a RESUME_FIXED setting, a RESUME_FIXED_SFT key or any lora key is
    refused, naming it.
    """
    recipe = load_yaml(yaml_path) if yaml_path else {}
    flags = parse_settings({k: v for k, v in overrides.items() if v is not None}, "the settings given")
    given = _layered(recipe, flags)
    saved = saved_settings(given["out"]) if given.get("resume") and given.get("out") else {}
    cfg = TrainConfig(**_layered(saved, given))
    if saved:
        started = TrainConfig(**{**saved, "resume": False})  # normalised the same way (absolute paths, defaults)
        check_resume(started, cfg)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe's settings: names checked, values typed, ALIASES moved into their section."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise JsontuneError(f"config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise JsontuneError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise JsontuneError(f"config file {path} must be a mapping of setting: value.")
    return parse_settings(data, f"config file {path}")


def parse_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` (a recipe, flags, run.json) as TrainConfig takes them; errors begin with `where`."""
    own_fields = {f.name for f in fields(TrainConfig)} - set(SECTIONS)
    unknown = [key for key in values if key not in own_fields | set(ALIASES) | set(SECTIONS)]
    if unknown:
        raise JsontuneError(f"{where}: {_unknown_top_level(unknown[0], own_fields)}")
    own = typed(TrainConfig, {k: v for k, v in values.items() if k in own_fields}, where, "")
    sections = {name: _section(values.get(name), name, where) for name in SECTIONS}
    for alias, (section, key) in ALIASES.items():
        if alias not in values:
            continue
        if key in sections[section]:
            raise JsontuneError(f"{where} sets {section}.{key} twice, as {alias} and under {section}:; keep one.")
        value = values[alias]
        if alias == "target_modules" and isinstance(value, str):  # the flag's comma-separated names
            value = [m.strip() for m in value.split(",") if m.strip()]
        sections[section][key] = value
    return {**own, **{name: _typed_section(name, keys, where) for name, keys in sections.items() if keys}}


def _section(value: Any, name: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JsontuneError(f"{where}: {name}: must be a mapping of key: value, got {value!r}.")
    return dict(value)


def _unknown_top_level(key: str, own_fields: set[str]) -> str:
    names = {name: name for name in [*own_fields, *ALIASES, *SECTIONS]}  # a name -> how to write it
    for section in SECTIONS:
        section_fields = _init_fields(pass_through_class(section))
        if key in section_fields:
            return f"{key} is a {_class_name(section)} setting; put it under {section}:."
        names.update({name: f"{section}.{name}" for name in section_fields if name not in names})
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"{key} is not a setting; did you mean {names[close[0]]}?"
    return f"{key} is not a setting; the top level takes jsontune's own settings and the sft: and lora: sections."


def _typed_section(section: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """A section's keys checked against its dataclass (with the nearest field for a misspelt one), typed."""
    cls = pass_through_class(section)
    names = _init_fields(cls)
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {section}.{close[0]}?" if close else "."
            raise JsontuneError(f"{where}: {section}.{key} is not a {_class_name(section)} setting{hint}")
        if key in RESERVED[section]:
            raise JsontuneError(f"{where}: {section}.{key} is set by jsontune; use {RESERVED[section][key]}.")
    if section == "lora":
        return _typed_lora(values, where)
    return typed(cls, values, where, f"{section}.")


def typed(cls: type, values: dict[str, Any], where: str, prefix: str) -> dict[str, Any]:
    """Values typed by HfArgumentParser as it types a command line, so `2e-4` (a string to YAML, which
    wants a dot) is a float, `'8'` an int and `'true'` a bool; values that are not strings stay."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, exit_on_error=False)
    parser.set_defaults(**values)  # argparse parses a string default as if it were given on the command line
    try:
        namespace = parser.parse_args([])
    except argparse.ArgumentError as e:
        key = (e.argument_name or "").split("/")[0].lstrip("-")
        raise JsontuneError(f"{where}: {prefix}{key} has an invalid value ({e.message}).") from None
    return {key: getattr(namespace, key) for key in values}


def _typed_lora(values: dict[str, Any], where: str) -> dict[str, Any]:
    """HfArgumentParser cannot read LoraConfig's annotations (unions of generics), so a string given for a
    number or a bool is read as the type of the field's default."""
    from peft import LoraConfig
    from transformers.hf_argparser import string_to_bool

    defaults = {f.name: f.default for f in fields(LoraConfig)}
    out = {}
    for key, value in values.items():
        kind = type(defaults[key])
        if isinstance(value, str) and kind in (bool, int, float):
            try:
                value = string_to_bool(value) if kind is bool else kind(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                raise JsontuneError(f"{where}: lora.{key} must be {kind.__name__}, got {value!r}.") from None
        out[key] = value
    return out


def pass_through_class(section: str) -> type:
    """trl.SFTConfig for sft:, peft.LoraConfig for lora: (imported here: `jsontune --help` stays fast)."""
    import importlib

    module, name = _class_name(section).split(".")
    return getattr(importlib.import_module(module), name)


def _class_name(section: str) -> str:
    return {"sft": "trl.SFTConfig", "lora": "peft.LoraConfig"}[section]


def _init_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


def construct(section: str, values: dict[str, Any]):
    """SFTConfig(**values) or LoraConfig(**values); a value it refuses becomes one sentence naming the key
    (the first one without which the rest is accepted)."""
    cls = pass_through_class(section)
    try:
        return cls(**values)
    except (TypeError, ValueError, ImportError) as e:
        reason = str(e).strip().splitlines()[0][:300]
        culprit = next((k for k in values if _accepts(cls, {j: v for j, v in values.items() if j != k})), None)
        what = f"{section}.{culprit} = {values[culprit]!r}" if culprit else f"these {section}: settings"
        raise JsontuneError(f"{_class_name(section)} refuses {what}: {reason}") from None


def _accepts(cls: type, values: dict[str, Any]) -> bool:
    try:
        cls(**values)
    except (TypeError, ValueError, ImportError):
        return False
    return True


def _layered(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """`above` over `below`, the sft and lora sections key by key."""
    merged = {**below, **above}
    for section in SECTIONS:
        if section in below or section in above:
            merged[section] = {**below.get(section, {}), **above.get(section, {})}
    return merged


def check_resume(started: TrainConfig, now: TrainConfig) -> None:
    """Refuse, by name, a change to a setting the resumed run's checkpoint depends on."""
    compared = [(key, getattr(started, key), getattr(now, key)) for key in RESUME_FIXED]
    for section, keys in (("sft", RESUME_FIXED_SFT), ("lora", sorted({*started.lora, *now.lora}))):
        was, new = getattr(started, section), getattr(now, section)
        compared += [(f"{section}.{k}", _value(section, was, k), _value(section, new, k)) for k in keys]
    for key, was, new in compared:
        if _comparable(key, was) != _comparable(key, new):
            raise JsontuneError(
                f"--resume: {key} was {was!r} when {now.out} started and is now {new!r}; "
                "a run resumes with the settings it started with (start a new --out to change them)."
            )


def _value(section: str, values: dict[str, Any], key: str) -> Any:
    """A key's value, or its dataclass default when it was not given."""
    if key in values:
        return values[key]
    default = next((f.default for f in fields(pass_through_class(section)) if f.name == key), None)
    return None if default is MISSING else default


def _comparable(key: str, value: Any) -> Any:
    """A setting as --resume compares it: LoRA target modules are a set, whatever order they were given in."""
    return sorted(value) if key == "lora.target_modules" and isinstance(value, list) else value


def saved_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings RUN/run.json recorded, as TrainConfig takes them ({} when there is none)."""
    import json

    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("settings") or {}
    except (json.JSONDecodeError, AttributeError):
        raise JsontuneError(f"--resume: {path} is not valid JSON; it is written by jsontune train.") from None
    known = {f.name for f in fields(TrainConfig)} | set(ALIASES)
    return parse_settings({k: v for k, v in saved.items() if k in known and k != "resume"}, f"--resume: {path}")
