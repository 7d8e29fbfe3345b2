"""Training settings: one dataclass, filled from a recipe YAML and overridden by CLI flags.

A recipe (configs/*.yaml) holds any of the fields below; a flag given on the command line wins.
Errors name the flag (or YAML key) to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError

REPORT_TO = ("none", "tensorboard", "wandb", "trackio")
# Settings a resumed run must keep: its checkpoint, data order and adapter shape depend on them.
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
    "max_length",
    "batch_size",
    "grad_accum",
    "seed",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
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
    max_length: int = 512
    # optimisation
    epochs: float = 3.0
    max_steps: int = -1
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    scheduler: str = "cosine"
    gradient_checkpointing: bool | None = None  # None: on with a GPU, off on CPU
    precision: str = "auto"  # auto: bf16 if the GPU has it, else fp16; fp32 on CPU
    seed: int = 42
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # eval / checkpoints / logging
    eval_steps: int = 50
    eval_samples: int | None = 64
    eval_batch_size: int = 16
    eval_max_new_tokens: int = 64
    save_total_limit: int = 2
    logging_steps: int = 10
    report_to: str = "none"
    resume: bool = False
    trust_remote_code: bool = False  # run the base model repository's own Python code

    def __post_init__(self) -> None:
        checks = [
            (self.model, "--model is required (a Hugging Face id or a local model folder)."),
            (self.train, "--train is required (a .jsonl/.json/.csv/.parquet file)."),
            (self.out, "--out is required (the run folder)."),
            (self.lr > 0, f"--lr must be positive, got {self.lr}."),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}."),
            (self.grad_accum >= 1, f"--grad-accum must be at least 1, got {self.grad_accum}."),
            (self.lora_r >= 1, f"--lora-r must be at least 1, got {self.lora_r}."),
            (self.augment_factor >= 1, f"--augment-factor must be at least 1, got {self.augment_factor}."),
            (self.epochs > 0 or self.max_steps > 0, "give --epochs > 0 or --max-steps > 0."),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}."),
            (self.eval_steps >= 1, f"--eval-steps must be at least 1, got {self.eval_steps}."),
            (self.report_to in REPORT_TO, f"--report-to must be one of {', '.join(REPORT_TO)}."),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16."),
        ]
        for ok, message in checks:
            if not ok:
                raise JsontuneError(message)
        if self.eval_samples is not None and self.eval_samples < 1:
            raise JsontuneError(f"--eval-samples must be at least 1, got {self.eval_samples}.")
        if not 0 <= self.lora_dropout < 1:
            raise JsontuneError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}.")
        if isinstance(self.target_modules, str):  # "q_proj,v_proj" from a flag or a YAML string
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        if not self.target_modules:
            raise JsontuneError("--target-modules must name at least one module, e.g. q_proj,k_proj,v_proj,o_proj.")
        # Local paths are kept absolute: the adapter, run.json and the manifest name the base model and the
        # training data, and merge/predict run from other folders.
        for name in ("model", "train", "val"):
            value = getattr(self, name)
            if value and Path(value).exists():
                setattr(self, name, str(Path(value).resolve()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
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
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise JsontuneError(f"config file {path} has unknown keys {unknown}; valid keys: {sorted(known)}.")
    return {key: _typed(key, value, path) for key, value in data.items()}


def _typed(key: str, value: Any, path: Path) -> Any:
    """YAML reads `2e-4` as a string and users write `"8"`: give each value its field's type."""
    kind = {f.name: f.type for f in fields(TrainConfig)}[key]
    cast = next((t for name, t in (("bool", _bool), ("float", float), ("int", int)) if kind.startswith(name)), None)
    if value is None or cast is None or isinstance(value, list):
        return value
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise JsontuneError(f"config file {path}: {key} must be {kind.split(' ')[0]}, got {value!r}.") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(value)


def build_config(yaml_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Recipe values, then every override that is not None.

    With `resume`, the settings the run started with (RUN/run.json) come first, so a resumed run needs
    no flag but --out; a recipe or flag may still change what does not shape the run (more steps, other
    eval settings), and a change to anything in RESUME_FIXED is refused, naming the setting.
    """
    recipe = load_yaml(yaml_path) if yaml_path else {}
    given = {**recipe, **{k: v for k, v in overrides.items() if v is not None}}
    saved = saved_settings(given["out"]) if given.get("resume") and given.get("out") else {}
    values = {**saved, **given}
    cfg = TrainConfig(**values)
    if saved:
        started = TrainConfig(**{**saved, "resume": False})  # normalised the same way (absolute paths, lists)
        changed = [k for k in RESUME_FIXED if _comparable(cfg, k) != _comparable(started, k)]
        if changed:
            k = changed[0]
            raise JsontuneError(
                f"--resume: {k} was {getattr(started, k)!r} when {cfg.out} started and is now {getattr(cfg, k)!r}; "
                "a run resumes with the settings it started with (start a new --out to change them)."
            )
    return cfg


def _comparable(cfg: TrainConfig, key: str) -> Any:
    """A setting as --resume compares it: LoRA target modules are a set, whatever order they were given in."""
    value = getattr(cfg, key)
    return sorted(value) if key == "target_modules" else value


def saved_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings RUN/run.json recorded, limited to what TrainConfig knows ({} when there is none)."""
    import json

    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8")).get("settings") or {}
    except (json.JSONDecodeError, AttributeError):
        raise JsontuneError(f"--resume: {path} is not valid JSON; it is written by jsontune train.") from None
    known = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in settings.items() if k in known and k != "resume"}
