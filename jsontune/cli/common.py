"""Shared CLI plumbing: user errors become one red sentence and exit code 1, never a traceback."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from jsontune.errors import JsontuneError
from jsontune.serving.ray_engine import LOCAL

console = Console()
err_console = Console(stderr=True)
_EVAL_SUMMARY = ("precision", "recall", "f1", "exact_match", "json_valid_rate")

F = TypeVar("F", bound=Callable)

# Options several verbs share, defined once: the same flag means the same thing everywhere.
TrustRemoteCode = Annotated[
    bool, typer.Option("--trust-remote-code", help="Run the model repository's own Python code (off).")
]
# Scale-out on Ray (predict and bench). `--ray` may stand alone (a Ray on the local machine): see RayCommand.
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run replicas on Ray: alone, a Ray started on the local machine; auto, the running cluster "
        "(`ray start`); or HOST:PORT / ray://HOST:PORT.",
    ),
]
Replicas = Annotated[int, typer.Option(help="With --ray: engine replicas, each holding one model.")]
GpusPerReplica = Annotated[
    float | None,
    typer.Option(help="With --ray: GPUs per replica (default: vLLM --tensor-parallel-size, HF 1; 0 without GPUs)."),
]
CpusPerReplica = Annotated[float | None, typer.Option(help="With --ray: CPUs per replica (default 1).")]
# The review queue (predict writes it, eval scores it, review serves it): one rule, metrics.review_queue.
ReviewBelow = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="The review queue: the rows with a field below this confidence (predict writes them to "
        "OUT.review.jsonl, eval counts the wrong fields they hold, review serves them).",
    ),
]
ReviewShare = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="The review queue: the least confident share of the rows (0.2: 20 %)."),
]


class RayCommand(TyperCommand):
    """A verb whose `--ray` takes an optional ADDRESS: `--ray` alone, or before another option, means a Ray
    started on the local machine (typer has no option with an optional value)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        for i in reversed(range(len(args))):
            if args[i] == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, LOCAL)
        return super().parse_args(ctx, args)


def options_from(cls: type, name: str, engines: tuple[str, ...] | None = None) -> Callable[[F], F]:
    """A decorator that gives a verb one option per field of settings dataclass `cls` (for those of `engines`
    when given: `serve` takes vLLM's only), with the field's type, default and help, and calls the verb with
    the options gathered into one `cls` object as its parameter `name`. The flags are made from the
    declaration, so every verb that takes a setting spells and explains it alike."""
    from jsontune.serving.settings import declared, flag_names

    options = declared(cls, engines)

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != name]
        made = [
            inspect.Parameter(
                option,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[kind, typer.Option(*flag_names(option, kind), help=help)],
            )
            for option, kind, default, help in options
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {option: kwargs.pop(option) for option, *_ in options if option in kwargs}
            return fn(*args, **kwargs, **{name: cls(**values)})

        wrapper.__signature__ = signature.replace(parameters=[*kept, *made])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*kept, *made]}
        return wrapper  # type: ignore[return-value]

    return decorate


def engine_options(*engines: str) -> Callable[[F], F]:
    """The verb's engine flags, from `EngineSettings`; it is called with `settings: EngineSettings`."""
    from jsontune.serving.settings import EngineSettings

    return options_from(EngineSettings, "settings", engines or None)


def input_options(fn: F) -> F:
    """The verb's input-column flags (--text-col, ...), from `InputColumns`; it is called with `columns`."""
    from jsontune.data.records import InputColumns

    return options_from(InputColumns, "columns")(fn)


def print_load_report(loaded: Any, skipped_label: str) -> None:
    """A LoadResult's skipped rows (each as `skipped_label: sentence`) and its notes, on stderr, unwrapped."""
    for label, sentences in ((skipped_label, loaded.skipped), ("note", loaded.notes)):
        for sentence in sentences:
            err_console.print(f"[yellow]{label}:[/yellow] {escape(sentence)}", highlight=False, soft_wrap=True)


