"""Numbers as people write them in Spanish orders: the one reader and the one writer. Pure.

Reading. `parse_digits` reads a number written in digits. Metrics, augmentation and the label guard
all read digits with it, so eval reads "1.500" the way the data means it. The rule for "." and ",":
- no mark: "1500";
- both marks: the last one is the decimal mark and the other groups thousands: "1.250,50" and
  "1,250.50" are 1250.5;
- one mark used more than once groups thousands: "1.000.000" and "1,000,000";
- one mark used once groups thousands when exactly three digits follow it and one to three digits,
  not starting with 0, come before it: "1.500" and "1,500" are 1500, as Spanish writes 1500 and as
  the synthetic data does; otherwise it is the decimal mark: "12,5", "0.75", "0.500", "1500.000".
  So "1.125" is 1125, never one and an eighth: the writers below never write a fraction that way.
A sign may lead; anything else around the digits makes the string not a number ("50 pesos").
`parse_number` reads a number the way an order writes it: digits (read by `parse_digits`) with a
currency or a unit around them ("$1.250,50", "USD 12.5", "12,5 €"), or Spanish words ("treinta y
dos", "una docena").

Writing. `write_number` writes digits the ways people do (Spanish or English marks, grouped or not,
cents or not), `spellings` lists those that read back, and `spanish_words` writes words. The
synthetic orders, augmentation, the warm-start corpus and the tokenizer corpus write numbers with
them, and everything they write reads back to its value through the readers above.

`value_in_text` is the recoverability check shared by the generator tests and data augmentation: a
label value is recoverable when a model could copy or read it from the text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from decimal import Decimal
from typing import Any

# Number words by value: units 1..29, tens 30..90, and the stems of the hundreds 200..900 (+ "os" / "as").
_UNITS = [
    *["", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
    *["diez", "once", "doce", "trece", "catorce", "quince", "dieciséis", "diecisiete", "dieciocho", "diecinueve"],
    *["veinte", "veintiuno", "veintidós", "veintitrés", "veinticuatro"],
    *["veinticinco", "veintiséis", "veintisiete", "veintiocho", "veintinueve"],
]
_TENS = {30: "treinta", 40: "cuarenta", 50: "cincuenta", 60: "sesenta", 70: "setenta", 80: "ochenta", 90: "noventa"}
_HUNDREDS = {
    **{2: "doscient", 3: "trescient", 4: "cuatrocient", 5: "quinient"},
    **{6: "seiscient", 7: "setecient", 8: "ochocient", 9: "novecient"},
}


def fold(text: str) -> str:
    """Lowercase, without accents, runs of whitespace as one space: " Cañería  PVC" -> "caneria pvc"."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def _word_values() -> dict[str, tuple[int, int]]:
    """Folded number word -> (value, rank); within a group ranks must fall: hundreds, tens, units."""
    words: dict[str, tuple[int, int]] = {
        "cero": (0, 1),
        "un": (1, 1),
        "una": (1, 1),
        "veintiun": (21, 1),
        "veintiuna": (21, 1),
        "cien": (100, 3),
        "ciento": (100, 3),
    }
    words.update({fold(w): (n, 1) for n, w in enumerate(_UNITS) if w})
    words.update({w: (n, 2) for n, w in _TENS.items()})
    for n, stem in _HUNDREDS.items():
        words[stem + "os"] = words[stem + "as"] = (n * 100, 3)
    return words


_WORDS = _word_values()
_DOZEN = ("docena", "docenas")  # after a number: "una docena" is 12, "tres docenas" 36
_NUMERIC = re.compile(r"\d+(?:[.,]\d+)*")
_SIGNED = re.compile(r"([+-]?)(\d+(?:[.,]\d+)*)")
# The digits of a written amount and what is around them. A sign glued to a letter is a dash: "B-12".
_AMOUNT = re.compile(r"\D*?((?:(?<![^\W\d_])[+-])?\d(?:.*\d)?)\D*", re.DOTALL)
_WORD = re.compile(r"[^\W\d_]+")
_TO_SPANISH = str.maketrans(",.", ".,")


def _grouped(digits: str, mark: str) -> bool:
    """Whether `digits` is an integer grouped in thousands by `mark`: "1.500.000" for "."."""
    return re.fullmatch(rf"\d{{1,3}}(?:{re.escape(mark)}\d{{3}})+", digits) is not None


def _read_marks(body: str) -> float | None:
    """Unsigned digits with "." / "," marks -> float, by the rule in the module docstring."""
    marks = [m for m in ".," if m in body]
    if not marks:
        return float(body)
    if len(marks) == 2:
        decimal = body[max(body.rfind("."), body.rfind(","))]
        whole, _, frac = body.rpartition(decimal)
        thousands = "," if decimal == "." else "."
        return float(f"{whole.replace(thousands, '')}.{frac}") if _grouped(whole, thousands) else None
    mark = marks[0]
    if body.count(mark) > 1:
        return float(body.replace(mark, "")) if _grouped(body, mark) else None
    whole, _, frac = body.partition(mark)
    if len(frac) == 3 and re.fullmatch(r"[1-9]\d{0,2}", whole):
        return float(whole + frac)
    return float(f"{whole}.{frac}")


def parse_digits(text: str) -> float | None:
    """A number written in digits -> float, else None: "1500", "-2,5", "1.500", "1,250.50", "0.500"."""
    match = _SIGNED.fullmatch(text.strip())
    value = _read_marks(match.group(2)) if match else None
    return -value if value is not None and match.group(1) == "-" else value


