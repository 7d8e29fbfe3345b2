"""`jsontune data augment`: label-preserving variants of a dataset's texts.

jsontune data augment --input data/train.jsonl --out data/train_aug.jsonl --factor 3 --seed 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from jsontune.cli.common import console, input_options, print_load_report
from jsontune.data import InputColumns, load_records
from jsontune.data.augment import augment_records, resolve_strategies
from jsontune.errors import JsontuneError
from jsontune.io import write_jsonl_atomic


@input_options
def augment(
    input: Annotated[Path, typer.Option("--input", help="Dataset to augment (.jsonl, .json, .csv, .parquet, ...).")],
    out: Annotated[Path, typer.Option(help="JSONL file to write: the original rows, then the variants.")],
    factor: Annotated[
        float, typer.Option(help="Rows out per row in, originals included: 3 gives about 3x the rows, 1 none added.")
    ],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 0,
    strategies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated strategies (default: all): synonyms, clause_order, punctuation, "
            "number_format, case, whitespace."
        ),
    ] = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
) -> None:
    """Write INPUT's rows plus variants reworded so that every target value is still in the text."""
    if factor < 1:
        raise JsontuneError(f"--factor must be at least 1 (got {factor}): it counts rows out per row in.")
    chosen = resolve_strategies(strategies.split(",") if strategies is not None else None)
    loaded = load_records(input, columns)
    print_load_report(loaded, "skipped")
    rows, stats = augment_records(loaded.records, factor, seed, chosen)
    write_jsonl_atomic(out, [r.to_dict() for r in rows])

    summary = Table(title=escape(f"{input} -> {out}"), show_header=False)
    for label, value in [
        ("rows in", len(loaded.records)),
        ("bad rows skipped", len(loaded.skipped)),
        ("variants requested", stats.requested),
        ("variants kept", stats.produced),
        ("dropped by the label guard", stats.dropped),
        ("dropped as duplicates", stats.duplicates),
        ("not tried (target not in its own text)", stats.unverifiable),
        ("rows out", len(rows)),
    ]:
        summary.add_row(label, str(value))
    per_strategy = Table("strategy", "used in kept variants", "dropped by the guard")
    for name in chosen:
        per_strategy.add_row(name, str(stats.applied[name]), str(stats.by_strategy[name]))
    console.print(summary, per_strategy)