def print_eval_report(result: dict[str, Any]) -> None:
    """`jsontune eval`'s tables (summary, per field, errors), for eval and `predict --gold` alike.

    The per-field table keeps the gold fields and folds the keys predictions invented into one row.
    """
    from jsontune.metrics import fold_invented

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
    gold_fields, invented = fold_invented(result["per_field"])
    for path, row in gold_fields.items():
        fields.add_row(escape(path), *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    if invented:  # never in gold: precision 0 (every leaf on them is wrong), nothing to recall
        fields.add_row(_invented_label(invented), "0.0000", "0.0000", "0.0000", "0")
    errors = Table(title="errors")
    errors.add_column("kind")
    errors.add_column("count", justify="right")
    for kind, count in result["errors"].items():
        errors.add_row(kind, str(count))
    console.print(summary)
    console.print(
        f"json_repaired_rate {result['json_repaired_rate']:.4f}: JSON read only after repair (scored above, not "
        "counted as valid JSON)",
        highlight=False,
    )
    for table in (fields, errors):
        console.print(table)
    if "calibration" in result:
        print_calibration(result["calibration"], set(gold_fields))


def _invented_label(invented: dict[str, Any]) -> str:
    """One table row's name for the keys predictions invented (`metrics.fold_invented`); --json lists each."""
    named = ", ".join(f"{path} ({n})" for path, n in invented["most_predicted"])
    more = ", …" if invented["keys"] > len(invented["most_predicted"]) else ""
    return escape(f"{invented['keys']} invented key(s), {invented['predicted']} leaves: {named}{more}")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_calibration(calibration: dict[str, Any], gold_fields: set[str]) -> None:
    """The confidence tables: AUROC and auto-accept coverage per field, the reliability bins, the review catch.

    A path not in `gold_fields` (a key predictions invented) gets no row of its own: they share one.
    """
    from jsontune.metrics import AUTO_ACCEPT_PRECISIONS

    per_field = calibration["per_field"]
    rows = [("all fields", calibration["overall"])]
    rows += [(escape(path), row) for path, row in per_field.items() if path in gold_fields]
    invented = [row for path, row in per_field.items() if path not in gold_fields]
    if invented:
        # Every field on an invented key is wrong: no AUROC (one class), no threshold reaches a precision.
        none_accepted = {"coverage": 0.0, "threshold": None}
        folded = {
            "fields": sum(row["fields"] for row in invented),
            "no_confidence": sum(row["no_confidence"] for row in invented),
            "auroc": None,
            "auto_accept": {str(p): none_accepted for p in AUTO_ACCEPT_PRECISIONS},
        }
        rows.append((f"{len(invented)} invented key(s)", folded))
    table = Table(title="calibration")
    accept = Table(title="auto-accept")
    for t, names in [
        (table, ("fields", "no conf.", "auroc")),
        (accept, tuple(f"{h}@{p:.0%}" for p in AUTO_ACCEPT_PRECISIONS for h in ("cover", "thr"))),
    ]:
        t.add_column("field", no_wrap=True)
        for name in names:
            t.add_column(name, justify="right")
    for path, row in rows:
        table.add_row(path, str(row["fields"]), str(row["no_confidence"]), _share(row["auroc"]))
        accepts = [row["auto_accept"][str(p)] for p in AUTO_ACCEPT_PRECISIONS]
        accept.add_row(path, *(_share(c) for a in accepts for c in (a["coverage"], a["threshold"])))
    bins = Table(title="reliability (all fields)")
    for name in ("confidence", "fields", "mean confidence", "share correct"):
        bins.add_column(name, justify="right")
    for b in calibration["overall"]["reliability"]:
        bins.add_row(
            f"{b['lower']:.1f}-{b['upper']:.1f}",
            str(b["count"]),
            _share(b["mean_confidence"]),
            _share(b["share_correct"]),
        )
    for t in (table, accept, bins):
        console.print(t)
    console.print(
        f"no confidence: {calibration['overall']['no_confidence']} fields, left out of AUROC, reliability and cover. "
        "cover@P: the largest share of fields that confidence >= thr accepts with precision >= P.",
        highlight=False,
    )
    review = calibration.get("review")
    if review:
        asked = [f"below {review['below']}"] if review["below"] is not None else []
        asked += [f"the least confident {review['share']:.0%}"] if review.get("share") is not None else []
        console.print(
            f"review {' or '.join(asked)}: {review['queued_records']} of {review['records']} records queued; "
            f"they hold {review['caught_records']} of the {review['wrong_records']} records with a wrong field "
            f"and {review['caught_fields']} of the {review['wrong_fields']} wrong fields "
            "(wrong predicted values and made-up keys; missed gold fields are not counted).",
            highlight=False,
        )


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