def _parse_words(words: list[str]) -> int | None:
    """Folded number words -> int, or None when they do not form one number ("dos tres", "y dos")."""
    if words and words[-1] in _DOZEN:
        dozens = _parse_words(words[:-1])
        return None if dozens is None else dozens * 12
    total, group, last_rank, after_y = 0, 0, 4, False
    for i, word in enumerate(words):
        if word == "y":
            if last_rank != 2 or i == len(words) - 1:
                return None
            after_y = True
            continue
        if word == "mil":
            if total:
                return None
            total, group, last_rank = (group or 1) * 1000, 0, 4
            continue
        if word not in _WORDS:
            return None
        value, rank = _WORDS[word]
        if rank >= last_rank or (after_y and rank != 1):
            return None
        group, last_rank, after_y = group + value, rank, False
    return total + group if words else None


def parse_number(text: str) -> float | None:
    """A number as an order writes it -> float, else None: "$1.250,50", "USD 12.5", "1.500", "doscientas".

    Digits are read by `parse_digits`, whatever currency or unit is written around them; a text
    without digits must be Spanish number words and nothing else.
    """
    amount = _AMOUNT.fullmatch(text.strip())
    if amount:
        return parse_digits(amount.group(1))
    value = _parse_words(fold(text).replace("-", " ").split())
    return None if value is None else float(value)


def numbers_in_text(text: str) -> list[float]:
    """Every number a reader could take from `text`: digit tokens, number-word phrases and single words.

    Dozens count both ways: "tres docenas" gives 3 (three of the unit docena) and 36.
    """
    found = [v for v in map(parse_digits, _NUMERIC.findall(text)) if v is not None]
    run: list[str] = []
    for word in [*_WORD.findall(fold(text)), ""]:
        if word in _WORDS or word == "mil" or (word == "y" and run):
            run.append(word)
            continue
        while run and run[-1] == "y":
            run.pop()
        if run:
            candidates = [_parse_words(run), *(_parse_words([w]) for w in run if w != "y")]
            if word in _DOZEN:
                candidates.append(_parse_words([*run, word]))
            found.extend(float(v) for v in candidates if v is not None)
        run = []
    return found


def write_number(value: float, *, spanish: bool = True, grouped: bool = False, cents: bool = False) -> str:
    """`value` in digits, exactly: 1500, 1.500 or 1,500; 1250.5, 1.250,50 or 1,250.50.

    spanish: "." groups thousands and "," is the decimal mark (else the other way round); grouped:
    thousands are grouped; cents: at least two decimals ("12,00", "12,50"), else only those needed.
    Not every result reads back ("1.125" for 1.125 is 1125): `spellings` keeps those that do.
    """
    text = f"{Decimal(str(value)).normalize():{',' if grouped else ''}f}"
    if cents:
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    return text.translate(_TO_SPANISH) if spanish else text


def spellings(value: float, money: bool = False) -> list[str]:
    """The distinct ways to write `value` in digits that `parse_digits` reads back as `value`.

    Whole numbers: 1500, 1.500, 1,500, and for money also 1.500,00, 1,500.00, 1500,00, 1500.00 ("100,00
    piezas" is not how anyone writes a quantity). Fractions: 1250.5, 1250,5, 1.250,50, 1,250.50.
    """
    w = functools.partial(write_number, value)
    if value != int(value):
        forms = [w(spanish=False), w(), w(grouped=True, cents=True), w(spanish=False, grouped=True, cents=True)]
    else:
        forms = [w(), w(grouped=True), w(spanish=False, grouped=True)]
        if money:
            forms += [w(grouped=True, cents=True), w(spanish=False, grouped=True, cents=True)]
            forms += [w(cents=True), w(spanish=False, cents=True)]
    return [s for s in dict.fromkeys(forms) if parse_digits(s) == value]


def spanish_words(n: int, feminine: bool = False) -> str:
    """`n` (0..999999) in Spanish words as written before a noun: "un litro", "doscientas cajas"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"spanish_words handles 0..999999, got {n}")
    if n == 0:
        return "cero"
    thousands, rest = divmod(n, 1000)
    parts = []
    if thousands:
        parts.append("mil" if thousands == 1 else f"{_below_thousand(thousands, feminine)} mil")
    if rest:
        parts.append(_below_thousand(rest, feminine))
    return " ".join(parts)


def _below_thousand(n: int, feminine: bool) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds == 1:
        parts.append("cien" if rest == 0 else "ciento")
    elif hundreds:
        parts.append(_HUNDREDS[hundreds] + ("as" if feminine else "os"))
    if rest:
        tens, unit = divmod(rest, 10)
        if rest < 30:
            parts.append(_unit_word(rest, feminine))
        else:
            parts.append(_TENS[tens * 10] + (f" y {_unit_word(unit, feminine)}" if unit else ""))
    return " ".join(parts)


def _unit_word(n: int, feminine: bool) -> str:
    """1..29; before a noun "uno" becomes "un"/"una": "veintiún litros", "veintiuna cajas"."""
    if n == 1:
        return "una" if feminine else "un"
    if n == 21:
        return "veintiuna" if feminine else "veintiún"
    return _UNITS[n]


def value_in_text(value: Any, text: str) -> bool:
    """Whether a label value can be read back from `text`.

    Strings: accent- and case-insensitive substring. Numbers: some number in the text equals it.
    Dicts and lists: every value inside is recoverable. None has nothing to recover, so it passes.
    """
    if value is None:
        return True
    if isinstance(value, dict):
        return all(value_in_text(v, text) for v in value.values())
    if isinstance(value, list):
        return all(value_in_text(v, text) for v in value)
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return fold(value) in fold(text)
    if isinstance(value, (int, float)):
        return any(abs(found - value) <= 1e-9 * max(1.0, abs(value)) for found in numbers_in_text(text))
    return False
