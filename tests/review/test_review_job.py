"""The review job: a predictions CSV joined to its texts and its log; saves, decisions, the audit, the export."""

from __future__ import annotations

import json

import pytest
from conftest import ROWS, write_predictions

from jsontune.data import load_records
from jsontune.errors import JsontuneError
from jsontune.review.job import Review, audit_of, review_db_path
from jsontune.review.store import StaleRow


@pytest.fixture
def review(pred):
    opened = Review.open(pred, seed=3)
    yield opened
    opened.close()


def test_the_queue_starts_with_rows_without_an_answer_then_the_least_confident(review):
    assert review.order[:4] == ["none", "repaired", "low", "mid"]
    assert review.queue()["ids"] == review.order and review.queue()["start"] == 0
    assert all(i.startswith("sure-") for i in review.audit) and len(review.audit) == 1
    assert review.row("none")["answer"] == "missing" and review.row("repaired")["answer"] == "repaired"


def test_a_row_shows_its_text_its_fields_and_where_their_values_are(review):
    row = review.row("low")
    assert row["text"] == ROWS["low"][0] and row["status"] == "open" and row["version"] == 0
    assert [(f["name"], f["value"], f["confidence"]) for f in row["fields"]] == [
        ("producto", "A", 0.91),
        ("cantidad", "10", 0.12),
        ("precio_unitario", "50", 0.88),
    ]
    marked = {p["field"]: p["text"] for p in row["segments"] if p["field"]}
    assert marked == {"producto": "A", "precio_unitario": "50"}  # the model's 10 is not in the text


def test_saving_a_field_changes_the_answer_and_the_highlight(review):
    row = review.save("low", {"cantidad": "100"}, version=0)
    assert {p["field"]: p["text"] for p in row["segments"] if p["field"]}["cantidad"] == "100"
    assert review.answer("low") == {"producto": "A", "cantidad": 100, "precio_unitario": 50}
    assert row["fields"][1]["changed"] and row["version"] > 0
    with pytest.raises(StaleRow, match="row low changed in another tab; reload it"):
        review.save("low", {"cantidad": "99"}, version=0)


def test_accepting_applies_the_inputs_as_shown_and_the_queue_resumes_after_it(review):
    review.decide("none", "accepted", {"producto": "cemento", "cantidad": "", "precio_unitario": ""}, version=0)
    review.decide("repaired", "skipped", {}, version=0)
    assert review.answer("none") == {"producto": "cemento"}
    queue = review.queue()
    assert queue["status"][:2] == ["accepted", "skipped"] and queue["ids"][queue["start"]] == "low"
    counts = review.summary()
    assert (counts["reviewed"], counts["accepted"], counts["skipped"], counts["corrected"]) == (1, 1, 1, 1)
    assert counts["total"] == len(ROWS) and counts["in_queue"] == len(review.order)


def test_undo_takes_back_the_last_decision(review):
    review.decide("low", "accepted", {"cantidad": "100"}, version=0)
    assert review.undo() == ["low"]
    assert review.row("low")["status"] == "open" and review.answer("low")["cantidad"] == 10


def test_the_filter_keeps_rows_whose_field_is_below_the_bound(review):
    assert review.queue("producto", 0.6)["ids"] == ["none", "repaired", "mid"]
    assert review.queue(None, 0.5)["ids"] == ["none", "repaired", "low"]
    weakest = [i for i in review.order if i == "low" or i in review.audit]  # cantidad is the audit row's weakest too
    assert review.queue("cantidad")["ids"] == weakest  # rows whose least confident field it is
    with pytest.raises(JsontuneError, match="has no field 'precio'"):
        review.queue("precio")


def test_the_export_is_training_data_of_the_accepted_rows(review, tmp_path):
    review.decide("low", "accepted", {"cantidad": "100"}, version=0)
    review.decide("mid", "unusable", {}, version=0)
    review.decide("script", "accepted", {}, version=0)
    out = tmp_path / "corrections.jsonl"
    summary = review.export(out)
    assert summary["written"] == 2 and summary["unusable"] == 1 and summary["corrected"] == 1
    records = load_records(out).records  # what `jsontune data check` and `jsontune train` read
    assert [(r.id, r.text, r.target) for r in records] == [
        ("low", ROWS["low"][0], {"producto": "A", "cantidad": 100, "precio_unitario": 50}),
        ("script", ROWS["script"][0], {"producto": "<b>tornillos</b>", "cantidad": 3, "precio_unitario": 12}),
    ]
    manifest = json.loads((tmp_path / "corrections.jsonl.manifest.json").read_text())
    assert manifest["kind"] == "review-export" and manifest["written"] == 2 and "sentence" in manifest["audit"]


