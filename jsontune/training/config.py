"""Training settings: jsontune's own in `TrainConfig`, TRL's and PEFT's passed through unchanged.

A recipe (configs/*.yaml) holds TrainConfig's fields at the top level and two sections whose keys go
to `trl.SFTConfig` and `peft.LoraConfig` as they are, so a new TRL or PEFT setting needs no code:

    model: Qwen/Qwen3-0.6B
    augment_factor: 2.0
    sft: {learning_rate: 2.0e-4, per_device_train_batch_size: 16, max_grad_norm: 0.5}
    lora: {r: 16, lora_alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj]}

The `jsontune train` flags set the keys ALIASES names (--lr is sft.learning_rate), and win over the recipe.
Errors name the flag or the key to change, and the nearest real key when one is misspelt; recipe.py
reads a recipe, the flags and a resumed run.json into a TrainConfig (`build_config`).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from jsontune.data.records import InputColumns
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
# The input-column settings (`InputColumns`: text_col, ...), which a recipe gives at its top level.
COLUMNS = tuple(f.name for f in fields(InputColumns))
# Settings a resumed run must keep: its checkpoint, data order and adapter shape depend on them. Every
# column and every lora key is kept too.
RESUME_FIXED = (
    "model",
    "train",
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
    # One file or several: a later file's row with the id of an earlier row replaces it (training/data.py).
    train: list[str] = field(default_factory=list)
    val: str | None = None
    out: str = ""
    # data
    columns: InputColumns = field(default_factory=InputColumns)  # a mapping of its fields is read into one
    augment_factor: float = 1.0
    augment_strategies: list[str] | None = None
    instruction: str | None = None  # None: prompts.DEFAULT_INSTRUCTION; "none": no instruction (`prompt_format`)
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
        if isinstance(self.columns, dict):  # run.json's, a recipe's
            self.columns = InputColumns(**self.columns)
        if isinstance(self.train, str):  # a recipe's `train: FILE`, the run.json of a run before several files
            self.train = [self.train] if self.train else []
        self.sft = {**DEFAULTS["sft"], **self.sft}
        self.lora = {**DEFAULTS["lora"], **self.lora}
        for ok, message in self._checks():
            if not ok:
                raise JsontuneError(message)
        # Local paths are kept absolute: the adapter, run.json and the manifest name the base model and the
        # training data, and merge/predict run from other folders.
        for name in ("model", "val"):
            value = getattr(self, name)
            if value and Path(value).exists():
                setattr(self, name, str(Path(value).resolve()))
        self.train = [str(Path(p).resolve()) if Path(p).exists() else p for p in self.train]
        twice = next((p for i, p in enumerate(self.train) if p in self.train[:i]), None)
        if twice:
            raise JsontuneError(f"--train names {twice} twice; give each file once.")

    def _checks(self) -> list[tuple[Any, str]]:
        """(condition, the sentence when it is false), naming the flag and the key."""
        sft, eval_samples = self.sft, self.eval_samples
        lr, batch = sft["learning_rate"], sft["per_device_train_batch_size"]
        accum = sft.get("gradient_accumulation_steps", 1)
        steps = sft["num_train_epochs"] > 0 or sft.get("max_steps", -1) > 0
        rank, dropout, modules = self.lora["r"], self.lora["lora_dropout"], self.lora["target_modules"]
        return [
            (self.model, "--model is required (a Hugging Face id or a local model folder)."),
            (self.train, "--train is required (a .jsonl/.json/.csv/.parquet file; repeat it for several)."),
            (self.out, "--out is required (the run folder)."),
            (lr > 0, f"--lr must be positive, got {lr} (sft.learning_rate in a recipe)."),
            (batch >= 1, f"--batch-size must be at least 1, got {batch} (sft.per_device_train_batch_size)."),
            (accum >= 1, f"--grad-accum must be at least 1, got {accum} (sft.gradient_accumulation_steps)."),
            (steps, "give --epochs > 0 or --max-steps > 0 (sft.num_train_epochs, sft.max_steps)."),
            (rank >= 1, f"--lora-r must be at least 1, got {rank} (lora.r in a recipe)."),
            (0 <= dropout < 1, f"--lora-dropout must be in [0, 1), got {dropout} (lora.lora_dropout)."),
            (modules, "--target-modules must name a module, e.g. q_proj,v_proj (lora.target_modules)."),
            (self.augment_factor >= 1, f"--augment-factor must be at least 1, got {self.augment_factor}."),
            (
                self.instruction is None or self.instruction.strip(),
                "--instruction is blank; give its text, or none for prompts without one (instruction: in a recipe).",
            ),
            (self.eval_steps >= 1, f"--eval-steps must be at least 1, got {self.eval_steps}."),
            (eval_samples is None or eval_samples >= 1, f"--eval-samples must be at least 1, got {eval_samples}."),
            (self.eval_batch_size >= 1, f"eval_batch_size must be at least 1, got {self.eval_batch_size}."),
            (self.report_to in REPORT_TO, f"--report-to must be one of {', '.join(REPORT_TO)}."),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16."),
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pass_through_class(section: str) -> type:
    """trl.SFTConfig for sft:, peft.LoraConfig for lora: (imported here: `jsontune --help` stays fast)."""
    import importlib

    module, name = class_name(section).split(".")
    return getattr(importlib.import_module(module), name)


def class_name(section: str) -> str:
    return {"sft": "trl.SFTConfig", "lora": "peft.LoraConfig"}[section]


def init_fields(cls: type) -> list[str]:
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
        raise JsontuneError(f"{class_name(section)} refuses {what}: {reason}") from None


def _accepts(cls: type, values: dict[str, Any]) -> bool:
    try:
        cls(**values)
    except (TypeError, ValueError, ImportError):
        return False
    return True


def check_resume(started: TrainConfig, now: TrainConfig) -> None:
    """Refuse, by name, a change to a setting the resumed run's checkpoint depends on."""
    compared = [(key, getattr(started, key), getattr(now, key)) for key in RESUME_FIXED]
    compared += [(key, getattr(started.columns, key), getattr(now.columns, key)) for key in COLUMNS]
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
