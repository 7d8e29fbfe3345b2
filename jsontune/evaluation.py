"""Score a predictions file against gold records: read it, join it on id, and call `metrics.score`.

    from jsontune.evaluation import evaluate
    evaluate("runs/pred.csv", "data/test.jsonl").metrics["f1"]

`jsontune eval`, `jsontune predict --gold` and the demo all go through `evaluate`, so they report the
same numbers. Predictions are the CSV `jsontune predict` writes (id, prediction, ...) or a JSON / JSONL
of {"id", "prediction"}; an empty or null prediction means the model gave no JSON object. In predict's
CSV, a prediction whose `valid_json` is "false" was read only after repair: it is scored like the others
and counted in `json_repaired_rate`, while `json_valid_rate` counts the strict ones (a file without that
column holds no repaired ones). A prediction for an id the gold file lacks is an error (wrong gold file);
a gold record with no prediction counts as invalid JSON and is listed in `Evaluation.missing`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsontune.errors import JsontuneError

if TYPE_CHECKING:
    from jsontune.data import Record


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # metrics.score's keys, plus missing_predictions (and calibration, with confidences)
    missing: list[str]  # ids of gold records the predictions file has no row for


def evaluate(
    pred: str | os.PathLike,
    gold: str | os.PathLike,
    golds: list[Record] | None = None,
    strict: bool = False,
    review_below: float | None = None,
    review_share: float | None = None,
) -> Evaluation:
    """Field-level P/R/F1, exact match and JSON validity of the predictions in `pred` against `gold`.

    `golds` are `gold`'s records when the caller has loaded them already (with its own column names);
    `strict` compares values exactly (see `metrics.score`). When `pred` carries confidences the metrics gain
    "calibration" (`metrics.calibration`, plus "review", `metrics.review_catch`, with `review_below` and/or
    `review_share`: the queue `jsontune predict --review-below / --review-share` writes).
    """
    from jsontune.data import load_records
    from jsontune.metrics import score

    pred, gold = Path(pred), Path(gold)
    golds = load_records(gold).records if golds is None else golds
    by_id, repaired_ids = read_predictions(pred)
    predictions, targets, missing = align(by_id, golds, pred, gold)
    repaired = [g.id in repaired_ids for g in golds]
    metrics = {**score(predictions, targets, strict=strict, repaired=repaired), "missing_predictions": len(missing)}
    calibration = calibrate(pred, golds, predictions, strict, review_below, review_share)
    return Evaluation(metrics if calibration is None else {**metrics, "calibration": calibration}, missing)


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


def _prediction_rows(path: Path) -> list[tuple[str, Any, bool, str]]:
    """(id, raw prediction, whether it was strict JSON, where) for each row of a predict CSV (its valid_json
    column, where it has one) or a JSON/JSONL of {"id", "prediction"} (objects: strict)."""
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
        valid = frame["valid_json"].str.strip().str.lower() == "true" if "valid_json" in frame else [True] * len(frame)
        rows = zip(frame["id"], frame["prediction"], valid, strict=True)
        return [(i, p, bool(v), f"{path} row {n}") for n, (i, p, v) in enumerate(rows, 1)]
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
    return [(str(r["id"]), r["prediction"], True, where) for where, r in records]


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


def read_predictions(path: Path) -> tuple[dict[str, dict | None], set[str]]:
    """(predictions by id (as strings), the ids whose prediction was read only after repair); a repeated id
    is an error, not a silent overwrite."""
    predictions: dict[str, dict | None] = {}
    repaired: set[str] = set()
    for pred_id, value, strict, where in _prediction_rows(path):
        if pred_id in predictions:
            raise JsontuneError(f"{where}: id {pred_id!r} appears twice in {path}; keep one prediction per id.")
        predictions[pred_id] = _prediction(value, f"{where} (id {pred_id!r})")
        if predictions[pred_id] is not None and not strict:
            repaired.add(pred_id)
    return predictions, repaired


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


CONFIDENCE = "confidence"  # the column (CSV) or key (JSON/JSONL) `jsontune predict` writes confidences in


def calibrate(
    pred: Path,
    golds: list[Record],
    predictions: list[dict | None],
    strict: bool,
    review_below: float | None,
    review_share: float | None = None,
) -> dict[str, Any] | None:
    """`metrics.calibration` of the confidences in `pred` (in gold order, like `predictions`), with "review"
    (`metrics.review_catch`) when `review_below` or `review_share` is given; None when `pred` carries no
    confidences."""
    from jsontune.metrics import calibration, review_catch

    confidences = read_confidences(pred)
    if confidences is None:
        for flag, value in (("--review-below", review_below), ("--review-share", review_share)):
            if value is not None:
                raise JsontuneError(
                    f"{pred} has no '{CONFIDENCE}' column, so there is no review queue to count ({flag} {value}); "
                    f"use predictions from a `jsontune predict` that writes confidences, or drop {flag}."
                )
        return None
    per_record = [confidences.get(g.id) for g in golds]
    targets = [g.target for g in golds]
    result = calibration(predictions, targets, per_record, strict=strict)
    if review_below is not None or review_share is not None:
        result["review"] = review_catch(
            predictions, targets, per_record, review_below, strict=strict, share=review_share
        )
    return result


def read_confidences(path: Path) -> dict[str, dict[str, float | None] | None] | None:
    """Field confidences by id when `path` has a 'confidence' column (CSV) or key (any JSON/JSONL row), else None.

    A cell is a JSON object from path to a number in [0, 1] or null, or empty / null for a row without JSON.
    A JSON/JSONL row without the key has no confidences. `read_predictions` has read and checked `path` first.
    """
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        if CONFIDENCE not in frame.columns:
            return None
        cells = frame[["id", CONFIDENCE]].itertuples(index=False, name=None)
        rows = [(i, c, f"{path} row {n}") for n, (i, c) in enumerate(cells, 1)]
    else:
        if path.suffix.lower() == ".jsonl":
            lines = enumerate(_utf8(path).split("\n"), 1)
            records = [(f"{path} line {n}", json.loads(line)) for n, line in lines if line.strip()]
        else:
            records = [(f"{path} item {n}", item) for n, item in enumerate(json.loads(_utf8(path)), 1)]
        if not any(CONFIDENCE in r for _, r in records):
            return None
        rows = [(str(r["id"]), r.get(CONFIDENCE), where) for where, r in records]
    return {i: _confidence(value, f"{where} (id {i!r})") for i, value, where in rows}


def _confidence(value: Any, where: str) -> dict[str, float | None] | None:
    """One confidence cell: {path: number in [0, 1] or null}, or None when empty / null."""
    if isinstance(value, str):
        value = _json(value, where) if value.strip() else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JsontuneError(
            f"{where}: the confidence is not a JSON object; write {{path: number or null}}, or leave it empty "
            "when the row has no JSON."
        )
    for path, number in value.items():
        if number is not None and not (
            isinstance(number, (int, float)) and not isinstance(number, bool) and 0 <= number <= 1
        ):
            raise JsontuneError(
                f"{where}: the confidence of {path!r} is {number!r}; it must be a number from 0 to 1, or null "
                "when the field has none."
            )
    return {path: None if number is None else float(number) for path, number in value.items()}


def reliability_png_path(pred: str | os.PathLike) -> Path:
    """Where `jsontune eval` draws the reliability plot: beside PRED, named PRED's name + .reliability.png."""
    pred = Path(pred)
    return pred.with_name(pred.name + ".reliability.png")


