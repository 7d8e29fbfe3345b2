"""Calibration of field confidences: AUROC, reliability bins, auto-accept coverage, the review catch.

The expected numbers are worked out by hand in the comments; ORDERS is the example they come from.
"""

import csv
import json
import random

import pytest

from jsontune.errors import JsontuneError
from jsontune.evaluation import evaluate, read_confidences, write_reliability_png
from jsontune.metrics import (
    auroc,
    auto_accept,
    calibration,
    leaf_correctness,
    reliability,
    review_catch,
    review_queue,
    score,
)

GOLDS = [
    {"producto": "tornillo", "cantidad": 100, "precio_unitario": 50},
    {"producto": "tuerca", "cantidad": 2, "precio_unitario": 7.5},
    {"producto": "martillo", "cantidad": 1, "precio_unitario": 120},
    {"producto": "clavo", "cantidad": 3, "precio_unitario": 1},
]
# field: (confidence, correct)
#   record 1: producto (1.0, yes)  cantidad (0.9, yes)  precio_unitario (0.85, yes)
#   record 2: producto (0.9, yes)  cantidad (0.7, yes)  precio_unitario (0.4, NO: 8 for 7.5)
#   record 3: producto (0.7, NO: "martillos")  cantidad (0.3, yes)  precio_unitario (null, yes: repaired)
#   record 4: no JSON, no confidence
# 8 fields with a confidence (6 correct, 2 wrong), 1 without.
PREDICTIONS = [
    {"producto": "Tornillo", "cantidad": 100, "precio_unitario": 50},
    {"producto": "tuerca", "cantidad": 2, "precio_unitario": 8},
    {"producto": "martillos", "cantidad": "1", "precio_unitario": 120},
    None,
]
CONFIDENCES = [
    {"producto": 1.0, "cantidad": 0.9, "precio_unitario": 0.85},
    {"producto": 0.9, "cantidad": 0.7, "precio_unitario": 0.4},
    {"producto": 0.7, "cantidad": 0.3, "precio_unitario": None},
    None,
]


def test_leaf_correctness_is_score_true_positives():
    assert leaf_correctness(PREDICTIONS[1], GOLDS[1]) == [
        ("producto", True),
        ("cantidad", True),
        ("precio_unitario", False),
    ]
    assert leaf_correctness(None, GOLDS[0]) == []
    # a list item predicted twice that gold has once: the first is correct, the repeat is not
    marks = leaf_correctness({"items": [{"n": 1}, {"n": "1"}], "x": 2}, {"items": [{"n": 1.0}], "x": 3})
    assert marks == [("items[].n", True), ("items[].n", False), ("x", False)]


@pytest.mark.parametrize("strict", [False, True])
def test_leaf_correctness_agrees_with_score_on_every_path(strict):
    rng = random.Random(0)
    values = [1, 1.0, "1", "1,0", "a", " A", "á", None, True, [], {}]

    def record():
        return {
            "p": rng.choice(values),
            "l": [{"q": rng.choice(values)} for _ in range(rng.randint(0, 3))],
            **({"extra": rng.choice(values)} if rng.random() < 0.3 else {}),
        }

    for _ in range(200):
        golds = [record() for _ in range(3)]
        predictions = [record() if rng.random() < 0.9 else None for _ in range(3)]
        per_field = score(predictions, golds, strict=strict)["per_field"]
        marks = [m for p, g in zip(predictions, golds, strict=True) for m in leaf_correctness(p, g, strict)]
        for path, row in per_field.items():
            predicted = [ok for p, ok in marks if p == path]
            # precision = tp / predicted leaves on the path
            assert row["precision"] == pytest.approx(sum(predicted) / len(predicted) if predicted else 0.0)


