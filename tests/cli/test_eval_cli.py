import csv
import json

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.metrics import score

GOLD = [
    {
        "id": "007",
        "text": "100 tornillos a 50",
        "target": {"producto": "tornillo", "cantidad": 100, "precio_unitario": 50},
    },
    {"id": "8", "text": "2 tuercas a 7,5", "target": {"producto": "tuerca", "cantidad": 2, "precio_unitario": 7.5}},
    {"id": "9", "text": "un martillo a 120", "target": {"producto": "martillo", "cantidad": 1, "precio_unitario": 120}},
    {"id": "10", "text": "3 clavos a 1", "target": {"producto": "clavo", "cantidad": 3, "precio_unitario": 1}},
]
# id "10" has no row: it must count as invalid JSON, not vanish from n.
PREDICTIONS = {
    "007": {"producto": "Tornillo", "cantidad": 100, "precio_unitario": 50},
    "8": {"producto": "tuerca", "cantidad": 2, "precio_unitario": 8},
    "9": None,
}


@pytest.fixture
def gold_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOLD), encoding="utf-8")
    return path


def write_pred_csv(path, predictions, repaired=()):
    """The CSV `jsontune predict` writes: id, prediction (compact JSON or empty), valid_json (true: strict JSON
    as written; a `repaired` id keeps its object with false), raw_output."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "prediction", "valid_json", "raw_output"])
        for pred_id, pred in predictions.items():
            compact = json.dumps(pred, separators=(",", ":")) if pred is not None else ""
            raw = compact.replace('"', "'") if pred_id in repaired else compact or "lo siento,\nno sé"
            valid = pred is not None and pred_id not in repaired
            writer.writerow([pred_id, compact, str(valid).lower(), raw])
    return path


def invoke(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def message(result):
    """The error text with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_json_output_matches_score_and_counts_missing_predictions(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS)
    result = invoke(pred, "--gold", gold_file, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = score([PREDICTIONS["007"], PREDICTIONS["8"], None, None], [g["target"] for g in GOLD])
    assert report == {**expected, "missing_predictions": 1}
    # 4 gold records, 3 fields each: tp 3 + 2 = 5, fp 1, fn 1 + 3 + 3 = 7
    assert report["n"] == 4
    assert report["precision"] == pytest.approx(5 / 6)
    assert report["recall"] == pytest.approx(5 / 12)
    assert report["json_valid_rate"] == 0.5
    assert report["errors"]["invalid_json"] == 2
    assert "1 gold record(s) have no prediction" in " ".join(result.stderr.split())


def test_a_repaired_row_counts_apart_from_valid_json(tmp_path, gold_file):
    """predict's CSV keeps a repaired object in `prediction` with valid_json false: scored, not valid JSON."""
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS, repaired={"007"})
    result = invoke(pred, "--gold", gold_file, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    strict = score([PREDICTIONS["007"], PREDICTIONS["8"], None, None], [g["target"] for g in GOLD])
    assert (report["f1"], report["exact_match"]) == (strict["f1"], strict["exact_match"])  # scored all the same
    assert (report["json_valid_rate"], report["json_repaired_rate"]) == (0.25, 0.25)
    assert report["errors"] == strict["errors"]


def test_a_file_without_valid_json_has_no_repaired_rows(tmp_path, gold_file):
    pred = tmp_path / "pred.csv"
    pred.write_text('id,prediction\n007,"{""producto"":""tornillo""}"\n8,\n', encoding="utf-8")
    report = json.loads(invoke(pred, "--gold", gold_file, "--json").stdout)
    assert (report["json_valid_rate"], report["json_repaired_rate"]) == (0.25, 0.0)


def test_table_output(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS)
    result = invoke(pred, "--gold", gold_file)
    assert result.exit_code == 0, result.output
    words = ("precision", "exact_match", "json_valid_rate", "json_repaired_rate", "precio_unitario", "wrong_value")
    for word in (*words, "invalid_json"):
        assert word in result.stdout
    assert "0.8333" in result.stdout  # precision 5/6


def test_strict_flag(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS)
    report = json.loads(invoke(pred, "--gold", gold_file, "--json", "--strict").stdout)
    # "Tornillo" no longer equals "tornillo": one more wrong value than the default run
    assert report["errors"]["wrong_value"] == 2
    assert report["per_field"]["producto"]["recall"] == 0.25


def test_jsonl_predictions_with_numeric_ids(tmp_path, gold_file):
    pred = tmp_path / "pred.jsonl"
    rows = [{"id": 8, "prediction": GOLD[1]["target"]}, {"id": "9", "prediction": None}]
    pred.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = json.loads(invoke(pred, "--gold", gold_file, "--json").stdout)
    assert report["missing_predictions"] == 2
    assert report["precision"] == 1.0
    assert report["recall"] == pytest.approx(3 / 12)


def test_prediction_ids_not_in_gold_are_an_error(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", {**PREDICTIONS, "7": None, "x1": None})
    result = invoke(pred, "--gold", gold_file, "--json")
    assert result.exit_code == 1
    assert "2 id(s) that are not in" in message(result)
    assert "('7', 'x1')" in message(result)
    assert result.stdout == ""


def test_a_prediction_that_is_not_an_object_names_the_row(tmp_path, gold_file):
    pred = tmp_path / "pred.csv"
    pred.write_text('id,prediction,valid_json,raw_output\n007,{},true,{}\n8,"[1, 2]",true,"[1, 2]"\n')
    result = invoke(pred, "--gold", gold_file)
    assert result.exit_code == 1
    assert "pred.csv row 2 (id '8'): the prediction is not a JSON object" in message(result)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "is empty"),
        ("latin.csv", 'id,prediction\n1,{"producto": "caf\xe9"}\n'.encode("latin-1"), "is not UTF-8"),
        ("latin.jsonl", '{"id": "1", "prediction": {"producto": "caf\xe9"}}\n'.encode("latin-1"), "is not UTF-8"),
    ],
)
def test_unreadable_prediction_files_are_one_sentence(tmp_path, gold_file, name, content, expected):
    pred = tmp_path / name
    pred.write_bytes(content)
    result = invoke(str(pred), "--gold", str(gold_file))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert expected in message(result) and name in message(result)