def write_reliability_png(
    calibration: dict[str, Any], path: str | os.PathLike, fields: Collection[str] | None = None
) -> None:
    """The reliability diagram of `metrics.calibration`'s result: share correct against mean confidence in
    each bin, for all fields and for each path in `fields` (default: every path; eval passes the gold fields,
    so the keys a weak model invents count in "all fields" without a curve each), beside the diagonal a
    calibrated model lies on; and the number of fields in each bin."""
    import warnings

    from matplotlib.figure import Figure

    from jsontune.io import atomic_path

    overall = calibration["overall"]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    diagram, counts = fig.subplots(1, 2)
    diagram.plot([0, 1], [0, 1], linestyle="--", color="gray", label="calibrated")
    curves = [
        (path, figures, {"lw": 1, "marker": ".", "alpha": 0.7})
        for path, figures in calibration["per_field"].items()
        if fields is None or path in fields
    ]
    curves.append(("all fields", overall, {"lw": 2.5, "marker": "o", "color": "black"}))
    for name, figures, style in curves:
        bins = [b for b in figures["reliability"] if b["count"]]
        diagram.plot([b["mean_confidence"] for b in bins], [b["share_correct"] for b in bins], label=name, **style)
    diagram.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean confidence in the bin", ylabel="share correct")
    diagram.set_title("reliability")
    diagram.legend(fontsize="small", ncols=1 + len(curves) // 12)
    bins = overall["reliability"]
    counts.bar(
        [b["lower"] for b in bins], [b["count"] for b in bins], width=1 / len(bins), align="edge", edgecolor="white"
    )
    counts.set(xlim=(0, 1), xlabel="confidence", ylabel="fields")
    counts.set_title("fields per bin")
    auroc = "n/a" if overall["auroc"] is None else f"{overall['auroc']:.3f}"
    fig.suptitle(f"{overall['fields']} fields with a confidence (AUROC {auroc}); {overall['no_confidence']} without")
    # A legend too big for its axes makes matplotlib give up the layout with a UserWarning; the plot is still
    # drawn, and a library's warning is no message for the user of eval.
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.savefig(tmp, format="png", dpi=120)
