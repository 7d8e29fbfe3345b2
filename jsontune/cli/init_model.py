"""`jsontune init-model`: thin CLI over jsontune.offline.init_model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jsontune import offline
from jsontune.cli.common import console


def init_model(
    preset: Annotated[str, typer.Option(help=f"Model shape: {' or '.join(offline.PRESETS)}.")],
    out: Annotated[Path, typer.Option(help="Folder to write the model to (must not exist or be empty).")],
    seed: Annotated[int, typer.Option(help="Seed for the random weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Delete and replace a non-empty --out folder.")] = False,
    pretrain_steps: Annotated[
        int,
        typer.Option(
            help="Then train all weights this many steps on a synthetic copy corpus (stands in for "
            "pretraining; no chat template or JSON in it). 0 keeps the random weights."
        ),
    ] = 0,
) -> None:
    """Make a random-init Qwen3 model folder offline (weights, config, Qwen3-style tokenizer and chat template).

    `tiny` is small enough to fine-tune on a CPU; `qwen3-0.6b` has Qwen/Qwen3-0.6B's exact shape for benchmarks.
    The weights are random: use the folder to test the pipeline, not for real predictions. With
    --pretrain-steps (a few hundred for `tiny`, minutes on a CPU) the model first learns to copy spans
    and numbers out of a text, so that fine-tuning it shows what fine-tuning a pretrained model does.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console, transient=True) as bar:
        task = bar.add_task(
            f"pretraining {preset} on the synthetic copy corpus",
            total=pretrain_steps or None,
            visible=bool(pretrain_steps),
        )

        def on_step(step: int, steps: int, loss: float) -> None:
            bar.update(task, completed=step, description=f"pretraining {preset}: LM loss {loss:.3f}")

        path = offline.init_model(preset, out, seed=seed, force=force, pretrain_steps=pretrain_steps, on_step=on_step)
    manifest = json.loads((path / offline.MANIFEST_NAME).read_text(encoding="utf-8"))
    weights = "random"
    if pretrain_steps:
        weights = f"pretrained {pretrain_steps} steps, LM loss {manifest['pretrain_loss']:.3f}"
    console.print(
        f"wrote {path}: preset {preset}, {manifest['parameters'] / 1e6:.2f}M parameters ({weights}, seed {seed}), "
        f"model vocab {manifest['vocab_size']}, tokenizer {manifest['tokenizer_size']} tokens"
    )