def test_auroc_by_hand_with_a_tie():
    # pairs (correct, wrong): wrong 0.4 is below all five correct ones above 0.3: 5; wrong 0.7 is below
    # 1.0, 0.9, 0.9, 0.85 (4), ties the correct 0.7 (1/2), above 0.3 (0): 4.5. (5 + 4.5) / (6 * 2) = 19/24
    pairs = [
        (c[path], ok)
        for c, p, g in zip(CONFIDENCES, PREDICTIONS, GOLDS, strict=True)
        if p
        for path, ok in leaf_correctness(p, g)
        if c[path] is not None
    ]
    confidences, correct = zip(*pairs, strict=True)
    assert auroc(list(confidences), list(correct)) == pytest.approx(19 / 24)


def test_auroc_ties_and_one_class():
    assert auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5
    assert auroc([0.9, 0.1], [True, False]) == 1.0
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    # correct 0.8 beats both wrong ones (2), correct 0.5 ties one wrong (1/2) and beats 0.2 (1): 3.5 / 4
    assert auroc([0.8, 0.5, 0.5, 0.2], [True, True, False, False]) == pytest.approx(3.5 / 4)
    assert auroc([0.9, 0.2], [True, True]) is None
    assert auroc([0.9, 0.2], [False, False]) is None
    assert auroc([], []) is None


def test_reliability_bins_by_hand():
    confidences = [1.0, 0.9, 0.85, 0.9, 0.7, 0.4, 0.7, 0.3]
    correct = [True, True, True, True, True, False, False, True]
    bins = reliability(confidences, correct)
    assert [(b["lower"], b["upper"]) for b in bins] == [(i / 10, (i + 1) / 10) for i in range(10)]
    # a confidence on an edge falls in the bin it opens: 0.3 in 0.3-0.4, 0.7 in 0.7-0.8; 1.0 in the last
    assert [b["count"] for b in bins] == [0, 0, 0, 1, 1, 0, 0, 2, 1, 3]
    assert bins[0] == {"lower": 0.0, "upper": 0.1, "count": 0, "mean_confidence": None, "share_correct": None}
    assert (bins[3]["mean_confidence"], bins[3]["share_correct"]) == (0.3, 1.0)
    assert (bins[4]["mean_confidence"], bins[4]["share_correct"]) == (0.4, 0.0)
    assert (bins[7]["mean_confidence"], bins[7]["share_correct"]) == (pytest.approx(0.7), 0.5)
    assert (bins[8]["mean_confidence"], bins[8]["share_correct"]) == (0.85, 1.0)
    assert bins[9]["mean_confidence"] == pytest.approx((1.0 + 0.9 + 0.9) / 3)
    assert bins[9]["share_correct"] == 1.0


def test_auto_accept_coverage_by_hand():
    confidences = [1.0, 0.9, 0.85, 0.9, 0.7, 0.4, 0.7, 0.3]
    correct = [True, True, True, True, True, False, False, True]
    # from the top: >= 1.0: 1/1, >= 0.9: 3/3, >= 0.85: 4/4, >= 0.7: 5/6, >= 0.4: 5/7, >= 0.3: 6/8
    assert auto_accept(confidences, correct, 0.95) == {
        "threshold": 0.85,
        "coverage": 0.5,
        "accepted": 4,
        "precision": 1.0,
    }
    assert auto_accept(confidences, correct, 0.8)["threshold"] == 0.7  # 5/6 = 0.833
    assert auto_accept(confidences, correct, 0.75) == {
        "threshold": 0.3,
        "coverage": 1.0,
        "accepted": 8,
        "precision": 0.75,
    }


def test_auto_accept_exact_precision_and_no_threshold():
    # 19 correct fields then one wrong: accepting all 20 is exactly 95 % precise, which is enough
    confidences = [1 - i / 100 for i in range(20)]
    correct = [True] * 19 + [False]
    at95 = auto_accept(confidences, correct, 0.95)
    assert (at95["threshold"], at95["coverage"], at95["precision"]) == (confidences[-1], 1.0, 0.95)
    at99 = auto_accept(confidences, correct, 0.99)
    assert (at99["threshold"], at99["coverage"]) == (confidences[18], 0.95)
    # the most confident field is wrong, and so are all the others: nothing reaches 95 %
    none = {"threshold": None, "coverage": 0.0, "accepted": 0, "precision": None}
    assert auto_accept([0.9, 0.5], [False, False], 0.95) == none
    assert auto_accept([], [], 0.95) == none