def test_bad_gold_rows_can_be_skipped_and_are_counted(tmp_path, gold_file):
    rows = [json.loads(line) for line in gold_file.read_text().splitlines()]
    with gold_file.open("a") as f:
        f.write(json.dumps({"id": "bad", "text": "x", "target": "not json"}) + "\n")
    pred = tmp_path / "pred.csv"
    write_pred_csv(pred, {r["id"]: r["target"] for r in rows})
    assert invoke(str(pred), "--gold", str(gold_file)).exit_code == 1
    result = invoke(str(pred), "--gold", str(gold_file), "--skip-bad-rows", "--json")
    assert result.exit_code == 0, result.output
    assert "skipped gold row" in result.output and json.loads(result.stdout.splitlines()[-1])["f1"] == 1.0


# Confidences, as `jsontune predict` writes them: per field (correct?) for GOLD above
#   007: producto 1.0 (yes), cantidad 0.9 (yes), precio_unitario 0.85 (yes)
#   8:   producto 0.9 (yes), cantidad 0.7 (yes), precio_unitario 0.4 (no: 8 for 7.5)
#   9:   producto 0.7 (no: "martillos"), cantidad 0.3 (yes), precio_unitario null (yes, repaired)
#   10:  no JSON
# 8 fields with a confidence; AUROC: wrong 0.4 is below 5 correct ones, wrong 0.7 below 4 and tied with 1:
# (5 + 4.5) / (6 * 2) = 19/24. Auto-accept: >= 0.85 takes 4 of 8 fields, all correct; >= 0.7 is 5/6.
CONFIDENT = {
    "007": (
        {"producto": "Tornillo", "cantidad": 100, "precio_unitario": 50},
        {"producto": 1.0, "cantidad": 0.9, "precio_unitario": 0.85},
    ),
    "8": (
        {"producto": "tuerca", "cantidad": 2, "precio_unitario": 8},
        {"producto": 0.9, "cantidad": 0.7, "precio_unitario": 0.4},
    ),
    "9": (
        {"producto": "martillos", "cantidad": 1, "precio_unitario": 120},
        {"producto": 0.7, "cantidad": 0.3, "precio_unitario": None},
    ),
    "10": (None, None),
}


