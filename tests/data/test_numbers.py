"""One reader and one writer of numbers: every spelling written reads back; value_in_text finds labels."""

from __future__ import annotations

import random

import pytest

from jsontune.data.numbers import (
    fold,
    numbers_in_text,
    parse_digits,
    parse_number,
    spanish_words,
    spellings,
    value_in_text,
    write_number,
)

# The rule for "." and ",", the one eval, augmentation and the label guard share (module docstring).
DIGITS = [
    ("1500", 1500),
    ("-12", -12),
    ("+2.5", 2.5),
    ("2.50", 2.5),
    ("2,5", 2.5),
    ("0.500", 0.5),
    ("1500.000", 1500),
    ("1.500", 1500),
    ("1,500", 1500),
    ("12,345", 12345),
    ("999.999", 999999),
    ("01.500", 1.5),
    ("1,500.00", 1500),
    ("1.500,00", 1500),
    ("1.250,5", 1250.5),
    ("1.500.000", 1500000),
    ("1,500,000", 1500000),
    (" 1.500,00 ", 1500),
    ("1.500.00", None),
    ("1,50,000", None),
    ("1.500,000.5", None),
    ("1..5", None),
    ("50 pesos", None),
    ("$50", None),
    ("doce", None),
    ("abc", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "value"), DIGITS)
def test_parse_digits_rule(text, value):
    assert parse_digits(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500", 1500),
        ("1.500", 1500),
        ("1,500", 1500),
        ("-12", -12),
        ("1.000.000", 1_000_000),
        ("1,000,000", 1_000_000),
        ("$1.250,50", 1250.5),
        ("$ -5", -5),
        ("1,250.50", 1250.5),
        ("USD 12.5", 12.5),
        ("USD12", 12),
        ("12,5 €", 12.5),
        ("S/. 0,99", 0.99),
        ("0.500", 0.5),
        ("1250,75", 1250.75),
        ("$1.250.-", 1250),
        ("B-12", 12),
        ("doce", 12),
        ("cien", 100),
        ("doscientas", 200),
        ("treinta y dos", 32),
        ("Dieciséis", 16),
        ("ciento veintiún", 121),
        ("dos mil quinientos", 2500),
        ("mil", 1000),
        ("una docena", 12),
        ("tres docenas", 36),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text", ["", "hola", "1.5.00", "12,34,5", "dos tres", "y dos", "treinta y", "mil mil", "docena", "1-2"]
)
def test_parse_number_refuses_what_is_not_one_number(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(("text", "value"), [(t, v) for t, v in DIGITS if v is not None])
def test_parse_number_reads_digits_as_parse_digits_does(text, value):
    assert parse_number(text) == parse_number(f"USD {text}") == parse_number(f"{text} pesos") == value


@pytest.mark.parametrize(
    ("value", "flags", "text"),
    [
        (1500, {}, "1500"),
        (1500, {"grouped": True}, "1.500"),
        (1500, {"grouped": True, "spanish": False}, "1,500"),
        (1500, {"grouped": True, "cents": True}, "1.500,00"),
        (1500.0, {"spanish": False, "cents": True}, "1500.00"),
        (1250.5, {}, "1250,5"),
        (1250.5, {"grouped": True, "cents": True}, "1.250,50"),
        (1250.5, {"spanish": False, "grouped": True, "cents": True}, "1,250.50"),
        (0.1 + 0.2, {"spanish": False}, "0.30000000000000004"),
        (1_234_567.891, {"grouped": True}, "1.234.567,891"),
        (12, {"cents": True}, "12,00"),
    ],
)
def test_write_number(value, flags, text):
    assert write_number(value, **flags) == text


def _values(rng: random.Random) -> list[float]:
    """Whole numbers and prices (2 decimals at most) of every size the generators draw, and then some."""
    return [
        rng.randint(0, 999),
        rng.randint(1000, 20_000_000),
        round(rng.uniform(0.01, 999), 2),
        round(rng.uniform(1000, 2_000_000), rng.choice((1, 2))),
        float(rng.randint(1, 100_000)),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_every_way_write_number_writes_a_price_reads_back(seed):
    rng = random.Random(seed)
    for _ in range(400):
        for value in _values(rng):
            for spanish in (True, False):
                for grouped in (True, False):
                    for cents in (True, False):
                        text = write_number(value, spanish=spanish, grouped=grouped, cents=cents)
                        assert parse_digits(text) == value, (value, text)
                        assert parse_number(f"${text}") == value, (value, text)


@pytest.mark.parametrize("seed", range(5))
def test_spellings_read_back_and_skip_what_would_not(seed):
    rng = random.Random(seed)
    for _ in range(400):
        for value in [*_values(rng), round(rng.uniform(0, 2000), 3), rng.uniform(0, 1e6)]:
            for money in (False, True):
                written = spellings(value, money)
                assert len(written) == len(set(written))
                assert all(parse_digits(s) == value for s in written), (value, written)
    assert spellings(1500) == ["1500", "1.500", "1,500"]
    assert spellings(1500, money=True) == ["1500", "1.500", "1,500", "1.500,00", "1,500.00", "1500,00", "1500.00"]
    assert spellings(1250.5) == ["1250.5", "1250,5", "1.250,50", "1,250.50"]
    assert "3.125" not in spellings(3.125)  # that is 3125
    assert spellings(2_000_000) == ["2000000", "2.000.000", "2,000,000"]


def test_spanish_words_read_back_for_both_genders():
    for n in [*range(0, 2001), 21_000, 99_999, 200_000, 999_999]:
        for feminine in (False, True):
            assert parse_number(spanish_words(n, feminine)) == n, (n, feminine)
            assert n in numbers_in_text(f"Necesito {spanish_words(n, feminine)} cajas"), (n, feminine)
    assert spanish_words(21) == "veintiún" and spanish_words(21, feminine=True) == "veintiuna"
    assert spanish_words(200, feminine=True) == "doscientas"


def test_numbers_in_text_finds_digits_and_word_phrases():
    found = numbers_in_text("Mandame doscientas cincuenta cajas de cable cat6 a $1.250,50 c/u")
    assert {250, 1250.5, 6} <= set(found)
    assert {49, 588} <= set(numbers_in_text("anotá cuarenta y nueve docenas de huevos"))


def test_value_in_text():
    text = "Necesito DOSCIENTAS cajas de cañería PVC a $1.250,50 c/u"
    assert value_in_text("Cañeria pvc", text)  # accents and case do not matter
    assert value_in_text(" cañería   PVC ", text)
    assert value_in_text(200, text) and value_in_text(1250.5, text)
    assert value_in_text({"producto": "cañería PVC", "cantidad": 200, "precio_unitario": 1250.5}, text)
    assert value_in_text(1500, "son 1.500 unidades")
    assert not value_in_text(201, text)
    assert not value_in_text("cañería de cobre", text)
    assert not value_in_text({"producto": "cañería PVC", "cantidad": 300}, text)
    assert value_in_text(None, text)


def test_fold():
    assert fold("  Cañería\n PVC ") == "caneria pvc"
    assert fold("DIECISÉIS") == fold("dieciseis") == "dieciseis"
