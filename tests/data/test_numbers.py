"""parse_number reads numbers the ways people write them; value_in_text says whether a label is in its text."""

from __future__ import annotations

import pytest

from jsontune.data.numbers import numbers_in_text, parse_number, spanish_words, value_in_text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500", 1500),
        ("1.500", 1500),
        ("1,500", 1500),
        ("1.000.000", 1_000_000),
        ("1,000,000", 1_000_000),
        ("$1.250,50", 1250.5),
        ("1,250.50", 1250.5),
        ("USD 12.5", 12.5),
        ("12,5 €", 12.5),
        ("S/. 0,99", 0.99),
        ("0.500", 0.5),
        ("1250,75", 1250.75),
        ("$1.250.-", 1250),
        ("doce", 12),
        ("cien", 100),
        ("doscientas", 200),
        ("treinta y dos", 32),
        ("Dieciséis", 16),
        ("ciento veintiún", 121),
        ("dos mil quinientos", 2500),
        ("mil", 1000),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "hola", "1.5.00", "12,34,5", "dos tres", "y dos", "treinta y", "mil mil"])
def test_parse_number_refuses_what_is_not_one_number(text):
    assert parse_number(text) is None


def test_spanish_words_read_back_for_both_genders():
    for n in [*range(0, 2001), 21_000, 99_999, 200_000, 999_999]:
        for feminine in (False, True):
            assert parse_number(spanish_words(n, feminine)) == n, (n, feminine)
    assert spanish_words(21) == "veintiún" and spanish_words(21, feminine=True) == "veintiuna"
    assert spanish_words(200, feminine=True) == "doscientas"


def test_numbers_in_text_finds_digits_and_word_phrases():
    found = numbers_in_text("Mandame doscientas cincuenta cajas de cable cat6 a $1.250,50 c/u")
    assert {250, 1250.5, 6} <= set(found)


def test_value_in_text():
    text = "Necesito DOSCIENTAS cajas de cañería PVC a $1.250,50 c/u"
    assert value_in_text("Cañeria pvc", text)  # accents and case do not matter
    assert value_in_text(200, text) and value_in_text(1250.5, text)
    assert value_in_text({"producto": "cañería PVC", "cantidad": 200, "precio_unitario": 1250.5}, text)
    assert not value_in_text(201, text)
    assert not value_in_text("cañería de cobre", text)
    assert not value_in_text({"producto": "cañería PVC", "cantidad": 300}, text)
    assert value_in_text(None, text)