def write_confident_csv(path):
    """The predict CSV with its confidence and min_confidence columns."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "prediction", "valid_json", "raw_output", "confidence", "min_confidence"])
        for pred_id, (pred, confidence) in CONFIDENT.items():
            compact = json.dumps(pred, separators=(",", ":")) if pred is not None else ""
            conf = json.dumps(confidence, separators=(",", ":")) if confidence is not None else ""
            known = [c for c in (confidence or {}).values() if c is not None]
            writer.writerow([pred_id, compact, str(pred is not None).lower(), compact, conf, min(known, default="")])
    return path


def test_without_confidences_the_json_is_byte_identical(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS)
    result = invoke(pred, "--gold", gold_file, "--json")
    expected = score([PREDICTIONS["007"], PREDICTIONS["8"], None, None], [g["target"] for g in GOLD])
    assert result.stdout == json.dumps({**expected, "missing_predictions": 1}) + "\n"
    tables = invoke(pred, "--gold", gold_file).stdout
    assert "calibration" not in tables and "reliability" not in tables
    assert not (tmp_path / "pred.csv.reliability.png").exists()


def test_confidences_add_calibration_and_keep_every_old_key(tmp_path, gold_file):
    pred = write_confident_csv(tmp_path / "pred.csv")
    result = invoke(pred, "--gold", gold_file, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    calibration = report.pop("calibration")
    plain = tmp_path / "plain.csv"
    write_pred_csv(plain, {i: p for i, (p, _) in CONFIDENT.items()})
    assert report == json.loads(invoke(plain, "--gold", gold_file, "--json").stdout)
    assert set(calibration) == {"overall", "per_field"}
    overall = calibration["overall"]
    assert (overall["fields"], overall["correct"], overall["no_confidence"]) == (8, 6, 1)
    assert overall["auroc"] == pytest.approx(19 / 24)
    assert overall["auto_accept"]["0.95"] == {"threshold": 0.85, "coverage": 0.5, "accepted": 4, "precision": 1.0}
    assert [b["count"] for b in overall["reliability"]] == [0, 0, 0, 1, 1, 0, 0, 2, 1, 3]
    assert list(calibration["per_field"]) == ["producto", "cantidad", "precio_unitario"]
    assert calibration["per_field"]["cantidad"]["auroc"] is None  # all correct: one class
    png = tmp_path / "pred.csv.reliability.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"reliability plot: {png}" in " ".join(result.stderr.split())


def test_confidence_tables_and_review_queue(tmp_path, gold_file):
    pred = write_confident_csv(tmp_path / "pred.csv")
    result = invoke(pred, "--gold", gold_file, "--review-below", "0.5")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    for words in (
        "auroc",
        "0.7917",
        "cover@95%",
        "share correct",
        "no confidence: 1 fields, left out",
        "reliability plot:",
    ):
        assert words in out
    # 8 (min 0.4), 9 (min 0.3) and 10 (no JSON) are queued; they hold both wrong fields
    assert "review below 0.5: 3 of 4 records queued; they hold 2 of the 2 records with a wrong field" in out
    assert "and 2 of the 2 wrong fields" in out
    report = json.loads(invoke(pred, "--gold", gold_file, "--review-below", "0.35", "--json").stdout)
    assert report["calibration"]["review"] == {
        "below": 0.35,
        "share": None,
        "records": 4,
        "queued_records": 2,
        "wrong_records": 2,
        "caught_records": 1,
        "wrong_fields": 2,
        "caught_fields": 1,
    }


def test_review_below_needs_confidences(tmp_path, gold_file):
    pred = write_pred_csv(tmp_path / "pred.csv", PREDICTIONS)
    result = invoke(pred, "--gold", gold_file, "--review-below", "0.5")
    assert result.exit_code == 1 and "has no 'confidence' column" in message(result)
    assert "drop --review-below" in message(result)
    assert invoke(pred, "--gold", gold_file, "--review-below", "1.5").exit_code == 2
    shared = invoke(pred, "--gold", gold_file, "--review-share", "0.2")
    assert shared.exit_code == 1 and "drop --review-share" in message(shared)


def test_review_share_counts_the_least_confident_rows(tmp_path, gold_file):
    pred = write_confident_csv(tmp_path / "pred.csv")
    # round(0.5 x 4) = 2 rows: 10 (no JSON) first, then 9 (min 0.3), which holds one of the two wrong fields
    result = invoke(pred, "--gold", gold_file, "--review-share", "0.5")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "review the least confident 50%: 2 of 4 records queued; they hold 1 of the 2 records" in out
    review = json.loads(invoke(pred, "--gold", gold_file, "--review-share", "0.5", "--json").stdout)
    assert review["calibration"]["review"]["caught_fields"] == 1 and review["calibration"]["review"]["share"] == 0.5
    both = json.loads(
        invoke(pred, "--gold", gold_file, "--review-share", "0.5", "--review-below", "0.5", "--json").stdout
    )
    assert both["calibration"]["review"]["queued_records"] == 3 and both["calibration"]["review"]["caught_fields"] == 2


def write_inventive_csv(path, rows=40):
    """A weak model's predict CSV for `rows` gold records: producto right, cantidad wrong, precio_unitario
    missing, and three invented keys a row, each with a confidence: "moneda" in every row, "nota" in every
    other one, and a key of its own ("extra0", "extra1", ...)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "prediction", "valid_json", "raw_output", "confidence", "min_confidence"])
        for i in range(rows):
            pred = {"producto": "tornillo", "cantidad": -1, "moneda": "MXN", f"extra{i}": i}
            pred |= {"nota": "x"} if i % 2 else {}
            confidence = {key: 0.5 + (i % 10) / 20 for key in pred}
            compact = json.dumps(pred, separators=(",", ":"))
            writer.writerow([str(i), compact, "true", compact, json.dumps(confidence), min(confidence.values())])
    return path


