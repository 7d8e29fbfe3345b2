"""`jsontune eval`: field-level precision / recall / F1 of predictions against gold JSON.

jsontune eval runs/pred.csv --gold data/test.jsonl
jsontune eval runs/pred.csv --gold data/test.jsonl --json | jq .f1
jsontune eval runs/pred.csv --gold data/test.jsonl --review-below 0.9   # predictions with confidences
jsontune eval runs/pred.csv --gold data/test.jsonl --review-share 0.2   # the least confident 20 % of rows

Where `jsontune review runs/pred.csv` has kept a review (runs/pred.csv.review.sqlite), eval also prints what its
audit says of the rows the review's threshold accepts ("review_audit" in --json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import (
    ReviewBelow,
    ReviewShare,
    console,
    err_console,
    input_options,
    print_eval_report,
    print_load_report,
)
from jsontune.data import InputColumns


@input_options
def eval_cmd(
    pred: Annotated[
        Path,
        typer.Argument(
            help='Predictions: the CSV from `jsontune predict`, or a JSONL/JSON of {"id", "prediction"}.', exists=True
        ),
    ],
    gold: Annotated[Path, typer.Option(help="Gold records (any format `jsontune` reads), joined on id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
    strict: Annotated[
        bool, typer.Option(help='Compare values exactly (1500 != 1500.0 != "1500", case and accents count).')
    ] = False,
    review_below: ReviewBelow = None,
    review_share: ReviewShare = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
) -> None:
    """Score predictions against gold JSON: field-level precision, recall, F1, exact match, JSON validity.

    A gold record with no prediction counts as invalid JSON and is reported. When the predictions carry
    confidences, also their calibration (AUROC, reliability bins, auto-accept coverage), and a reliability
    plot written beside PRED as PRED.reliability.png.
    """
    from jsontune.data import load_records
    from jsontune.evaluation import evaluate, first_ids, reliability_png_path, write_reliability_png

    loaded = load_records(gold, columns)
    print_load_report(loaded, "skipped gold row")
    evaluation = evaluate(
        pred, gold, loaded.records, strict=strict, review_below=review_below, review_share=review_share
    )
    result, missing = evaluation.metrics, evaluation.missing
    if missing:
        err_console.print(
            f"[yellow]{len(missing)} gold record(s) have no prediction in {pred} ({first_ids(missing)}); "
            "counted as invalid JSON.[/yellow]",
            highlight=False,
        )
    plot = reliability_png_path(pred) if "calibration" in result else None
    if plot:
        gold_fields = {path for path, row in result["per_field"].items() if row["support"] > 0}
        write_reliability_png(result["calibration"], plot, gold_fields)
    audit = _review_audit(pred)
    if audit is not None:
        result["review_audit"] = audit
    if json_out:
        print(json.dumps(result))  # plain print: rich would wrap a long line
    else:
        print_eval_report(result)
        if audit is not None:
            console.print(f"review audit: {audit['sentence']}", highlight=False, soft_wrap=True)
    if plot:
        (err_console if json_out else console).print(f"reliability plot: {plot}", highlight=False, soft_wrap=True)


def _review_audit(pred: Path) -> dict | None:
    """What the audit of PRED's review page (PRED.review.sqlite) says of the rows its threshold accepts, where
    there is one; a review made for other predictions is a note, not an error."""
    from rich.markup import escape

    from jsontune.errors import JsontuneError
    from jsontune.review.job import audit_of

    try:
        return audit_of(pred)
    except JsontuneError as e:
        err_console.print(f"[yellow]note:[/yellow] no review audit: {escape(str(e))}", highlight=False, soft_wrap=True)
        return None
