"""Field-level precision / recall / F1, exact match and JSON validity. Pure: no I/O, no torch.

A record is a bag of leaf fields. Nested keys join with "." (`{"a": {"b": 1}}` -> `a.b`), and the
items of a list share one path with "[]" (`{"a": [{"b": 1}, {"b": 2}]}` -> `a[].b` twice), so a
list is compared as a multiset: order does not matter, repeats do. An empty dict or list is a leaf.

A predicted leaf is a true positive when the gold record has the same path with an equal value
(each gold leaf matches at most once); every other predicted leaf is a false positive and every
unmatched gold leaf a false negative. Counts are summed over all records (micro average). A
prediction of None (no JSON object could be extracted) predicts nothing: all its gold leaves are
false negatives.

Equal values, by default (`strict=False`):
- numbers compare numerically, to 6 decimal places: 1500 == 1500.0 == "1500";
- a string that is a number in digits compares as that number: "1.500" == "1,500" == "1.500,00"
  == "1,500.00" == 1500, "7,5" == 7.5. `jsontune.data.numbers.parse_digits` reads it, the reader
  the data is written and checked with, so eval reads a number the way the data means it; its rule
  for "." and ",": a single mark after 1-3 digits and before exactly three groups thousands.
  Currency, units and words keep a string a string: "50 pesos", "$50", "doce";
- other strings are trimmed, runs of whitespace become one space, and case and accents are
  ignored: " Tornillo  Cabeza " == "tornillo cabeza", "Cañería" == "caneria";
- booleans and null are only equal to themselves (true is not 1, null is not "").
With `strict=True` values are equal only when their JSON texts are (1500 != 1500.0 != "1500").
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from jsontune.data.numbers import fold, parse_digits


def _number(value: float) -> tuple[str, Any]:
    value = float(value)
    # NaN never equals itself; its text does, so a NaN matches a NaN.
    return ("num", round(value, 6) if math.isfinite(value) else str(value))


def normalize_value(value: Any, strict: bool = False) -> Any:
    """A hashable key that is equal for two leaf values exactly when they count as the same."""
    if strict:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value is None or isinstance(value, bool):  # bool first: True is an int in Python
        return ("const", value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        number = parse_digits(value)
        return _number(number) if number is not None else ("str", fold(value))
    return ("json", json.dumps(value, sort_keys=True))


def flatten(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, value) for every leaf of a record, in order."""

    def walk(value: Any, path: str) -> list[tuple[str, Any]]:
        if isinstance(value, dict) and value:
            return [leaf for key, item in value.items() for leaf in walk(item, f"{path}.{key}")]
        if isinstance(value, list) and value:
            return [leaf for item in value for leaf in walk(item, f"{path}[]")]
        return [(path, value)]

    return [leaf for key, value in record.items() for leaf in walk(value, str(key))]


def _leaves(record: dict[str, Any], strict: bool) -> Counter:
    return Counter((path, normalize_value(value, strict)) for path, value in flatten(record))


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall)}


def _tally(gold: Counter, pred: Counter, fields: dict[str, Counter], errors: Counter) -> None:
    """Add one valid prediction's per-path counts and its error kinds."""
    for path, _ in gold + pred:
        fields.setdefault(path, Counter())
    for (path, _), count in (gold & pred).items():
        fields[path]["tp"] += count
    missed, extra = Counter(), Counter()
    for (path, _), count in (gold - pred).items():
        missed[path] += count
    for (path, _), count in (pred - gold).items():
        extra[path] += count
    for path in missed | extra:
        fields[path]["fn"] += missed[path]
        fields[path]["fp"] += extra[path]
        # An unmatched gold leaf paired with an unmatched predicted one on the same path is a wrong
        # value; what is left over is a key the prediction lacks or one it made up.
        wrong = min(missed[path], extra[path])
        errors["wrong_value"] += wrong
        errors["missing_key"] += missed[path] - wrong
        errors["extra_key"] += extra[path] - wrong


def score(predictions: list[dict[str, Any] | None], golds: list[dict[str, Any]], strict: bool = False) -> dict:
    """Micro P/R/F1 over leaf fields, exact-match and JSON-valid rates, a per-field table and error counts.

    `errors` counts fields of valid predictions (missing_key, extra_key, wrong_value) and records
    whose prediction is None (invalid_json). The result is plain JSON-serialisable data.
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold records; they must pair up.")
    fields: dict[str, Counter] = {}
    errors = Counter(missing_key=0, extra_key=0, wrong_value=0, invalid_json=0)
    exact = valid = 0
    for prediction, gold in zip(predictions, golds, strict=True):
        gold_leaves = _leaves(gold, strict)
        if prediction is None:
            errors["invalid_json"] += 1
            # Its misses are counted once, as invalid_json, not again as missing keys.
            _tally(gold_leaves, Counter(), fields, Counter())
            continue
        pred_leaves = _leaves(prediction, strict)
        _tally(gold_leaves, pred_leaves, fields, errors)
        valid += 1
        exact += gold_leaves == pred_leaves
    total = sum(fields.values(), Counter())
    n = len(golds)
    return {
        **_prf(total["tp"], total["fp"], total["fn"]),
        "exact_match": _ratio(exact, n),
        "json_valid_rate": _ratio(valid, n),
        "n": n,
        "per_field": {
            path: {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["tp"] + c["fn"]} for path, c in fields.items()
        },
        "errors": dict(errors),
    }
