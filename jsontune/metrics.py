"""Field-level precision / recall / F1, exact match and JSON validity. Pure: no I/O, no torch.

A record is a bag of leaf fields. Nested keys join with "." (`{"a": {"b": 1}}` -> `a.b`), and the
items of a list share one path with "[]" (`{"a": [{"b": 1}, {"b": 2}]}` -> `a[].b` twice), so a
list is compared as a multiset: order does not matter, repeats do. An empty dict or list is a leaf.

A predicted leaf is a true positive when the gold record has the same path with an equal value
(each gold leaf matches at most once); every other predicted leaf is a false positive and every
unmatched gold leaf a false negative. Counts are summed over all records (micro average). A
prediction of None (no JSON object could be extracted) predicts nothing: all its gold leaves are
false negatives.

Valid JSON is strict JSON: a prediction counts in `json_valid_rate` when the model wrote it as a plain
`json.loads` reads it. One that was only read after repair (`repaired`, as `parsing.find_json` says) is
scored like any other, and counted in `json_repaired_rate` instead.

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
from bisect import bisect_right
from collections import Counter
from itertools import groupby
from operator import itemgetter
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


def score(
    predictions: list[dict[str, Any] | None],
    golds: list[dict[str, Any]],
    strict: bool = False,
    repaired: list[bool] | None = None,
) -> dict:
    """Micro P/R/F1 over leaf fields, exact-match, JSON-valid and JSON-repaired rates, a per-field table and
    error counts.

    The per-field table has a row for every path a gold record or a prediction holds: precision, recall, f1,
    support (the gold leaves on the path) and predicted (the predicted leaves on it; a key no gold record has,
    support 0, is one the predictions invented: `fold_invented` folds those for a printed table).

    `repaired` marks the predictions that were read only after repair (default: none was). `errors` counts
    fields of the predictions (missing_key, extra_key, wrong_value) and records whose prediction is None
    (invalid_json). The result is plain JSON-serialisable data.
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold records; they must pair up.")
    repaired = repaired if repaired is not None else [False] * len(predictions)
    if len(repaired) != len(predictions):
        raise ValueError(f"{len(repaired)} repaired flags for {len(predictions)} predictions; they must pair up.")
    fields: dict[str, Counter] = {}
    errors = Counter(missing_key=0, extra_key=0, wrong_value=0, invalid_json=0)
    exact = valid = fixed = 0
    for prediction, gold, was_repaired in zip(predictions, golds, repaired, strict=True):
        gold_leaves = _leaves(gold, strict)
        if prediction is None:
            errors["invalid_json"] += 1
            # Its misses are counted once, as invalid_json, not again as missing keys.
            _tally(gold_leaves, Counter(), fields, Counter())
            continue
        pred_leaves = _leaves(prediction, strict)
        _tally(gold_leaves, pred_leaves, fields, errors)
        fixed += was_repaired
        valid += not was_repaired
        exact += gold_leaves == pred_leaves
    total = sum(fields.values(), Counter())
    n = len(golds)
    return {
        **_prf(total["tp"], total["fp"], total["fn"]),
        "exact_match": _ratio(exact, n),
        "json_valid_rate": _ratio(valid, n),
        "json_repaired_rate": _ratio(fixed, n),
        "n": n,
        "per_field": {
            path: {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["tp"] + c["fn"], "predicted": c["tp"] + c["fp"]}
            for path, c in fields.items()
        },
        "errors": dict(errors),
    }


def fold_invented(per_field: dict[str, dict[str, Any]], named: int = 3) -> tuple[dict[str, dict], dict | None]:
    """`score`'s per-field table split for people: (the rows of the gold fields, the invented keys folded).

    A gold field is a path some gold record has (support > 0); its rows keep their order. Every other path is
    a key predictions invented (a weak model invents hundreds); they fold into {"keys": how many, "predicted":
    how many leaves they hold in all, "most_predicted": [(path, leaves), ...] the `named` most predicted, ties
    in first-seen order}, or None when there is none.
    """
    gold = {path: row for path, row in per_field.items() if row["support"] > 0}
    invented = [(path, row["predicted"]) for path, row in per_field.items() if row["support"] == 0]
    if not invented:
        return gold, None
    ranked = sorted(invented, key=lambda item: -item[1])  # stable: ties stay in first-seen order
    return gold, {"keys": len(invented), "predicted": sum(n for _, n in invented), "most_predicted": ranked[:named]}


# Calibration: how well a field's confidence tells a right value from a wrong one.
#
# `jsontune predict` gives every predicted leaf a confidence: a map from path (as `flatten` names it, so the
# items of a list share one number) to a number in [0, 1], or None where it has none (a repaired value, or
# one not found in the raw output). A field is one predicted leaf; its label is `leaf_correctness`.

RELIABILITY_BINS = 10
AUTO_ACCEPT_PRECISIONS = (0.95, 0.99)