def first_column(output, title):
    """The first cell of each row of the rich table titled `title`, a cell wrapped over lines joined again."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    cells = []
    for line in lines[start + 4 :]:  # title, top rule, header, header rule
        if not line.startswith("│"):
            break
        first, *rest = (cell.strip() for cell in line.strip("│").split("│"))
        if any(rest) or not cells:
            cells.append(first)
        else:
            cells[-1] += " " + first
    return cells


def test_invented_keys_fold_into_one_row_and_json_keeps_them_all(tmp_path, recwarn):
    gold = tmp_path / "gold.jsonl"
    targets = [{"producto": "tornillo", "cantidad": i, "precio_unitario": 5} for i in range(40)]
    gold.write_text("".join(json.dumps({"id": str(i), "text": "x", "target": t}) + "\n" for i, t in enumerate(targets)))
    pred = write_inventive_csv(tmp_path / "pred.csv")
    result = invoke(pred, "--gold", gold)
    assert result.exit_code == 0, result.output
    assert first_column(result.stdout, "per field") == [
        "producto",
        "cantidad",
        "precio_unitario",
        # 42 invented keys (moneda, nota, extra0..extra39) holding 40 + 20 + 40 leaves, the most predicted named
        "42 invented key(s), 100 leaves: moneda (40), nota (20), extra0 (1), …",
    ]
    assert first_column(result.stdout, "calibration") == ["all fields", "producto", "cantidad", "42 invented key(s)"]
    assert "extra7" not in result.stdout
    assert len(result.stdout.splitlines()) < 80
    assert [str(w.message) for w in recwarn] == []  # e.g. matplotlib's "constrained_layout not applied"
    assert result.stderr.count("Warning") == 0
    report = json.loads(invoke(pred, "--gold", gold, "--json").stdout)
    assert len(report["per_field"]) == 3 + 42
    assert report["per_field"]["moneda"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 40}
    assert set(report["calibration"]["per_field"]) == {"producto", "cantidad", "moneda", "nota"} | {
        f"extra{i}" for i in range(40)
    }
    assert (tmp_path / "pred.csv.reliability.png").read_bytes()[:4] == b"\x89PNG"
