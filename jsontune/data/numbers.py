"""Numbers as people write them in Spanish orders, and whether a label can be read back from its text.

`parse_number` reads "1500", "1.500", "1,500", "$1.250,50", "USD 12.5", "doce", "doscientas" and
"treinta y dos". A single separator followed by exactly three digits is a thousands separator
("1.500" and "1,500" are both 1500); otherwise it is the decimal mark ("12,5", "0.75"). The synthetic
generator only writes numbers that read back unambiguously under this rule.

`value_in_text` is the recoverability check shared by the generator tests and data augmentation: a
label value is recoverable when a model could copy or read it from the text.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_UNITS = [
    "",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_TENS = {30: "treinta", 40: "cuarenta", 50: "cincuenta", 60: "sesenta", 70: "setenta", 80: "ochenta", 90: "noventa"}
_HUNDREDS = {
    2: "doscient",
    3: "trescient",
    4: "cuatrocient",
    5: "quinient",
    6: "seiscient",
    7: "setecient",
    8: "ochocient",
    9: "novecient",
}


def _fold(text: str) -> str:
    """Lowercase without accents, so "Doscientas" and "dieciseis" match their dictionary forms."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


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
    words.update({_fold(w): (n, 1) for n, w in enumerate(_UNITS) if w})
    words.update({w: (n, 2) for n, w in _TENS.items()})
    for n, stem in _HUNDREDS.items():
        words[stem + "os"] = words[stem + "as"] = (n * 100, 3)
    return words


_WORDS = _word_values()
_NUMERIC = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+")


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


def _parse_words(words: list[str]) -> int | None:
    """Folded number words -> int, or None when they do not form one number ("dos tres", "y dos")."""
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


def _parse_numeric(token: str) -> float | None:
    """Digits with "." / "," separators -> float, by the thousands-or-decimal rule in the docstring."""
    if not re.fullmatch(r"\d+(?:[.,]\d+)*", token):
        return None
    seps = [c for c in token if c in ".,"]
    if not seps:
        return float(token)
    if len(set(seps)) == 2:
        decimal = token[max(token.rfind("."), token.rfind(","))]
        thousands = "," if decimal == "." else "."
        whole, frac = token.rsplit(decimal, 1)
        if decimal in whole or not _is_grouped(whole, thousands):
            return None
        return float(whole.replace(thousands, "") + "." + frac)
    sep = seps[0]
    if len(seps) > 1:
        return float(token.replace(sep, "")) if _is_grouped(token, sep) else None
    head, tail = token.split(sep)
    if len(tail) == 3 and len(head) <= 3 and head != "0":
        return float(head + tail)
    return float(f"{head}.{tail}")


def _is_grouped(token: str, sep: str) -> bool:
    groups = token.split(sep)
    return 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


def parse_number(s: str) -> float | None:
    """A number written as text ("1.500", "$1.250,50", "USD 12.5", "doscientas") -> float, else None."""
    s = s.strip()
    core = re.sub(r"^[^\d]*?(?=\d)|(?<=\d)[^\d]*$", "", s)
    if core and core[0].isdigit():
        return _parse_numeric(core)
    value = _parse_words(_fold(s).replace("-", " ").split())
    return None if value is None else float(value)


def numbers_in_text(text: str) -> list[float]:
    """Every number a reader could take from `text`: digit tokens, number-word phrases and single words."""
    found = [v for v in map(_parse_numeric, _NUMERIC.findall(text)) if v is not None]
    run: list[str] = []
    for word in [*_WORD.findall(_fold(text)), ""]:
        if word in _WORDS or word == "mil" or (word == "y" and run):
            run.append(word)
            continue
        while run and run[-1] == "y":
            run.pop()
        if run:
            candidates = [_parse_words(run), *(_parse_words([w]) for w in run if w != "y")]
            found.extend(float(v) for v in candidates if v is not None)
        run = []
    return found


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
        return " ".join(_fold(value).split()) in " ".join(_fold(text).split())
    if isinstance(value, (int, float)):
        return any(abs(found - value) <= 1e-9 * max(1.0, abs(value)) for found in numbers_in_text(text))
    return False
