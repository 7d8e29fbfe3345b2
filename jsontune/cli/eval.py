"""`jsontune eval`: field-level precision / recall / F1 of predictions against gold JSON.

jsontune eval runs/pred.csv --gold data/test.jsonl
jsontune eval runs/pred.csv --gold data/test.jsonl --json | jq .f1
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from jsontune.cli.common import IdCol, SkipBadRows, TargetCol, TextCol, console, err_console, print_load_report
from jsontune.errors import JsontuneError

if TYPE_CHECKING:
    from jsontune.data import Record

_SUMMARY = ("precision", "recall", "f1", "exact_match", "json_valid_rate")


def _prediction(value: Any, where: str) -> dict | None:
    """One prediction cell: a JSON object, or empty / null when the output had no valid JSON."""
    if isinstance(value, str):
        value = _json(value, where) if value.strip() else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JsontuneError(
            f"{where}: the prediction is not a JSON object; write it as compact JSON, or leave it empty "
            "when the model gave no valid JSON."
        )
    return value


def _prediction_rows(path: Path) -> list[tuple[str, Any, str]]:
    """(id, raw prediction, where) for each row of a predict CSV or a JSON/JSONL of {"id", "prediction"}."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pandas as pd

        # Ids stay strings ("007" is not 7) and an empty prediction stays "" rather than NaN.
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except pd.errors.EmptyDataError:
            raise JsontuneError(f"{path} is empty; it needs the header id,prediction and a row per id.") from None
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from None
        except pd.errors.ParserError as e:
            raise JsontuneError(f"{path} could not be read as CSV ({' '.join(str(e).split())}).") from None
        if not {"id", "prediction"} <= set(frame.columns):
            raise JsontuneError(
                f"{path} has columns {list(frame.columns)}; it needs 'id' and 'prediction' "
                "(the CSV that `jsontune predict` writes)."
            )
        rows = frame[["id", "prediction"]].itertuples(index=False, name=None)
        return [(i, p, f"{path} row {n}") for n, (i, p) in enumerate(rows, 1)]
    if suffix == ".jsonl":
        lines = [(n, line) for n, line in enumerate(_utf8(path).split("\n"), 1)]
        records = [(f"{path} line {n}", _json(line, f"{path} line {n}")) for n, line in lines if line.strip()]
    elif suffix == ".json":
        data = _json(_utf8(path), str(path))
        if not isinstance(data, list):
            raise JsontuneError(f"{path} is not a JSON list; write a list of {{'id', 'prediction'}} objects.")
        records = [(f"{path} item {n}", item) for n, item in enumerate(data, 1)]
    else:
        raise JsontuneError(f"{path}: predictions must be a .csv from `jsontune predict`, or .jsonl / .json.")
    for where, record in records:
        if not isinstance(record, dict) or "id" not in record or "prediction" not in record:
            raise JsontuneError(f"{where} needs the keys 'id' and 'prediction' (null when there is none).")
    return [(str(r["id"]), r["prediction"], where) for where, r in records]


def _utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def _not_utf8(path: Path, e: UnicodeDecodeError) -> JsontuneError:
    return JsontuneError(
        f"{path} is not UTF-8 (byte {e.object[e.start : e.start + 1]!r} at offset {e.start}); save it as UTF-8."
    )


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise JsontuneError(f"{where} is not valid JSON ({e}); fix or remove it.") from None


def read_predictions(path: Path) -> dict[str, dict | None]:
    """Predictions by id (as strings); a repeated id is an error, not a silent overwrite."""
    predictions: dict[str, dict | None] = {}
    for pred_id, value, where in _prediction_rows(path):
        if pred_id in predictions:
            raise JsontuneError(f"{where}: id {pred_id!r} appears twice in {path}; keep one prediction per id.")
        predictions[pred_id] = _prediction(value, f"{where} (id {pred_id!r})")
    return predictions


def _first(ids: list[str], k: int = 5) -> str:
    return ", ".join(repr(i) for i in ids[:k]) + (", …" if len(ids) > k else "")


def align(
    predictions: dict[str, dict | None], golds: list[Record], pred_path: Path, gold_path: Path
) -> tuple[list[dict | None], list[dict], list[str]]:
    """(predictions in gold order, gold targets, ids of gold records PRED has no row for)."""
    gold_ids = [g.id for g in golds]  # unique: load_records rejects a repeated id
    known = set(gold_ids)
    unknown = [i for i in predictions if i not in known]
    if unknown:
        raise JsontuneError(
            f"{pred_path} has {len(unknown)} id(s) that are not in {gold_path} ({_first(unknown)}); "
            "evaluate against the gold file the predictions were made from (or pass --id-col)."
        )
    missing = [i for i in gold_ids if i not in predictions]
    return [predictions.get(i) for i in gold_ids], [g.target for g in golds], missing


def print_report(result: dict[str, Any]) -> None:
    summary = Table(title="eval")
    for name in (*_SUMMARY, "n"):
        summary.add_column(name, justify="right")
    summary.add_row(*(f"{result[k]:.4f}" for k in _SUMMARY), str(result["n"]))
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
    text_col: TextCol = None,
    target_col: TargetCol = None,
    id_col: IdCol = None,
    skip_bad_rows: SkipBadRows = False,
) -> None:
    """Score predictions against gold JSON: field-level precision, recall, F1, exact match, JSON validity.

    A gold record with no prediction counts as invalid JSON and is reported.
    """
    from jsontune.data import load_records
    from jsontune.metrics import score

    loaded = load_records(gold, text_col=text_col, target_col=target_col, id_col=id_col, skip_bad_rows=skip_bad_rows)
    golds = loaded.records
    print_load_report(loaded, "skipped gold row")
    predictions, targets, missing = align(read_predictions(pred), golds, pred, gold)
    result = {**score(predictions, targets, strict=strict), "missing_predictions": len(missing)}
    if missing:
        err_console.print(
            f"[yellow]{len(missing)} gold record(s) have no prediction in {pred} ({_first(missing)}); "
            "counted as invalid JSON.[/yellow]",
            highlight=False,
        )
    if json_out:
        print(json.dumps(result))  # plain print: rich would wrap a long line
    else:
        print_report(result)
