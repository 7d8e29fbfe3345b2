"""Augmentation rewords texts, never labels: every variant's target values can be read from its text."""

from __future__ import annotations

import json
import random
import re

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.data.augment import (
    STRATEGIES,
    SYNONYM_GROUPS,
    augment_records,
    number_format,
    recoverable,
    resolve_strategies,
)
from jsontune.data.numbers import numbers_in_text
from jsontune.data.records import Record
from jsontune.data.synth import generate_orders
from jsontune.errors import JsontuneError
from jsontune.metrics import normalize_value

ORDER = Record(
    "o1",
    "Hola, necesito comprar 1500 unidades de cable UTP, precio 1250.5 pesos cada una y envíen pronto.",
    {"producto": "cable UTP", "cantidad": 1500, "precio_unitario": 1250.5},
)


def _strip_digits(text: str, rng: random.Random) -> str:
    return re.sub(r"\d", "", text)


def _numbers_as_written(text: str) -> list[str]:
    return re.findall(r"\d(?:[\d.,]*\d)?", text)


def test_lexicon_has_forty_disjoint_groups():
    phrases = [p for group in SYNONYM_GROUPS for p in group]
    assert len(SYNONYM_GROUPS) >= 40
    assert all(len(group) >= 2 for group in SYNONYM_GROUPS)
    assert len(phrases) == len(set(phrases)), "a phrase in two groups would have two meanings"
    assert all(p == p.lower() for p in phrases)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_changes_the_text_and_keeps_the_label(name):
    for seed in range(5):
        new = STRATEGIES[name](ORDER.text, random.Random(seed))
        assert new != ORDER.text
        assert recoverable(ORDER.target, new), new


def test_synonyms_keep_case_and_never_touch_the_product():
    record = Record(
        "p", "NECESITO 20 Piezas de Material pieza unidad", {"producto": "Material pieza unidad", "cantidad": 20}
    )
    rows, stats = augment_records([record], factor=9, seed=0, strategies=["synonyms"])
    assert stats.produced >= 1 and stats.dropped == 0
    for row in rows[1:]:
        head, tail = row.text.split(" 20 ")
        assert head.isupper()  # "NECESITO" -> "REQUIERO", never "requiero"
        assert tail.split()[0] in {"Piezas", "Unidades", "Uds", "Pzas"}
        assert tail.endswith(" de Material pieza unidad")


def test_clause_order_keeps_every_clause_whole():
    new = STRATEGIES["clause_order"](ORDER.text, random.Random(0))
    clauses = re.split(r", | y ", ORDER.text.rstrip("."))
    moved = re.split(r", | y ", new.rstrip("."))
    assert sorted(c.lower() for c in moved) == sorted(c.lower() for c in clauses)
    assert [c.lower() for c in moved] != [c.lower() for c in clauses]


def test_number_format_changes_digits_not_values():
    as_eval_reads = [normalize_value(t) for t in _numbers_as_written(ORDER.text)]
    for seed in range(10):
        new = number_format(ORDER.text, random.Random(seed))
        assert new != ORDER.text
        assert _numbers_as_written(new) != _numbers_as_written(ORDER.text)
        # Copied into the JSON as written, every number still scores as its label.
        assert [normalize_value(t) for t in _numbers_as_written(new)] == as_eval_reads
        assert {1500.0, 1250.5} <= set(numbers_in_text(new))
    rows, _ = augment_records([ORDER], factor=6, seed=0, strategies=["number_format"])
    assert len(rows) > 1
    assert all(row.target == ORDER.target and row.text != ORDER.text for row in rows[1:])


def test_number_format_writes_cents_only_for_money():
    quantities = {number_format("Necesito 1500 unidades", random.Random(seed)) for seed in range(40)}
    assert quantities == {"Necesito 1.500 unidades", "Necesito 1,500 unidades"}
    prices = {number_format("a 1500 pesos c/u", random.Random(seed)) for seed in range(80)}
    assert {"a 1.500,00 pesos c/u", "a 1500.00 pesos c/u", "a 1,500 pesos c/u"} <= prices