def test_auto_accept_does_not_stop_at_the_first_miss():
    # >= 0.9: 0/1, 0.8: 1/2, 0.7: 2/3, 0.6: 3/4, 0.5: 4/5 -> 80 % only at the lowest threshold
    assert auto_accept([0.9, 0.8, 0.7, 0.6, 0.5], [False, True, True, True, True], 0.8)["threshold"] == 0.5


def test_auto_accept_takes_tied_fields_together():
    # 0.9 holds one correct and one wrong field: a threshold cannot take only the correct one
    assert auto_accept([0.95, 0.9, 0.9], [True, True, False], 0.95)["accepted"] == 1


def test_calibration_overall_and_per_field_leave_nulls_out():
    result = calibration(PREDICTIONS, GOLDS, CONFIDENCES)
    overall = result["overall"]
    assert (overall["fields"], overall["correct"], overall["no_confidence"]) == (8, 6, 1)
    assert overall["auroc"] == pytest.approx(19 / 24)
    assert overall["auto_accept"]["0.95"]["coverage"] == 0.5
    assert overall["auto_accept"]["0.99"] == overall["auto_accept"]["0.95"]
    assert list(result["per_field"]) == ["producto", "cantidad", "precio_unitario"]
    producto, cantidad, precio = result["per_field"].values()
    # producto: (1.0 yes), (0.9 yes), (0.7 no): AUROC 1; 2 of 3 accepted at >= 0.9
    assert producto["auroc"] == 1.0
    assert producto["auto_accept"]["0.95"] == {"threshold": 0.9, "coverage": 2 / 3, "accepted": 2, "precision": 1.0}
    # cantidad: all correct, one class: no AUROC, all accepted
    assert cantidad["auroc"] is None and cantidad["auto_accept"]["0.99"]["coverage"] == 1.0
    # precio_unitario: (0.85 yes), (0.4 no), and the repaired 120 without a confidence
    assert (precio["fields"], precio["no_confidence"], precio["auroc"]) == (2, 1, 1.0)
    assert sum(b["count"] for b in precio["reliability"]) == 2
    assert json.loads(json.dumps(result)) == result


def test_a_path_the_confidence_map_lacks_has_no_confidence():
    result = calibration([{"a": 1, "b": 2}], [{"a": 1, "b": 3}], [{"a": 0.9}])
    assert result["per_field"]["b"]["no_confidence"] == 1 and result["per_field"]["b"]["fields"] == 0
    assert result["overall"]["auroc"] is None  # only the correct "a" is left


def test_review_catch_by_hand():
    # min_confidence: record 1 0.85, record 2 0.4 (1 wrong field), record 3 0.3 (1 wrong), record 4 none
    below_half = review_catch(PREDICTIONS, GOLDS, CONFIDENCES, 0.5)
    assert below_half == {
        "below": 0.5,
        "share": None,
        "records": 4,
        "queued_records": 3,  # 2, 3, and 4 (nothing vouches for it)
        "wrong_records": 2,
        "caught_records": 2,
        "wrong_fields": 2,
        "caught_fields": 2,
    }
    below = review_catch(PREDICTIONS, GOLDS, CONFIDENCES, 0.35)  # record 2's 0.4 is accepted now
    assert (below["queued_records"], below["caught_records"], below["caught_fields"]) == (2, 1, 1)
    assert review_catch(PREDICTIONS, GOLDS, CONFIDENCES, 0.3)["caught_fields"] == 0  # 0.3 is not below 0.3
    # the least confident half: round(0.5 x 4) = 2 records, 4 (none) and 3 (0.3), holding 1 of the 2 wrong fields
    half = review_catch(PREDICTIONS, GOLDS, CONFIDENCES, share=0.5)
    assert (half["share"], half["queued_records"], half["caught_fields"], half["wrong_fields"]) == (0.5, 2, 1, 2)


