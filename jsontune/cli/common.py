"""Shared CLI plumbing: user errors become one red sentence and exit code 1, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jsontune.errors import JsontuneError

console = Console()
err_console = Console(stderr=True)
_EVAL_SUMMARY = ("precision", "recall", "f1", "exact_match", "json_valid_rate")

F = TypeVar("F", bound=Callable)

# Options several verbs share, defined once: the same flag means the same thing everywhere.
TextCol = Annotated[str | None, typer.Option(help="Text column, if not found by name (text, input, texto, ...).")]
TargetCol = Annotated[
    str | None, typer.Option(help="Target JSON column, if not found by name (target, output, json, ...).")
]
IdCol = Annotated[str | None, typer.Option(help="Id column, if not found by name (else the row numbers).")]
SkipBadRows = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Skip bad rows (each named and counted) instead of stopping.")
]
TrustRemoteCode = Annotated[
    bool, typer.Option("--trust-remote-code", help="Run the model repository's own Python code (off).")
]
Dtype = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16 (or bf16, fp16, fp32).")]

GpuMemoryUtilization = Annotated[float, typer.Option(help="vLLM on a GPU: share of its memory to use.")]
MaxModelLen = Annotated[
    int | None, typer.Option(help="vLLM: context length (default: the longest prompt + --max-new-tokens).")
]
KvCacheGb = Annotated[
    float | None,
    typer.Option(help="vLLM: GiB of KV cache (default on a CPU: 64 full-length sequences, at most 1/4 of free RAM)."),
]


def print_load_report(loaded: Any, skipped_label: str) -> None:
    """A LoadResult's skipped rows (each as `skipped_label: sentence`) and its notes, on stderr, unwrapped."""
    for label, sentences in ((skipped_label, loaded.skipped), ("note", loaded.notes)):
        for sentence in sentences:
            err_console.print(f"[yellow]{label}:[/yellow] {escape(sentence)}", highlight=False, soft_wrap=True)


def print_eval_report(result: dict[str, Any]) -> None:
    """`jsontune eval`'s tables (summary, per field, errors), for eval and `predict --gold` alike."""
    summary = Table(title="eval")
    for name in (*_EVAL_SUMMARY, "n"):
        summary.add_column(name, justify="right")
    summary.add_row(*(f"{result[k]:.4f}" for k in _EVAL_SUMMARY), str(result["n"]))
    fields = Table(title="per field")
    for name, justify in [
        ("field", "left"),
        ("precision", "right"),
        ("recall", "right"),
        ("f1", "right"),
        ("support", "right"),
    ]:
        fields.add_column(name, justify=justify)
    for path, row in result["per_field"].items():
        fields.add_row(path, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    errors = Table(title="errors")
    errors.add_column("kind")
    errors.add_column("count", justify="right")
    for kind, count in result["errors"].items():
        errors.add_row(kind, str(count))
    for table in (summary, fields, errors):
        console.print(table)


def user_errors(fn: F) -> F:
    """Turn a JsontuneError (and Ctrl-C) into a one-line message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JsontuneError as e:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]; rerun with --resume to continue.")
            raise typer.Exit(130) from None
        except OSError as e:  # a path that cannot be read or written: a file where a folder should be, ...
            if not e.filename:
                raise
            path = e.filename2 or e.filename  # a rename's destination is the path the user gave
            message = f"{path}: {e.strerror or e}; check the path (and that a folder is not a file)."
            err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
