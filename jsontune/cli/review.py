"""`jsontune review`: a local page to check the least confident predictions, and the export of its corrections.

jsontune review runs/pred.csv                                   # http://127.0.0.1:PORT/, printed
jsontune review runs/pred.csv --review-below 0.5 --port 8765
jsontune review runs/pred.csv --host 0.0.0.0 --token "$(openssl rand -hex 16)"
jsontune review export runs/pred.csv --out data/corrections.jsonl
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from jsontune.cli.common import ReviewBelow, ReviewShare, console, err_console, input_options, user_errors
from jsontune.data import InputColumns

Pred = Annotated[Path, typer.Argument(help="Predictions: the CSV `jsontune predict` wrote (with confidences).")]


class _OpenByDefault(TyperGroup):
    """`jsontune review PRED.csv` opens the page (the `open` command); `jsontune review export ...` exports."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["open", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_OpenByDefault,
    help="Review the least confident predictions on a local page; export the corrections as training data.",
    no_args_is_help=True,
)


@input_options
def open_page(
    pred: Pred,
    input: Annotated[
        Path | None, typer.Option(help="The texts, if not the input file predict's manifest names (ids must match).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port (0: a free one, printed).")] = 0,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than loopback, it needs --token.")
    ] = "127.0.0.1",
    token: Annotated[
        str | None, typer.Option(help="A secret every request must carry (needed with another --host).")
    ] = None,
    review_below: ReviewBelow = None,
    review_share: ReviewShare = None,
    audit_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of the rows the threshold accepts mixed into the queue to measure them (0.05).",
        ),
    ] = None,
    precision: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="The precision the accepted rows should have (0.95); the audit says."),
    ] = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options), for --input
) -> None:
    """Serve the review page for PRED (least confident rows first); every change is saved in PRED.review.sqlite.

    The queue, its audit rows and their settings are kept in that file: start it again to carry on where it
    stopped. Keys are listed on the page."""
    from jsontune.review.app import serve
    from jsontune.review.job import Review, review_db_path

    review = Review.open(
        pred,
        input=input,
        columns=columns if input is not None else None,
        below=review_below,
        share=review_share,
        audit_share=audit_share,
        precision=precision,
    )
    summary = review.summary()

    def ready(address: str) -> None:
        console.print(
            f"{summary['in_queue']} of {summary['total']} rows in the queue, {summary['reviewed']} reviewed; "
            f"changes are saved in {escape(str(review_db_path(pred)))}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(escape(summary["audit"]["sentence"]), highlight=False, soft_wrap=True)
        console.print(f"review page: {address}  (Ctrl-C stops it)", highlight=False, soft_wrap=True)

    try:
        serve(review, host, port, token, ready)
    except KeyboardInterrupt:
        pass
    finally:
        review.close()
    err_console.print(f"review stopped; every saved change is in {escape(str(review_db_path(pred)))}.")


def export(
    pred: Pred,
    out: Annotated[Path, typer.Option(help="JSONL to write: the accepted rows as {id, text, target}.")],
    input: Annotated[
        Path | None, typer.Option(help="The texts, if not the input file predict's manifest names.")
    ] = None,
) -> None:
    """Write the rows accepted on the review page as training records (atomically), and what the audit says.

    Train on them beside the original data, e.g. `jsontune train --train data/train.jsonl --train OUT ...`."""
    from jsontune.review.job import Review

    review = Review.open(pred, input=input, create=False)
    try:
        summary = review.export(out)
    finally:
        review.close()
    console.print(
        f"{escape(str(out))}: {summary['written']} accepted row(s), {summary['corrected']} of them corrected; "
        f"{summary['unusable']} unusable, {summary['skipped']} skipped, "
        f"{summary['total'] - summary['reviewed'] - summary['skipped']} not reviewed (of {summary['total']})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(escape(summary["audit"]["sentence"]), highlight=False, soft_wrap=True)


app.command("open")(user_errors(open_page))
app.command("export")(user_errors(export))