def test_review_queue_ranks_least_confident_first_and_always_takes_the_unvouched():
    lowest = [0.9, None, 0.2, 0.5, 0.2, 0.99]
    assert review_queue(lowest, below=0.5) == [1, 2, 4]  # none first, ties in order, 0.5 is not below 0.5
    assert review_queue(lowest, share=0.5) == [1, 2, 4]  # round(0.5 x 6) = 3
    assert review_queue(lowest, share=0.0) == [1]  # a row nothing vouches for is never left out
    assert review_queue(lowest, below=0.3, share=4 / 6) == [1, 2, 4, 3]
    assert review_queue(lowest) == [1] and review_queue([]) == []


def _pred_csv(path, confidences=CONFIDENCES):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "prediction", "valid_json", "raw_output", "confidence", "min_confidence"])
        for i, (prediction, confidence) in enumerate(zip(PREDICTIONS, confidences, strict=True)):
            compact = json.dumps(prediction, separators=(",", ":")) if prediction else ""
            known = [c for c in (confidence or {}).values() if c is not None]
            conf = json.dumps(confidence, separators=(",", ":")) if confidence else ""
            writer.writerow([str(i), compact, str(bool(prediction)).lower(), compact, conf, min(known, default="")])
    return path


@pytest.fixture
def gold_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    rows = [{"id": str(i), "text": "x", "target": target} for i, target in enumerate(GOLDS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_evaluate_adds_calibration_from_the_csv(tmp_path, gold_file):
    metrics = evaluate(_pred_csv(tmp_path / "pred.csv"), gold_file, review_below=0.5).metrics
    assert metrics["calibration"]["overall"]["auroc"] == pytest.approx(19 / 24)
    assert metrics["calibration"]["review"]["caught_fields"] == 2
    # 9 predicted fields, 7 correct: the repaired 120 counts in P/R/F1 as usual
    assert metrics["precision"] == pytest.approx(7 / 9)


def test_evaluate_reads_confidences_from_jsonl(tmp_path, gold_file):
    pred = tmp_path / "pred.jsonl"
    rows = [
        {"id": i, "prediction": p, "confidence": c}
        for i, (p, c) in enumerate(zip(PREDICTIONS, CONFIDENCES, strict=True))
    ]
    pred.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    overall = evaluate(pred, gold_file).metrics["calibration"]["overall"]
    assert (overall["fields"], overall["no_confidence"]) == (8, 1)


def test_no_confidence_column_no_calibration(tmp_path, gold_file):
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "0", "prediction": PREDICTIONS[0]}) + "\n", encoding="utf-8")
    assert read_confidences(pred) is None
    assert "calibration" not in evaluate(pred, gold_file).metrics
    with pytest.raises(JsontuneError, match="has no 'confidence' column"):
        evaluate(pred, gold_file, review_below=0.5)


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ('{"producto": 1.5}', "'producto' is 1.5"),
        ('{"producto": true}', "'producto' is True"),
        ("[0.5]", "not a JSON object"),
    ],
)
def test_a_bad_confidence_names_the_row(tmp_path, gold_file, cell, problem):
    pred = tmp_path / "pred.csv"
    with open(pred, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "prediction", "confidence"], ["0", '{"producto":"tornillo"}', cell]])
    with pytest.raises(JsontuneError, match="row 1 \\(id '0'\\)") as error:
        evaluate(pred, gold_file)
    assert problem in str(error.value)


def test_reliability_png_is_a_png(tmp_path):
    out = tmp_path / "plot.png"
    write_reliability_png(calibration(PREDICTIONS, GOLDS, CONFIDENCES), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.png"  # no field has a confidence: still a plot, with nothing on it
    write_reliability_png(calibration([None], [GOLDS[0]], [None]), empty)
    assert empty.stat().st_size > 0