def test_guard_drops_and_counts_variants_that_lose_a_value():
    records = [ORDER, Record("o2", "Quiero 30 cajas de clavos a 12 pesos", {"producto": "clavos", "cantidad": 30})]
    rows, stats = augment_records(
        records, factor=5, seed=0, strategies={"whitespace": STRATEGIES["whitespace"], "strip": _strip_digits}
    )
    assert stats.requested == 8
    assert stats.dropped == stats.by_strategy["strip"] > 0
    assert stats.by_strategy["whitespace"] == 0
    assert stats.produced == stats.applied["whitespace"] == len(rows) - 2
    assert all(re.search(r"\d", row.text) for row in rows)


def test_factor_three_on_fifty_orders_gives_about_three_times_the_rows():
    records = generate_orders(50, seed=0)
    rows, stats = augment_records(records, factor=3, seed=1)
    assert stats.requested == 100
    assert stats.requested == stats.produced + stats.dropped + stats.duplicates + stats.unverifiable
    assert len(rows) == 50 + stats.produced
    assert 135 <= len(rows) <= 150
    assert rows[:50] == records
    originals = {r.id: r for r in records}
    for row in rows[50:]:
        source = originals[row.id.rsplit("-aug", 1)[0]]
        assert row.target == source.target and recoverable(row.target, row.text)
    assert len({row.id for row in rows}) == len(rows)
    new_texts = [row.text.strip() for row in rows[50:]]
    assert len(set(new_texts)) == len(new_texts) and not set(new_texts) & {r.text.strip() for r in records}


def test_factor_one_returns_the_records_unchanged():
    records = generate_orders(10, seed=0)
    rows, stats = augment_records(records, factor=1, seed=0)
    assert rows == records and stats.requested == 0


def test_same_seed_same_rows_other_seed_other_rows():
    records = generate_orders(20, seed=3)
    first, _ = augment_records(records, factor=2.5, seed=7)
    again, _ = augment_records(records, factor=2.5, seed=7)
    other, _ = augment_records(records, factor=2.5, seed=8)
    assert first == again
    assert [r.text for r in first] != [r.text for r in other]


def test_unchanged_variants_count_as_duplicates():
    rows, stats = augment_records([ORDER], factor=4, seed=0, strategies={"same": lambda t, r: t})
    assert rows == [ORDER] and stats.duplicates == 3


def test_record_whose_text_lacks_its_target_is_kept_but_not_augmented():
    record = Record("x", "Necesito cable", {"producto": "cable", "cantidad": 7})
    rows, stats = augment_records([record, ORDER], factor=2, seed=0)
    assert rows[0] == record and all(not r.id.startswith("x-") for r in rows)
    assert stats.unverifiable == 1


def test_bad_factor_and_unknown_strategy_are_user_errors():
    with pytest.raises(JsontuneError, match="at least 1"):
        augment_records([ORDER], factor=0.5, seed=0)
    with pytest.raises(JsontuneError, match="'typos'.*synonyms, clause_order, punctuation"):
        resolve_strategies(["case", "typos"])


def test_cli_writes_the_augmented_file(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in generate_orders(10, 0)))
    out = tmp_path / "aug.jsonl"
    args = ["data", "augment", "--input", str(source), "--out", str(out), "--factor", "3", "--seed", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 25 <= len(rows) <= 30 and set(rows[0]) == {"id", "text", "target"}
    assert any(row["id"].endswith("-aug1") for row in rows)
    assert "rows out" in result.output and str(len(rows)) in result.output


def test_cli_rejects_bad_flags(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps(ORDER.to_dict()) + "\n")
    base = ["data", "augment", "--input", str(source), "--out", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(app, [*base, "--factor", "0.5"])
    assert result.exit_code == 1 and "--factor" in result.output
    result = CliRunner().invoke(app, [*base, "--factor", "2", "--strategies", "case,typos"])
    assert result.exit_code == 1 and "typos" in result.output and "whitespace" in result.output
    assert not (tmp_path / "o.jsonl").exists()
