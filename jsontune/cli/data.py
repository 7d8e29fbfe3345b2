"""`jsontune data`: make synthetic orders, check a dataset file, augment one.

jsontune data synth --n 2000 --out data/synth --seed 0
jsontune data check data/synth/train.jsonl
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from jsontune.cli import data_augment
from jsontune.cli.common import console, input_options, print_load_report, user_errors
from jsontune.data import InputColumns, load_records
from jsontune.data.synth import split_sizes, write_splits

app = typer.Typer(help="Make, check and augment datasets.", no_args_is_help=True)


def synth(
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl, val.jsonl and test.jsonl.")],
    n: Annotated[int, typer.Option("--n", help="How many orders in all; split 80/10/10.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same orders.")] = 0,
) -> None:
    """Write synthetic Spanish purchase orders as train/val/test JSONL files."""
    paths = write_splits(n, out, seed)
    sizes = split_sizes(n)
    table = Table("split", "orders", "file")
    for name, path in paths.items():
        table.add_row(name, str(sizes[name]), escape(str(path)))
    console.print(table)


@input_options
def check(
    file: Annotated[str, typer.Argument(help=".jsonl, .json, .csv, .parquet, a save_to_disk folder or a Hub id.")],
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
    require_target: Annotated[bool, typer.Option(help="Every row must have a target.")] = True,
) -> None:
    """Validate a dataset file; exits 1 if any row is bad, naming the file and the row."""
    result = load_records(file, columns, require_target=require_target)
    print_load_report(result, "bad row")
    columns = f"text: {result.text_col}, target: {result.target_col or '-'}, id: {result.id_col or 'row number'}"
    console.print(
        f"{escape(str(result.path))}: [green]{len(result.records)} rows OK[/green], "
        f"{len(result.skipped)} skipped ({escape(columns)})",
        highlight=False,
        soft_wrap=True,
    )
    if result.skipped:
        raise typer.Exit(1)


app.command("synth")(user_errors(synth))
app.command("check")(user_errors(check))
app.command("augment")(user_errors(data_augment.augment))
