"""The pure parts of the review: the queue and its audit sample, the fields a page edits, the audit interval."""

from __future__ import annotations

import pytest

from jsontune.metrics import audit_precision, wilson_interval
from jsontune.review.fields import field_confidence, locate, parse_value, segments, show
from jsontune.review.queue import plan

LOWEST = [0.9, 0.1, None, 0.95, 0.99, 0.5, 0.97, 0.8, 0.85, 0.93, 0.96, 0.98]


def test_the_queue_puts_rows_without_confidence_first_then_the_least_confident():
    made = plan(LOWEST, below=0.6, share=None, audit_share=0.0, seed=0)
    assert made.order == [2, 1, 5] and made.audit == frozenset()


def test_audit_rows_come_from_the_rows_the_threshold_accepts_and_never_first():
    above = {i for i, c in enumerate(LOWEST) if c is not None and c >= 0.6}
    for seed in range(30):
        made = plan(LOWEST, below=0.6, share=None, audit_share=0.3, seed=seed)
        assert made.audit <= above and len(made.audit) == 3  # ceil(0.3 x 9)
        assert made.order[0] == 2  # the row with no confidence keeps the first place
        assert [i for i in made.order if i not in made.audit] == [2, 1, 5]  # the queue's own order is kept
        assert sorted(made.order) == sorted([2, 1, 5, *made.audit])
    places = set()
    for seed in range(30):
        made = plan(LOWEST, 0.6, None, 0.3, seed)
        places.add(made.order.index(min(made.audit)))
    assert len(places) > 1  # mixed in at random places, not appended
    assert plan(LOWEST, 0.6, None, 0.3, seed=4) == plan(LOWEST, 0.6, None, 0.3, seed=4)


def test_a_small_share_still_audits_one_row_and_no_threshold_queues_every_row():
    assert len(plan(LOWEST, 0.6, None, 0.01, seed=0).audit) == 1
    everything = plan(LOWEST, None, None, 0.05, seed=0)
    assert everything.order == [2, 1, 5, 7, 8, 0, 9, 3, 10, 6, 11, 4] and not everything.audit


def test_a_fields_confidence_is_the_lowest_of_its_leaves():
    confidences = {"producto": 0.9, "items[].sku": 0.4, "items[].n": 0.7, "cliente.nombre": None, "cliente.rut": 0.6}
    assert field_confidence("producto", confidences) == 0.9
    assert field_confidence("items", confidences) == 0.4
    assert field_confidence("cliente", confidences) == 0.6
    assert field_confidence("precio", confidences) is None and field_confidence("producto", None) is None


def test_a_value_typed_back_as_shown_keeps_its_type():
    for value in ["A", 100, 12.5, True, None, [1, 2], {"a": "b"}]:
        text_field = isinstance(value, str)
        assert parse_value(show(value), text_field) == (True, value)
    assert parse_value("  ", False) == (False, None) and show(None, present=False) == ""
    assert parse_value("50 pesos", False) == (True, "50 pesos")  # not JSON: kept as text
    assert parse_value("100", True) == (True, "100")  # a text field keeps digits as text


def test_values_are_found_in_the_text_ignoring_case_accents_and_number_style():
    text = "Che, anotame 7.658 cajas de BROCAS para concreto a 18,99 euros. Cañería: no."
    assert text[slice(*locate(text, 7658))] == "7.658"
    assert text[slice(*locate(text, 18.99))] == "18,99"
    assert text[slice(*locate(text, "brocas para concreto"))] == "BROCAS para concreto"
    assert text[slice(*locate(text, "caneria"))] == "Cañería"
    assert locate(text, "ca") is None  # whole words only
    assert locate(text, 7) is None and locate(text, True) is None


def test_segments_cover_the_text_once_and_the_first_field_keeps_an_overlap():
    text = "20 sacos de cemento a 20 pesos"
    pieces = segments(text, {"producto": locate(text, "sacos de cemento"), "cantidad": (0, 2), "otro": (3, 8)})
    assert "".join(p["text"] for p in pieces) == text
    assert [(p["text"], p["field"]) for p in pieces if p["field"]] == [
        ("20", "cantidad"),
        ("sacos de cemento", "producto"),
    ]


def test_wilson_interval_matches_published_values():
    low, high = wilson_interval(95, 100)
    assert low == pytest.approx(0.8882, abs=1e-4) and high == pytest.approx(0.9785, abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] == pytest.approx(0.8389, abs=1e-4)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_the_audit_says_below_only_when_the_whole_interval_is_below():
    assert audit_precision([True] * 60 + [False] * 40, 0.95)["verdict"] == "below"
    assert audit_precision([True] * 19 + [False], 0.95)["verdict"] == "unsure"
    assert audit_precision([True] * 400, 0.95)["verdict"] == "meets"
    empty = audit_precision([], 0.95)
    assert empty["verdict"] is None and empty["precision"] is None and empty["fields"] == 0
