"""`jsontune merge`: thin CLI over jsontune.training.merge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import TrustRemoteCode, console, err_console
from jsontune.errors import JsontuneError

Opt = typer.Option


def merge(
    source: Annotated[Path | None, typer.Argument(help="A run folder (uses best/) or an adapter folder.")] = None,
    out: Annotated[Path | None, Opt(help="Folder for the merged checkpoint.")] = None,
    dtype: Annotated[str, Opt(help="auto|float32|bfloat16|float16 (auto: the base model's dtype).")] = "auto",
    base: Annotated[str | None, Opt(help="Base model, when the adapter does not record it.")] = None,
    verify: Annotated[bool, Opt("--verify/--no-verify", help="Compare merged vs base+adapter outputs.")] = True,
    force: Annotated[bool, Opt("--force", help="Replace --out if it exists.")] = False,
    device: Annotated[str, Opt(help="Device to merge and verify on (cpu or cuda).")] = "cpu",
    check: Annotated[Path | None, Opt("--check", help="Only lint an existing checkpoint folder.")] = None,
    trust_remote_code: TrustRemoteCode = False,
) -> None:
    """Merge a LoRA adapter into its base: one standalone, verified checkpoint ready for vLLM."""
    from jsontune.training.checkpoint import check_checkpoint
    from jsontune.training.merge import merge as run_merge

    if check is not None:
        problems = check_checkpoint(check)
        for problem in problems:
            err_console.print(f"[red]✗[/red] {check}: {problem}", highlight=False)
        if problems:
            raise typer.Exit(1)
        console.print(f"[green]✓[/green] {check} looks ready to serve (config, weights, tokenizer, template, eos/pad).")
        return
    if source is None or out is None:
        raise JsontuneError("give the run or adapter folder and --out (or --check FOLDER to lint a checkpoint).")
    with console.status(f"merging {source} ..."):
        report = run_merge(
            source,
            out,
            dtype=dtype,
            base=base,
            verify=verify,
            force=force,
            device=device,
            trust_remote_code=trust_remote_code,
        )
    if report.verified:
        console.print(
            f"verified: merge in float32 max logit difference {report.float32_max_logit_diff:.3g} (the adapter moves "
            f"logits by up to {report.adapter_effect:.3g}); as {report.dtype}: max difference "
            f"{report.max_logit_diff:.3g} ({report.relative_diff:.2e} of scale, tolerance {report.tolerance:.0e}), "
            f"greedy token agreement {report.token_agreement:.1%}"
        )
    for problem in report.problems:
        err_console.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    console.print(f"[green]merged[/green] {report.adapter} + {report.base_model} -> {report.out} ({report.dtype})")
