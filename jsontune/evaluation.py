"""Score a predictions file against gold records: read it, join it on id, and call `metrics.score`.

    from jsontune.evaluation import evaluate
    evaluate("runs/pred.csv", "data/test.jsonl").metrics["f1"]

`jsontune eval`, `jsontune predict --gold` and the demo all go through `evaluate`, so they report the
same numbers. Predictions are the CSV `jsontune predict` writes (id, prediction, ...) or a JSON / JSONL
of {"id", "prediction"}; an empty or null prediction means the model gave no valid JSON. A prediction
for an id the gold file lacks is an error (wrong gold file); a gold record with no prediction counts
as invalid JSON and is listed in `Evaluation.missing`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsontune.errors import JsontuneError

if TYPE_CHECKING:
    from jsontune.data import Record


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # metrics.score's keys, plus missing_predictions
    missing: list[str]  # ids of gold records the predictions file has no row for


def evaluate(
    pred: str | os.PathLike, gold: str | os.PathLike, golds: list[Record] | None = None, strict: bool = False
) -> Evaluation:
    """Field-level P/R/F1, exact match and JSON validity of the predictions in `pred` against `gold`.

    `golds` are `gold`'s records when the caller has loaded them already (with its own column names);
    `strict` compares values exactly (see `metrics.score`).
    """
    from jsontune.data import load_records
    from jsontune.metrics import score

    pred, gold = Path(pred), Path(gold)
    golds = load_records(gold).records if golds is None else golds
    predictions, targets, missing = align(read_predictions(pred), golds, pred, gold)
    return Evaluation({**score(predictions, targets, strict=strict), "missing_predictions": len(missing)}, missing)


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


def first_ids(ids: list[str], k: int = 5) -> str:
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
            f"{pred_path} has {len(unknown)} id(s) that are not in {gold_path} ({first_ids(unknown)}); "
            "evaluate against the gold file the predictions were made from (or pass --id-col)."
        )
    missing = [i for i in gold_ids if i not in predictions]
    return [predictions.get(i) for i in gold_ids], [g.target for g in golds], missing