def leaf_correctness(
    prediction: dict[str, Any] | None, gold: dict[str, Any], strict: bool = False
) -> list[tuple[str, bool]]:
    """(path, correct) for every leaf of `prediction`, in `flatten` order; [] when it is None.

    A leaf is correct exactly when `score` counts it a true positive: the matches are `score`'s own multiset
    intersection of (path, normalized value), so a path's correct leaves number its tp. When a predicted
    value repeats more often than gold has it (list items), the first ones are the correct ones.
    """
    if prediction is None:
        return []
    matched = _leaves(gold, strict) & _leaves(prediction, strict)
    marks = []
    for path, value in flatten(prediction):
        key = (path, normalize_value(value, strict))
        marks.append((path, matched[key] > 0))
        matched[key] -= 1
    return marks


def auroc(confidences: list[float], correct: list[bool]) -> float | None:
    """The chance that a correct field drawn at random has a higher confidence than a wrong one, a tie
    counting one half: the area under the ROC curve, as the Mann-Whitney U statistic over n_correct x n_wrong.
    None when every field is correct or every field is wrong (one class: no pair to compare)."""
    n_correct = sum(correct)
    n_wrong = len(correct) - n_correct
    if not n_correct or not n_wrong:
        return None
    u = wrong_below = 0.0
    for _, group in groupby(sorted(zip(confidences, correct, strict=True)), key=itemgetter(0)):
        labels = [ok for _, ok in group]
        right = sum(labels)
        u += right * (wrong_below + (len(labels) - right) / 2)
        wrong_below += len(labels) - right
    return u / (n_correct * n_wrong)


def reliability(confidences: list[float], correct: list[bool], bins: int = RELIABILITY_BINS) -> list[dict]:
    """`bins` equal-width bins over [0, 1]; bin i holds lower <= confidence < upper (1.0 falls in the last).
    Each bin: lower, upper, count, mean_confidence and share_correct (both None when the bin is empty)."""
    edges = [i / bins for i in range(bins + 1)]
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, ok in zip(confidences, correct, strict=True):
        members[min(bisect_right(edges, confidence) - 1, bins - 1)].append((confidence, ok))
    return [
        {
            "lower": edges[i],
            "upper": edges[i + 1],
            "count": len(pairs),
            "mean_confidence": sum(c for c, _ in pairs) / len(pairs) if pairs else None,
            "share_correct": sum(ok for _, ok in pairs) / len(pairs) if pairs else None,
        }
        for i, pairs in enumerate(members)
    ]


def auto_accept(confidences: list[float], correct: list[bool], precision: float) -> dict[str, Any]:
    """The most fields a confidence threshold can accept while the accepted ones stay `precision` correct.

    Accepting means confidence >= threshold. Every confidence seen is tried as the threshold (fields with
    equal confidence are accepted together), and the lowest one whose accepted fields are at least `precision`
    correct wins: precision need not fall steadily as the threshold falls, so the search does not stop at the
    first miss. Returns threshold (None when no threshold reaches `precision`), coverage (accepted / all
    fields; 0.0 then), accepted, and the accepted fields' precision (None when none are accepted).
    """
    best: dict[str, Any] = {"threshold": None, "coverage": 0.0, "accepted": 0, "precision": None}
    accepted = right = 0
    for threshold, group in groupby(sorted(zip(confidences, correct, strict=True), reverse=True), key=itemgetter(0)):
        labels = [ok for _, ok in group]
        accepted += len(labels)
        right += sum(labels)
        # A correctly rounded division: exactly 19/20 is the float 0.95, so the boundary case passes.
        if right / accepted >= precision:
            best = {
                "threshold": threshold,
                "coverage": accepted / len(confidences),
                "accepted": accepted,
                "precision": right / accepted,
            }
    return best


def _calibrate(pairs: list[tuple[float, bool]], no_confidence: int) -> dict[str, Any]:
    confidences, correct = [c for c, _ in pairs], [ok for _, ok in pairs]
    return {
        "fields": len(pairs),
        "correct": sum(correct),
        "no_confidence": no_confidence,
        "auroc": auroc(confidences, correct),
        "reliability": reliability(confidences, correct),
        "auto_accept": {str(p): auto_accept(confidences, correct, p) for p in AUTO_ACCEPT_PRECISIONS},
    }


