"""A row's fields as the review page shows and edits them. Pure: no I/O.

A field is a top-level key of the answer; a nested object or a list is edited as one field, in JSON. Its
confidence is the lowest of the confidences predict gave the leaves under it (`metrics.flatten`'s paths). In
an input a string is shown as it is, anything else as JSON; what a reviewer types back is read by the same
rule (`parse_value`), so a field left as shown stays the value the model wrote, type and all. An empty input
means the answer has no such field.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from jsontune.data.numbers import parse_digits

ABSENT: Any = None  # a field the answer does not have; a JSON null is kept as the value None inside a dict


def field_names(answers: list[dict[str, Any] | None], schema: dict[str, Any] | None = None) -> list[str]:
    """Every field: the schema's properties first (where there is a schema), then every key an answer has, in
    the order first seen."""
    names = list((schema or {}).get("properties", {}))
    names += [key for answer in answers for key in answer or {}]
    return list(dict.fromkeys(names))


def is_text(name: str, answers: list[dict[str, Any] | None]) -> bool:
    """Whether `name` holds text, by the value most answers give it (a field no answer has is text)."""
    kinds = [isinstance(a[name], str) for a in answers if a and a.get(name) is not None]
    return sum(kinds) * 2 >= len(kinds)


def field_confidence(name: str, confidences: dict[str, float | None] | None) -> float | None:
    """The lowest confidence among the leaves of field `name`; None when none of them has one."""
    known = [
        value
        for path, value in (confidences or {}).items()
        if value is not None and (path == name or path.startswith((f"{name}.", f"{name}[]")))
    ]
    return min(known) if known else None


def show(value: Any, present: bool = True) -> str:
    """The text an input shows for a value: a string as it is, anything else as JSON, "" for no field."""
    if not present:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_value(typed: str, text_field: bool) -> tuple[bool, Any]:
    """(present, value) of what a reviewer typed: nothing (only spaces) is no field; in a text field the text
    as typed, trimmed; elsewhere its JSON value (a number, true, null, a list...), or the text when it is not
    JSON ("50 pesos" in a number field stays text)."""
    typed = typed.strip()
    if not typed:
        return False, ABSENT
    if text_field:
        return True, typed
    try:
        return True, json.loads(typed)
    except ValueError:
        return True, typed


_NUMBER = re.compile(r"\d(?:[\d.,]*\d)?")


def locate(text: str, value: Any) -> tuple[int, int] | None:
    """Where `value` first appears in `text`, as (start, end) character offsets, or None.

    A string matches as a whole word, ignoring case, accents and runs of whitespace (as eval compares
    strings); a number matches a number written in digits with the same value ("1.500" for 1500, "0,26" for
    0.26, read by `parse_digits`). Other values (true, null, lists, objects) are not looked for."""
    if isinstance(value, str):
        return _locate_text(text, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for match in _NUMBER.finditer(text):
            number = parse_digits(match.group())
            if number is not None and abs(number - value) < 1e-6:
                return match.span()
    return None


def _folded(text: str) -> tuple[str, list[int]]:
    """`text` lowercased, without accents, each run of whitespace one space, and for each of its characters
    the offset in `text` of the character it came from."""
    out: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        if char.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                origin.append(i)
            continue
        for part in unicodedata.normalize("NFKD", char).casefold():
            if not unicodedata.combining(part):
                out.append(part)
                origin.append(i)
    return "".join(out), origin


def _locate_text(text: str, value: str) -> tuple[int, int] | None:
    needle, _ = _folded(value)
    needle = needle.strip()
    if not needle:
        return None
    haystack, origin = _folded(text)
    at = haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        before = haystack[at - 1] if at else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() and needle[0].isalnum()) and not (after.isalnum() and needle[-1].isalnum()):
            return origin[at], origin[end - 1] + 1
        at = haystack.find(needle, at + 1)
    return None


def segments(text: str, spans: dict[str, tuple[int, int] | None]) -> list[dict[str, str | None]]:
    """`text` cut into pieces, each {"text", "field"}: the field whose value the piece is, or None. Where two
    values overlap, the field listed first keeps its piece."""
    taken: list[tuple[int, int, str]] = []
    for name, span in spans.items():
        if span and all(span[1] <= start or span[0] >= end for start, end, _ in taken):
            taken.append((*span, name))
    pieces: list[dict[str, str | None]] = []
    at = 0
    for start, end, name in sorted(taken):
        if start > at:
            pieces.append({"text": text[at:start], "field": None})
        pieces.append({"text": text[start:end], "field": name})
        at = end
    if at < len(text):
        pieces.append({"text": text[at:], "field": None})
    return pieces
