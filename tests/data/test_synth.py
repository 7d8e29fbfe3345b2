"""Synthetic orders: deterministic, varied, and every label can be read back from its text."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.data import load_records
from jsontune.data.numbers import parse_number, value_in_text
from jsontune.data.synth import generate_orders, sample_order, split_sizes, write_splits
from jsontune.errors import JsontuneError
from jsontune.metrics import normalize_value


@pytest.fixture(scope="module")
def orders():
    return generate_orders(500, seed=0)


def test_same_seed_same_orders_other_seed_other_orders():
    assert generate_orders(40, seed=7) == generate_orders(40, seed=7)
    assert [r.text for r in generate_orders(40, seed=7)] != [r.text for r in generate_orders(40, seed=8)]


def test_ids_and_texts_are_unique(orders):
    assert [r.id for r in orders[:2]] == ["synth-000001", "synth-000002"]
    assert len({r.id for r in orders}) == len({r.text for r in orders}) == 500


def test_targets_have_the_schema_and_types(orders):
    for r in orders:
        assert list(r.target) == ["producto", "cantidad", "precio_unitario"]
        assert isinstance(r.target["producto"], str) and r.target["producto"]
        assert type(r.target["cantidad"]) is int and r.target["cantidad"] >= 1
        assert type(r.target["precio_unitario"]) in (int, float) and r.target["precio_unitario"] > 0
        assert round(r.target["precio_unitario"], 2) == r.target["precio_unitario"]


def test_every_label_is_recoverable_from_its_text(orders):
    unrecoverable = [(r.text, k, v) for r in orders for k, v in r.target.items() if not value_in_text(v, r.text)]
    assert unrecoverable == []
    # The product is there verbatim, not just up to accents.
    assert all(r.target["producto"].lower() in r.text.lower() for r in orders)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eval_reads_every_number_as_the_generator_wrote_it(seed):
    """Copied from the text as written ("1.500", "1.250,50"), a quantity or price scores as its label."""
    thousands = 0
    for r in generate_orders(400, seed=seed):
        tokens = re.findall(r"\d+(?:[.,]\d+)*", r.text)
        thousands += sum(bool(re.fullmatch(r"[1-9]\d{0,2}[.,]\d{3}", t)) for t in tokens)
        for key in ("cantidad", "precio_unitario"):
            in_digits = any(normalize_value(t) == normalize_value(r.target[key]) for t in tokens)
            in_words = value_in_text(r.target[key], re.sub(r"\d", "", r.text))
            assert in_digits or in_words, (r.text, key)
    assert thousands >= 20  # "1.500" and "1,500" are there to be read


def test_at_least_30_phrasings_are_used():
    rng = random.Random(0)
    used = Counter(sample_order(rng).template for _ in range(500))
    assert len(used) >= 30


def test_orders_look_like_real_ones(orders):
    texts = [r.text for r in orders]
    products = Counter(r.target["producto"] for r in orders)
    codes = [p for p in products if re.fullmatch(r"[A-Z]{1,2}(-?\d+)?", p)]
    assert len(products) - len(codes) >= 60  # catalogue items seen
    assert len(codes) >= 20  # "A", "B-12"... as in the competition data
    for marker in ("$", "USD", "€", "soles", "MXN", "pesos"):
        assert sum(marker in t for t in texts) >= 5, marker
    # Quantities are sometimes written in words ("doce cajas"): no digit token in the text equals them.
    in_words = [
        r
        for r in orders
        if not any(parse_number(tok) == r.target["cantidad"] for tok in re.findall(r"\d+(?:[.,]\d+)*", r.text))
    ]
    assert len(in_words) >= 10
    assert any("1." in t or "1," in t for t in texts)  # thousands separators
    assert sum("\n" in t for t in texts) >= 50  # e-mails and forms span lines


def test_write_splits_80_10_10(tmp_path):
    paths = write_splits(50, tmp_path / "synth", seed=3)
    assert {name: p.name for name, p in paths.items()} == {
        "train": "train.jsonl",
        "val": "val.jsonl",
        "test": "test.jsonl",
    }
    rows = {
        name: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] for name, p in paths.items()
    }
    assert {name: len(r) for name, r in rows.items()} == {"train": 40, "val": 5, "test": 5}
    assert all(set(row) == {"id", "text", "target"} for r in rows.values() for row in r)
    ids = [row["id"] for r in rows.values() for row in r]
    assert len(set(ids)) == 50
    assert load_records(paths["train"]).records == generate_orders(50, seed=3)[:40]
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]


def test_split_sizes():
    assert split_sizes(1000) == {"train": 800, "val": 100, "test": 100}
    assert split_sizes(3) == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(JsontuneError, match="--n is 2"):
        split_sizes(2)


def test_cli_synth_writes_the_three_files(tmp_path):
    result = CliRunner().invoke(app, ["data", "synth", "--n", "20", "--out", str(tmp_path), "--seed", "1"])
    assert result.exit_code == 0, result.output
    for name, count in (("train", 16), ("val", 2), ("test", 2)):
        assert len((tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()) == count
        assert re.search(rf"{name}\s*│\s*{count}\s*│", result.output)


def test_cli_check_passes_a_good_file_and_fails_naming_the_row(tmp_path):
    write_splits(10, tmp_path, seed=0)
    good = CliRunner().invoke(app, ["data", "check", str(tmp_path / "train.jsonl")])
    assert good.exit_code == 0, good.output
    assert "8 rows OK, 0 skipped" in " ".join(good.output.split())

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "target": {"x": 1}}\n{"text": "b", "target": "{oops"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "check", str(bad)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "bad.jsonl, line 2: the target (column 'target') is not valid JSON" in output
    assert "Traceback" not in output

    listed = CliRunner().invoke(app, ["data", "check", str(bad), "--skip-bad-rows"])
    assert listed.exit_code == 1
    assert "1 rows OK, 1 skipped" in " ".join(listed.output.split())
