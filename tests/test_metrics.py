import json
import random

import pytest

from jsontune.data.numbers import spellings, write_number
from jsontune.metrics import flatten, fold_invented, normalize_value, score

GOLDS = [
    {"producto": "Tornillo", "cantidad": 100, "precio_unitario": 50},
    {"producto": "Tuerca", "cantidad": 2, "precio_unitario": 7.5},
]


def test_hand_computed_micro_scores():
    predictions = [
        # producto and cantidad match after normalisation; precio_unitario is wrong -> tp 2, fp 1, fn 1
        {"producto": " tornillo", "cantidad": "100", "precio_unitario": 55},
        # all three match, "moneda" is made up -> tp 3, fp 1, fn 0
        {"producto": "Tuerca", "cantidad": 2.0, "precio_unitario": 7.5, "moneda": "MXN"},
    ]
    result = score(predictions, GOLDS)
    # tp 5, fp 2, fn 1: precision 5/7, recall 5/6, f1 = 2*5 / (2*5 + 2 + 1) = 10/13
    assert result["precision"] == pytest.approx(5 / 7)
    assert result["recall"] == pytest.approx(5 / 6)
    assert result["f1"] == pytest.approx(10 / 13)
    assert result["exact_match"] == 0.0
    assert result["json_valid_rate"] == 1.0
    assert result["n"] == 2
    assert result["errors"] == {"missing_key": 0, "extra_key": 1, "wrong_value": 1, "invalid_json": 0}
    assert result["per_field"]["producto"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
    precio = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    assert result["per_field"]["precio_unitario"] == precio
    assert result["per_field"]["moneda"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}
    assert list(result["per_field"]) == ["producto", "cantidad", "precio_unitario", "moneda"]
    assert json.loads(json.dumps(result)) == result


def test_invalid_prediction_misses_every_gold_field():
    # record 1 exact (tp 3); record 2 invalid (fn 3, nothing predicted)
    result = score([dict(GOLDS[0]), None], GOLDS)
    assert result["precision"] == 1.0  # 3 / (3 + 0)
    assert result["recall"] == 0.5  # 3 / (3 + 3)
    assert result["f1"] == pytest.approx(2 / 3)  # 2 * 1 * 0.5 / 1.5
    assert result["exact_match"] == 0.5
    assert result["json_valid_rate"] == 0.5
    # the misses of an invalid record are counted once, as invalid_json
    assert result["errors"] == {"missing_key": 0, "extra_key": 0, "wrong_value": 0, "invalid_json": 1}
    assert result["per_field"]["cantidad"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
        "predicted": 1,
    }


def test_all_invalid_scores_zero_without_dividing_by_zero():
    result = score([None, None], GOLDS)
    assert (result["precision"], result["recall"], result["f1"], result["json_valid_rate"]) == (0.0, 0.0, 0.0, 0.0)
    assert result["errors"]["invalid_json"] == 2


def test_missing_key_and_exact_match():
    predictions = [
        {"producto": "TORNILLO", "cantidad": 100},
        {"cantidad": 2, "precio_unitario": 7.5, "producto": "Tuerca"},
    ]
    result = score(predictions, GOLDS)
    # record 1 lacks precio_unitario: tp 2, fn 1; record 2 is exact in another key order: tp 3
    assert result["errors"] == {"missing_key": 1, "extra_key": 0, "wrong_value": 0, "invalid_json": 0}
    assert result["exact_match"] == 0.5
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(5 / 6)


def test_nested_dicts_and_lists_as_multisets():
    gold = {"cliente": {"nombre": "Ana"}, "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}
    assert flatten(gold) == [
        ("cliente.nombre", "Ana"),
        ("items[].sku", "A"),
        ("items[].qty", 1),
        ("items[].sku", "B"),
        ("items[].qty", 1),
    ]
    reordered = {"items": [{"sku": "B", "qty": 1}, {"qty": 1, "sku": "A"}], "cliente": {"nombre": "ana"}}
    assert score([reordered], [gold])["exact_match"] == 1.0
    # one item dropped: items[].sku loses "B" and items[].qty loses one of its two 1s -> tp 3, fn 2
    dropped = {"cliente": {"nombre": "Ana"}, "items": [{"sku": "A", "qty": 1}]}
    result = score([dropped], [gold])
    assert result["recall"] == pytest.approx(3 / 5)
    assert result["per_field"]["items[].qty"]["recall"] == 0.5
    assert result["errors"]["missing_key"] == 2


def test_empty_containers_are_leaves():
    result = score([{"notas": {}}], [{"notas": []}])
    assert result["errors"]["wrong_value"] == 1
    assert score([{"notas": []}], [{"notas": []}])["exact_match"] == 1.0


@pytest.mark.parametrize(
    "a, b",
    [
        (1500, 1500.0),
        (1500, "1500"),
        (1500, "1.500"),  # as the data writes 1500 (data/numbers.py's rule)
        (1500, "1,500"),
        (12345, "12,345"),
        (1500, " 1.500,00 "),
        (1500, "1,500.00"),
        (1500, "1500.000"),
        (1500000, "1.500.000"),
        (7.5, "7,5"),
        (0.5, "0.500"),
        (-12, "-12"),
        (2.5, "+2.5"),
        (0.1 + 0.2, 0.3),
        ("  Tornillo   de  acero ", "tornillo de acero"),
        ("Cañería PVC", "caneria pvc"),
        ("ÉXITO", "éxito"),
        (None, None),
        (True, True),
    ],
)
def test_values_that_count_as_equal(a, b):
    assert normalize_value(a) == normalize_value(b)


@pytest.mark.parametrize(
    "a, b",
    [
        (True, 1),
        (False, 0),
        (None, ""),
        (None, "null"),
        (1500, "1500 pesos"),  # currency, units and words keep a string a string
        (50, "$50"),
        (12, "doce"),
        (1.5, "1.500"),  # a single mark before exactly three digits groups thousands: 1500
        (1.5, "1,500"),
        (1500, "1.500.00"),
        (50, 50.5),
        ("Tornillo", "Tornillos"),
    ],
)
def test_values_that_do_not(a, b):
    assert normalize_value(a) != normalize_value(b)


@pytest.mark.parametrize("seed", range(3))
def test_eval_reads_every_number_the_data_writes_as_its_value(seed):
    """A model that copies a number as the synthetic data or augmentation wrote it ("1.500") is right."""
    rng = random.Random(seed)
    for _ in range(300):
        value = rng.choice((rng.randint(1, 20_000_000), round(rng.uniform(0.01, 200_000), 2)))
        written = spellings(value, money=True) + [
            write_number(value, spanish=spanish, grouped=grouped, cents=cents)
            for spanish in (True, False)
            for grouped in (True, False)
            for cents in (True, False)
        ]
        assert all(normalize_value(s) == normalize_value(value) for s in written), (value, written)
    gold = [{"producto": "tornillos", "cantidad": 1500, "precio_unitario": 1250.5}]
    copied = [{"producto": "Tornillos", "cantidad": "1.500", "precio_unitario": "1.250,50"}]
    assert score(copied, gold)["exact_match"] == 1.0


def test_strict_compares_json_exactly():
    gold = [{"producto": "Tornillo", "cantidad": 100}]
    loose = [{"producto": "tornillo", "cantidad": 100.0}]
    assert score(loose, gold)["exact_match"] == 1.0
    strict = score(loose, gold, strict=True)
    assert strict["exact_match"] == 0.0
    assert strict["errors"]["wrong_value"] == 2
    assert score([{"producto": "Tornillo", "cantidad": 100}], gold, strict=True)["f1"] == 1.0
    assert score([{"cantidad": "100", "producto": "Tornillo"}], gold, strict=True)["recall"] == 0.5


def test_lengths_must_match():
    with pytest.raises(ValueError, match="1 predictions for 2 gold"):
        score([None], GOLDS)
    with pytest.raises(ValueError, match="1 repaired flags for 2 predictions"):
        score(GOLDS, GOLDS, repaired=[True])


def test_a_repaired_prediction_is_scored_but_is_not_valid_json():
    """Valid JSON is strict: a prediction read only after repair counts apart, and its fields still count."""
    result = score([dict(GOLDS[0]), dict(GOLDS[1])], GOLDS, repaired=[False, True])
    assert (result["f1"], result["exact_match"]) == (1.0, 1.0)
    assert (result["json_valid_rate"], result["json_repaired_rate"]) == (0.5, 0.5)
    assert result["errors"]["invalid_json"] == 0
    assert score(GOLDS, GOLDS)["json_repaired_rate"] == 0.0  # nothing marked: nothing repaired


def test_fold_invented_keeps_gold_fields_and_folds_the_rest():
    predictions = [
        {"producto": "Tornillo", "moneda": "MXN", "nota": "x"},
        {"producto": "Tuerca", "moneda": "MXN", "extra": [1, 2]},
    ]
    per_field = score(predictions, GOLDS)["per_field"]
    gold, invented = fold_invented(per_field, named=2)
    assert list(gold) == ["producto", "cantidad", "precio_unitario"]  # cantidad: never predicted, still a row
    assert invented == {"keys": 3, "predicted": 5, "most_predicted": [("moneda", 2), ("extra[]", 2)]}
    assert fold_invented(score(GOLDS, GOLDS)["per_field"]) == (score(GOLDS, GOLDS)["per_field"], None)
