"""`jsontune train`: thin CLI over jsontune.training.sft.train."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jsontune.cli.common import TrustRemoteCode, console, input_options
from jsontune.data import InputColumns

Opt = typer.Option


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _show_event(record: dict) -> None:
    step = record.get("step")
    if "eval_f1" in record:
        console.print(
            f"[bold]step {step}[/bold] eval F1 {record['eval_f1']:.3f}  exact {record['eval_exact_match']:.3f}"
            f"  valid JSON {record['eval_json_valid']:.3f}  ({record['eval_samples']} samples)"
        )
    elif "note" in record:
        console.print(f"[yellow]note:[/yellow] {record['note']}", highlight=False)
    elif "loss" in record:
        console.print(f"step {step} loss {record['loss']:.4f}  lr {record.get('learning_rate', 0):.2e}")


@input_options
def train(
    model: Annotated[str | None, Opt(help="Base model: a Hugging Face id or a local folder.")] = None,
    train_files: Annotated[
        list[Path] | None,
        Opt(
            "--train",
            metavar="<path>",  # typer would show <list[Path]>
            help="Training data (.jsonl/.json/.csv/.parquet). Repeat it to add a file, such as the corrections "
            "`jsontune review export` writes: a row whose id an earlier file holds replaces that row (counted and "
            "noted), so corrections override the original rows.",
        ),
    ] = None,
    val: Annotated[Path | None, Opt(help="Validation data, used by the generation F1 eval.")] = None,
    out: Annotated[Path | None, Opt(help="Run folder: best/, last/, metrics.jsonl, run.json, curves.png.")] = None,
    config: Annotated[Path | None, Opt(help="Recipe YAML (configs/*.yaml); flags override it.")] = None,
    augment_factor: Annotated[float | None, Opt(help="About K x training rows by augmentation.")] = None,
    instruction: Annotated[
        str | None,
        Opt(
            help="What each prompt says before the text: none for the text alone (shorter prompts; a base model "
            "that is not fine-tuned then answers nothing useful), or your own instruction (default: the recipe's, "
            "else the built-in Spanish one). Recorded with the adapter: predict, bench, serve and Extractor ask "
            "the same way."
        ),
    ] = None,
    epochs: Annotated[float | None, Opt(help="Training epochs (sft.num_train_epochs).")] = None,
    max_steps: Annotated[int | None, Opt(help="Stop after N optimizer steps (sft.max_steps).")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate (sft.learning_rate).")] = None,
    batch_size: Annotated[int | None, Opt(help="Per-device batch size (sft.per_device_train_batch_size).")] = None,
    grad_accum: Annotated[int | None, Opt(help="Gradient accumulation (sft.gradient_accumulation_steps).")] = None,
    lora_r: Annotated[int | None, Opt(help="LoRA rank, default 16 (lora.r).")] = None,
    lora_alpha: Annotated[int | None, Opt(help="LoRA alpha, default 32 (lora.lora_alpha).")] = None,
    lora_dropout: Annotated[float | None, Opt(help="LoRA dropout, default 0.05 (lora.lora_dropout).")] = None,
    target_modules: Annotated[
        str | None, Opt(help="Modules LoRA adapts, comma-separated (lora.target_modules).")
    ] = None,
    eval_samples: Annotated[int | None, Opt(help="Validation rows the F1 eval generates for.")] = None,
    eval_steps: Annotated[int | None, Opt(help="Evaluate F1 and checkpoint every N steps.")] = None,
    max_length: Annotated[int | None, Opt(help="Leave out rows over N tokens, default 512 (sft.max_length).")] = None,
    seed: Annotated[int | None, Opt(help="Random seed (data order, LoRA init, augmentation).")] = None,
    report_to: Annotated[str | None, Opt(help="none|tensorboard|wandb|trackio (default none).")] = None,
    gradient_checkpointing: Annotated[
        bool | None, Opt("--gradient-checkpointing/--no-gradient-checkpointing", help="Default: on with a GPU.")
    ] = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
    resume: Annotated[bool, Opt("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    trust_remote_code: TrustRemoteCode = False,
) -> None:
    """Fine-tune a LoRA adapter (TRL SFT, loss on the JSON only) and keep the one with the best eval F1.

    Any trl.SFTConfig or peft.LoraConfig setting goes in the recipe's sft: or lora: section.
    """
    from jsontune.training.recipe import build_config
    from jsontune.training.sft import train as run_training

    cfg = build_config(
        config,
        model=model,
        train=[str(path) for path in train_files] if train_files else None,
        val=str(val) if val else None,
        out=str(out) if out else None,
        augment_factor=augment_factor,
        instruction=instruction,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        eval_samples=eval_samples,
        eval_steps=eval_steps,
        max_length=max_length,
        seed=seed,
        report_to=report_to,
        gradient_checkpointing=gradient_checkpointing,
        columns=columns,
        resume=resume or None,
        trust_remote_code=trust_remote_code or None,
    )
    rank0 = os.environ.get("RANK", "0") == "0"  # torchrun / accelerate: rank 0 speaks for the run
    if rank0:
        console.print(f"training [bold]{cfg.model}[/bold] on {' + '.join(cfg.train)} -> {cfg.out}")
    summary = run_training(cfg, on_event=_show_event)
    if not rank0:
        return
    table = Table(title="jsontune train")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in [
        ("steps", summary.steps),
        ("training rows", summary.train_rows),
        ("seconds", summary.train_seconds),
        ("train tokens/s", summary.train_tokens_per_s),
        (f"peak memory GB ({summary.peak_memory_kind})", summary.peak_memory_gb),
        ("eval F1 before training", summary.f1_before),
        ("eval F1 last", summary.last_f1),
        (f"best eval F1 (step {summary.best_step})", summary.best_f1),
    ]:
        table.add_row(label, _fmt(value))
    console.print(table)
    console.print(f"best adapter: {Path(summary.run_dir) / 'best'}")