def test_the_audit_counts_the_fields_of_accepted_audit_rows_only(pred):
    review = Review.open(pred, audit_share=1.0, seed=0)  # every row above the threshold is audited
    try:
        for n in range(8):
            typed = {"cantidad": "0"} if n < 2 else {}
            review.decide(f"sure-{n}", "accepted", typed, version=0)
        review.decide("low", "accepted", {"cantidad": "100"}, version=0)  # a queue row: not an audit row
        audit = review.summary()["audit"]
        assert (audit["fields"], audit["correct"], audit["audited_rows"]) == (24, 22, 8)
        assert audit["verdict"] == "unsure" and audit["accepts_from"] == 0.8
        assert audit["sentence"].startswith("Rows the threshold accepts (min confidence ≥ 0.800): 91.7 % of 24")
        assert "may be below the 95 % asked for" in audit["sentence"]
    finally:
        review.close()
    assert audit_of(pred)["correct"] == 22  # what eval prints, read without the texts


def test_a_csv_without_confidences_is_one_sentence_saying_how_to_make_one(tmp_path):
    pred = tmp_path / "pred.csv"
    pred.write_text('id,prediction,valid_json,raw_output\na,"{""x"":1}",true,"{""x"":1}"\n')
    with pytest.raises(JsontuneError, match="no confidence column; make one with `jsontune predict` without --no-conf"):
        Review.open(pred)


def test_an_input_whose_ids_do_not_match_is_refused(pred, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "x", "text": "otra cosa"}\n')
    with pytest.raises(JsontuneError, match=r"13 id\(s\) of .*pred.csv are not in .*other.jsonl \('low'"):
        Review.open(pred, input=other)


def test_an_input_changed_since_predict_is_refused_unless_given(pred):
    source = pred.parent / "orders.jsonl"
    source.write_text(source.read_text().replace("Necesito", "Necesitamos"))
    with pytest.raises(JsontuneError, match="changed since .* was predicted from it; pass --input"):
        Review.open(pred)
    assert "Necesitamos" in Review.open(pred, input=source).row("low")["text"]


def test_a_csv_changed_since_the_review_began_is_refused(pred):
    Review.open(pred).close()
    write_predictions(pred.parent, {**ROWS, "low": (ROWS["low"][0], '{"producto": "B"}', {"producto": 0.2})})
    with pytest.raises(JsontuneError, match="was made for other predictions than the CSV beside it holds now"):
        Review.open(pred)


def test_other_queue_settings_for_the_same_file_are_refused(pred):
    Review.open(pred, audit_share=0.1).close()
    Review.open(pred).close()  # none given: the file's
    with pytest.raises(JsontuneError, match=r"was made with --below 0.8 --audit-share 0.1; start it with those"):
        Review.open(pred, below=0.5)
    assert review_db_path(pred).name == "pred.csv.review.sqlite"


def test_fields_no_answer_has_are_named_by_the_inputs_targets(tmp_path):
    """A weak model that wrote no JSON at all still gets a page with the fields to fill in."""
    pred = write_predictions(tmp_path / "run", {"a": ("dame 2 clavos", "no sé", None), "b": ("3 tuercas", "", None)})
    source = tmp_path / "orders.jsonl"
    rows = [{"id": "a", "text": "dame 2 clavos", "target": {"producto": "clavos", "cantidad": 2}}]
    source.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"id": "b", "text": "3 tuercas"}]))
    review = Review.open(pred, input=source)
    assert review.fields == ["producto", "cantidad"] and review.row("b")["fields"][0]["value"] == ""
    review.decide("b", "accepted", {"producto": "tuercas", "cantidad": "3"}, version=0)
    assert review.answer("b") == {"producto": "tuercas", "cantidad": 3}
    review.close()


def test_the_audit_says_so_when_the_threshold_accepts_no_row_or_none_is_audited(pred, tmp_path):
    everything = Review.open(pred, below=1.0)
    assert everything.summary()["audit"]["sentence"].startswith("Every row is in the queue: the threshold accepts none")
    everything.close()
    other = write_predictions(tmp_path / "other")
    unaudited = Review.open(other, below=0.8, audit_share=0.0)
    assert "no audit row is mixed into the queue" in unaudited.summary()["audit"]["sentence"]
    unaudited.close()