def calibration(
    predictions: list[dict[str, Any] | None],
    golds: list[dict[str, Any]],
    confidences: list[dict[str, float | None] | None],
    strict: bool = False,
) -> dict[str, Any]:
    """AUROC, reliability bins and auto-accept coverage of the fields' confidences, overall and per path.

    `confidences[i]` is record i's map from path to confidence (None when the record has none). A field whose
    confidence is None, or whose path the map lacks, is left out of every figure and counted in
    `no_confidence`. `per_field` lists paths in the order they are first predicted.
    """
    if not len(predictions) == len(golds) == len(confidences):
        raise ValueError(f"{len(predictions)} predictions, {len(golds)} golds, {len(confidences)} confidence maps.")
    scored: dict[str, list[tuple[float, bool]]] = {}
    missing: Counter = Counter()
    for prediction, gold, confidence in zip(predictions, golds, confidences, strict=True):
        for path, ok in leaf_correctness(prediction, gold, strict):
            scored.setdefault(path, [])
            value = (confidence or {}).get(path)
            if value is None:
                missing[path] += 1
            else:
                scored[path].append((value, ok))
    return {
        "overall": _calibrate([pair for pairs in scored.values() for pair in pairs], sum(missing.values())),
        "per_field": {path: _calibrate(pairs, missing[path]) for path, pairs in scored.items()},
    }


def review_queue(lowest: list[float | None], below: float | None = None, share: float | None = None) -> list[int]:
    """The positions of the records a review queue takes, least confident first (ties in their order).

    `lowest` is each record's min_confidence, None where it has none (no JSON, or no field with a confidence:
    nothing vouches for it; those always go in, first). A record goes in when its min_confidence is below
    `below`, or when it is among the least confident round(`share` x records). `jsontune predict --review-below /
    --review-share` writes this queue; `jsontune eval` counts what it would catch (`review_catch`).
    """
    rank = [-1.0 if value is None else value for value in lowest]
    ranked = sorted(range(len(lowest)), key=rank.__getitem__)
    chosen = {i for i in ranked if rank[i] < 0 or (below is not None and rank[i] < below)}
    if share is not None:
        chosen |= set(ranked[: round(share * len(lowest))])
    return [i for i in ranked if i in chosen]


def review_catch(
    predictions: list[dict[str, Any] | None],
    golds: list[dict[str, Any]],
    confidences: list[dict[str, float | None] | None],
    below: float | None = None,
    strict: bool = False,
    share: float | None = None,
) -> dict[str, Any]:
    """What a review queue (`review_queue`, by `below` and/or `share`) would catch of the wrong fields.

    A record's min_confidence is the lowest confidence among its predicted fields (what `jsontune predict`
    writes in that column). A wrong field is a predicted leaf that is not correct (`leaf_correctness`); gold
    leaves a prediction misses are not counted, as no confidence speaks for them.
    Returns below, share, records, queued_records, wrong_records (records with a wrong field), caught_records
    (those of them queued), wrong_fields and caught_fields (those in queued records).
    """
    marks = [leaf_correctness(p, g, strict) for p, g in zip(predictions, golds, strict=True)]
    lowest = []
    for leaves, confidence in zip(marks, confidences, strict=True):
        known = [c for path, _ in leaves if (c := (confidence or {}).get(path)) is not None]
        lowest.append(min(known) if known else None)
    queued = set(review_queue(lowest, below, share))
    counts = Counter(queued_records=len(queued), wrong_records=0, caught_records=0, wrong_fields=0, caught_fields=0)
    for i, leaves in enumerate(marks):
        wrong = sum(not ok for _, ok in leaves)
        counts["wrong_records"] += wrong > 0
        counts["caught_records"] += i in queued and wrong > 0
        counts["wrong_fields"] += wrong
        counts["caught_fields"] += wrong if i in queued else 0
    return {"below": below, "share": share, "records": len(golds), **counts}


Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95 % interval


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a share (successes / trials): 95 % by default; None when trials is 0.

    Unlike the normal approximation it stays inside [0, 1] and holds up near 0 and 1 and for small samples,
    which is where an audit of a few dozen fields of a good model lies: 20 of 20 correct gives 0.839-1.0, not
    1.0-1.0."""
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials.")
    if trials == 0:
        return None
    share, z2 = successes / trials, z * z
    center = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials))
    return max(0.0, center - half), min(1.0, center + half)


def audit_precision(correct: list[bool], asked: float) -> dict[str, Any]:
    """What a review's audit says of the fields a threshold accepts without a look.

    `correct` holds one mark per audited field (the model's leaf, `leaf_correctness` against the reviewer's
    answer) of rows drawn at random from those the threshold accepts whole; `asked` is the precision wanted.
    Returns fields, correct, precision (None without fields), interval (`wilson_interval`, None without fields)
    and verdict: "below" when the whole interval lies under `asked`, "meets" when none of it does, "unsure"
    when it straddles `asked`, None without fields. Fields of one row count as separate trials, as eval's
    coverage at a precision counts them; their errors go together more often than not, so the true interval
    is somewhat wider."""
    fields, right = len(correct), sum(correct)
    interval = wilson_interval(right, fields)
    verdict = None
    if interval is not None:
        verdict = "below" if interval[1] < asked else "meets" if interval[0] >= asked else "unsure"
    return {
        "fields": fields,
        "correct": right,
        "precision": right / fields if fields else None,
        "interval": interval,
        "asked": asked,
        "verdict": verdict,
    }
