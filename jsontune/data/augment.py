"""Label-preserving augmentation of purchase-order text.

Each strategy is a small pure function `(text, rng) -> text` that changes how an order is written,
never what it says, so a variant keeps its original's target unchanged:

- synonyms: swap words and phrases from a Spanish purchase-order lexicon (necesito -> requiero);
- clause_order: reorder the clauses between ", ", " y " and ". ", each clause kept whole;
- punctuation: final period, "!", "¿?", commas added or removed;
- number_format: rewrite one number among 1500, 1.500, 1,500, 1.500,00 ... (same value);
- case: lower, UPPER or Sentence case;
- whitespace: double spaces, a newline between clauses, padded ends.

`augment_records` applies 1-3 random strategies per variant. The spans of the target's string
values (the product name) are masked before a strategy runs, so no strategy can rewrite them —
except `case`: string values compare case- and accent-insensitively (`metrics.score`,
`value_in_text`), so "CABLE UTP" in the text still matches the target "cable UTP". A label guard
checks after every step that each leaf of the target can still be read from the text; a variant
that fails is dropped and counted against the strategy that broke it, never lost silently.

    from jsontune.data.augment import augment_records
    rows, stats = augment_records(records, factor=3, seed=0)
"""

from __future__ import annotations

import copy
import dataclasses
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsontune.data.numbers import parse_digits, spellings, value_in_text
from jsontune.data.records import Record
from jsontune.errors import JsontuneError

Strategy = Callable[[str, random.Random], str]

# Every group lists interchangeable spellings of one meaning in the same grammatical slot (same
# person, number and gender, with the article where the nouns' genders differ), so a swap keeps
# the sentence grammatical. A phrase belongs to one group only.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("necesito", "requiero", "preciso", "me hace falta"),
    ("necesitamos", "requerimos", "precisamos", "nos hace falta"),
    ("necesitaría", "requeriría", "precisaría"),
    ("quiero", "quisiera", "deseo", "me gustaría"),
    ("queremos", "quisiéramos", "deseamos", "nos gustaría"),
    ("comprar", "adquirir", "pedir", "encargar"),
    ("comprarles", "pedirles", "encargarles"),
    ("solicito", "pido"),
    ("solicitamos", "pedimos"),
    ("precio unitario", "precio por unidad", "costo unitario", "valor unitario"),
    ("con un precio de", "a un precio de", "por un precio de", "a razón de"),
    ("precio", "costo", "valor", "coste"),
    ("cuesta", "vale", "sale"),
    ("cuestan", "valen", "salen"),
    ("unidades", "piezas", "uds", "pzas"),
    ("unidad", "pieza"),
    ("cada una", "c/u", "por unidad", "la unidad"),
    ("cada uno", "por pieza"),
    ("el pedido", "la orden", "la solicitud", "el encargo"),
    ("un pedido", "una orden", "una solicitud", "un encargo"),
    ("este pedido", "esta orden", "esta solicitud", "este encargo"),
    ("mi pedido", "mi orden", "mi solicitud", "mi encargo"),
    ("pedido", "encargo"),
    ("enviar", "despachar", "mandar", "remitir", "entregar"),
    ("envíen", "despachen", "manden", "remitan"),
    ("enviarme", "mandarme", "despacharme", "hacerme llegar"),
    ("enviarnos", "mandarnos", "despacharnos", "hacernos llegar"),
    ("envío", "despacho"),
    ("hola", "buenas", "buenos días", "buenas tardes", "qué tal"),
    ("saludos", "un saludo", "atentamente", "cordialmente"),
    ("estimados", "apreciados"),
    ("estimado", "apreciado"),
    ("por favor", "porfa", "xfa"),
    ("favor de", "les pido", "les solicito"),
    ("gracias", "muchas gracias", "mil gracias", "se agradece"),
    ("gracias de antemano", "desde ya gracias", "agradezco de antemano"),
    ("lo antes posible", "cuanto antes", "a la brevedad", "lo más pronto posible"),
    ("urgente", "prioritario"),
    ("pueden", "podrían"),
    ("puede", "podría"),
    ("tienen", "disponen de", "cuentan con"),
    ("producto", "artículo"),
    ("productos", "artículos"),
    ("material", "insumo"),
    ("materiales", "insumos"),
    ("compra", "adquisición"),
    ("cotizar", "presupuestar"),
    ("proveedor", "distribuidor", "vendedor"),
    ("aproximadamente", "alrededor de", "más o menos"),
    ("también", "además", "asimismo"),
    ("quedo atento", "quedo a la espera", "espero su respuesta"),
)
_GROUP_OF = {phrase: group for group in SYNONYM_GROUPS for phrase in group}
# Longest first, so "precio unitario" wins over "precio" where both match at the same place.
_SYNONYM = re.compile(
    r"(?<!\w)(?:" + "|".join(re.escape(p) for p in sorted(_GROUP_OF, key=len, reverse=True)) + r")(?!\w)",
    re.IGNORECASE,
)


def _match_case(source: str, word: str) -> str:
    letters = [c for c in source if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return word.upper()
    return word[:1].upper() + word[1:] if source[:1].isupper() else word


def synonyms(text: str, rng: random.Random) -> str:
    """Replace some lexicon phrases (at least one, when any is there) by another of their group."""
    matches = list(_SYNONYM.finditer(text))
    if not matches:
        return text
    chosen = {i for i in range(len(matches)) if rng.random() < 0.5} or {rng.randrange(len(matches))}
    out, end = [], 0
    for i, m in enumerate(matches):
        if i in chosen:
            group = _GROUP_OF[m.group(0).lower()]
            other = rng.choice([p for p in group if p != m.group(0).lower()])
            out += [text[end : m.start()], _match_case(m.group(0), other)]
            end = m.end()
    return "".join(out) + text[end:]


# A ". " ends a sentence only before a capital, so "100 uds. de cable" stays one clause.
_CLAUSE_SEP = re.compile(r"(?:, |; | y |\. (?=[A-ZÁÉÍÓÚÑ¿¡]))")
_EDGES = re.compile(r"([\s¿¡]*)(.*?)([\s.!?…]*)", re.DOTALL)
_LAST_WORD = re.compile(r"\w+$")
# Not clause breaks: " y " inside a number ("treinta y cuatro"), ". " after an abbreviation ("Sres.").
_NOT_A_BREAK = {
    " y ": {"treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta", "noventa"},
    ". ": {
        *("sr", "sra", "sres", "srta", "dr", "dra", "ing", "lic", "ref", "uds"),
        *("doc", "av", "aprox", "cía", "nro", "núm", "atte", "etc", "cant"),
    },
}


def _clauses(line: str) -> tuple[list[str], list[str]]:
    """The clauses of one line and the separators between them."""
    clauses, seps, start = [], [], 0
    for m in _CLAUSE_SEP.finditer(line):
        word = _LAST_WORD.search(line, 0, m.start())
        if word and word.group(0).lower() in _NOT_A_BREAK.get(m.group(0), ()):
            continue
        clauses.append(line[start : m.start()])
        seps.append(m.group(0))
        start = m.end()
    return [*clauses, line[start:]], seps


def _recase(clause: str, upper: bool) -> str:
    """Capitalise a clause that starts a sentence, lower one that does not; leave acronyms alone."""
    word = clause.split(" ", 1)[0]
    if not word[:1].isalpha() or any(c.isupper() for c in word[1:]):
        return clause
    return (clause[0].upper() if upper else clause[0].lower()) + clause[1:]


def _reorder(line: str, rng: random.Random) -> str:
    lead, body, tail = _EDGES.fullmatch(line).groups()
    clauses, seps = _clauses(body)
    order = list(range(len(clauses)))
    while order == sorted(order):
        rng.shuffle(order)
    capitals = body[:1].isupper()
    out = [_recase(clauses[order[0]], capitals)]
    for sep, i in zip(seps, order[1:], strict=True):
        out += [sep, _recase(clauses[i], capitals and sep == ". ")]
    return lead + "".join(out) + tail


def clause_order(text: str, rng: random.Random) -> str:
    """Reorder the clauses of one line (an e-mail keeps its layout); every clause stays whole."""
    lines = text.split("\n")
    several = [i for i, line in enumerate(lines) if len(_clauses(_EDGES.fullmatch(line).group(2))[0]) > 1]
    if not several:
        return text
    i = rng.choice(several)
    lines[i] = _reorder(lines[i], rng)
    return "\n".join(lines)


def _first_change(ops: Sequence[Strategy], text: str, rng: random.Random) -> str:
    """The result of the first op, in random order, that changes the text (else the text)."""
    for op in rng.sample(list(ops), len(ops)):
        new = op(text, rng)
        if new != text:
            return new
    return text


def _replace_one(pattern: re.Pattern[str], text: str, rng: random.Random, new: str) -> str:
    matches = list(pattern.finditer(text))
    if not matches:
        return text
    m = rng.choice(matches)
    return text[: m.start()] + m.expand(new) + text[m.end() :]


def _final_period(text: str, rng: random.Random) -> str:
    body = text.rstrip()
    if body.endswith(".") and not body.endswith(".."):
        return body[:-1]
    return body + "." if body[-1:].isalnum() else text


def _exclamation(text: str, rng: random.Random) -> str:
    body = text.rstrip()
    if body.endswith("!"):
        return body.lstrip("¡").rstrip("!") + "."
    return body.rstrip(".") + "!" if body[-1:].isalnum() or body.endswith(".") else text


def _question(text: str, rng: random.Random) -> str:
    body = text.strip()
    if body.startswith("¿"):  # informal writing often drops the opening mark
        return body[1:]
    one_sentence = not re.search(r"[.!?]\s|\n", body)  # "¿Hola. Necesito ...?" reads as nonsense
    return f"¿{body.rstrip('.')}?" if one_sentence and (body[-1:].isalnum() or body.endswith(".")) else text


_COMMA = re.compile(r", ")
_COMMA_SPOT = re.compile(r"(?<=[^\W\d]) (?=(?:y|por favor|gracias|porfa)\b)", re.IGNORECASE)


def _drop_comma(text: str, rng: random.Random) -> str:
    return _replace_one(_COMMA, text, rng, " ")


def _add_comma(text: str, rng: random.Random) -> str:
    return _replace_one(_COMMA_SPOT, text, rng, ", ")


def punctuation(text: str, rng: random.Random) -> str:
    """One punctuation change: final period, exclamation, "¿?", or a comma dropped or added."""
    return _first_change([_final_period, _exclamation, _question, _drop_comma, _add_comma], text, rng)


# A number not glued to letters, a slash or a dash (codes like "A-100" or sizes like "3/8").
_NUMBER = re.compile(r"(?<![\w/.,-])\d+(?:[.,]\d+)*(?![\w/-]|[.,]\d)")
# Cents (",00") only suit amounts of money: "100,00 piezas" is not how anyone writes a quantity.
_CURRENCY = r"(?:pesos|d[óo]lares|euros|soles|usd|eur|mxn|cop|clp|ars|pen|s/\.?|€|\$)"
_MONEY_AFTER = re.compile(rf"\s*{_CURRENCY}(?!\w)", re.IGNORECASE)
_MONEY_BEFORE = re.compile(rf"{_CURRENCY}\s*$", re.IGNORECASE)


def number_format(text: str, rng: random.Random) -> str:
    """Write one number of the text another way; its value (and so the target) stays the same."""
    matches = list(_NUMBER.finditer(text))
    for m in rng.sample(matches, len(matches)):
        value = parse_digits(m.group(0))
        if value is None:
            continue
        money = bool(_MONEY_AFTER.match(text, m.end()) or _MONEY_BEFORE.search(text, 0, m.start()))
        options = [s for s in spellings(value, money) if s != m.group(0)]
        if options:
            return text[: m.start()] + rng.choice(options) + text[m.end() :]
    return text


def _sentence_case(text: str) -> str:
    lower = text.lower()
    first = next((i for i, c in enumerate(lower) if c.isalpha()), None)
    return lower if first is None else lower[:first] + lower[first].upper() + lower[first + 1 :]


def case(text: str, rng: random.Random) -> str:
    """lower case, UPPER CASE or Sentence case, whichever differs (tried in random order)."""
    ops = [lambda t, _: t.lower(), lambda t, _: t.upper(), lambda t, _: _sentence_case(t)]
    return _first_change(ops, text, rng)


_SPACE = re.compile(r" ")
_CLAUSE_GAP = re.compile(r"([,.]) ")


def whitespace(text: str, rng: random.Random) -> str:
    """A doubled space or a newline between clauses; half the time also padded ends."""
    text = _first_change(
        [lambda t, r: _replace_one(_SPACE, t, r, "  "), lambda t, r: _replace_one(_CLAUSE_GAP, t, r, r"\1\n")],
        text,
        rng,
    )
    if rng.random() < 0.5:
        text = " " * rng.randint(1, 2) + text + rng.choice([" ", "  ", "\n"])
    return text


STRATEGIES: dict[str, Strategy] = {
    "synonyms": synonyms,
    "clause_order": clause_order,
    "punctuation": punctuation,
    "number_format": number_format,
    "case": case,
    "whitespace": whitespace,
}
# Strategies that may rewrite the masked string values too (see the module docstring).
_SEES_VALUES = {"case"}
# Masked spans become Yi syllables: letters, so word boundaries around them behave as around the
# value; caseless, so nothing recases them; and never found in Spanish orders.
_MASK_BASE = 0xA000


@dataclass
class AugmentStats:
    """What happened to the requested variants: requested == produced + dropped + duplicates + unverifiable."""

    requested: int = 0
    produced: int = 0
    dropped: int = 0  # failed the label guard
    duplicates: int = 0  # same text (ends stripped) as a row already kept
    unverifiable: int = 0  # not tried: the original's own text does not show every target value
    by_strategy: dict[str, int] = field(default_factory=dict)  # guard drops, by the step that broke
    applied: dict[str, int] = field(default_factory=dict)  # strategies used in the produced variants


def resolve_strategies(names: Iterable[str] | None = None) -> dict[str, Strategy]:
    """The named strategies (all of them for None); an unknown name is a JsontuneError listing the valid ones."""
    if names is None:
        return dict(STRATEGIES)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        given = f"unknown augmentation strategy {', '.join(map(repr, unknown))}" if unknown else "no strategy given"
        raise JsontuneError(f"{given[0].upper()}{given[1:]}; choose from: {', '.join(STRATEGIES)}.")
    return {n: STRATEGIES[n] for n in names}


def _leaves(value: Any) -> list[Any]:
    """The string and number leaves of a target (booleans and nulls cannot be read from text)."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else []


def recoverable(target: dict[str, Any], text: str) -> bool:
    """The label guard: every string and number in the target can still be read from the text."""
    return all(value_in_text(leaf, text) for leaf in _leaves(target))


def _masked(strategy: Strategy, text: str, rng: random.Random, values: list[str]) -> str:
    """Run `strategy` with every whole-word occurrence of `values` hidden behind a placeholder."""
    words = sorted({v for v in values if v.strip()}, key=len, reverse=True)
    if not words:
        return strategy(text, rng)
    spans: list[str] = []

    def hide(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return chr(_MASK_BASE + len(spans) - 1)

    pattern = r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)"
    out = strategy(re.sub(pattern, hide, text, flags=re.IGNORECASE), rng)
    return "".join(spans[ord(c) - _MASK_BASE] if 0 <= ord(c) - _MASK_BASE < len(spans) else c for c in out)


def _variant_counts(n: int, factor: float, seed: int) -> list[int]:
    """Variants per record: round((factor - 1) * n) in all, spread evenly, the remainder at random."""
    total = round((factor - 1) * n)
    base, extra = divmod(total, n) if n else (0, 0)
    lucky = set(random.Random(seed).sample(range(n), extra))
    return [base + (i in lucky) for i in range(n)]


def _variant(
    text: str, target: dict[str, Any], strategies: Mapping[str, Strategy], rng: random.Random
) -> tuple[str, list[str], str | None]:
    """Apply 1-3 random strategies in turn: (text, names applied, name of the step that broke a value)."""
    values = [v for v in _leaves(target) if isinstance(v, str)]
    names = rng.sample(list(strategies), rng.randint(1, min(3, len(strategies))))
    for name in names:
        fn = strategies[name]
        text = fn(text, rng) if name in _SEES_VALUES else _masked(fn, text, rng, values)
        if not recoverable(target, text):
            return text, names, name
    return text, names, None


def augment_records(
    records: Sequence[Record],
    factor: float,
    seed: int = 0,
    strategies: Iterable[str] | Mapping[str, Strategy] | None = None,
) -> tuple[list[Record], AugmentStats]:
    """The records followed by about (factor - 1) * len(records) label-preserving variants.

    Variant k of record "r7" has id "r7-aug{k}" and the same target. The same records, factor, seed
    and strategies give the same rows: each variant draws from its own `Random(f"{seed}:{id}:{k}")`.
    `strategies` is names from STRATEGIES (None: all) or a {name: function} mapping.
    """
    if factor < 1:
        raise JsontuneError(f"The augmentation factor must be at least 1 (got {factor}); 1 keeps the data as is.")
    chosen = dict(strategies) if isinstance(strategies, Mapping) else resolve_strategies(strategies)
    if not chosen:
        raise JsontuneError(f"No augmentation strategy given; choose from: {', '.join(STRATEGIES)}.")
    stats = AugmentStats(by_strategy=dict.fromkeys(chosen, 0), applied=dict.fromkeys(chosen, 0))
    # Prompts strip the text, so texts equal but for their ends would be the same training example.
    seen = {r.text.strip() for r in records}
    variants: list[Record] = []
    for record, count in zip(records, _variant_counts(len(records), factor, seed), strict=True):
        stats.requested += count
        if record.target is None or not recoverable(record.target, record.text):
            stats.unverifiable += count
            continue
        for k in range(1, count + 1):
            rng = random.Random(f"{seed}:{record.id}:{k}")
            text, names, broke = _variant(record.text, record.target, chosen, rng)
            if broke is not None:
                stats.dropped += 1
                stats.by_strategy[broke] += 1
            elif text.strip() in seen:
                stats.duplicates += 1
            else:
                seen.add(text.strip())
                stats.produced += 1
                for name in names:
                    stats.applied[name] += 1
                target = copy.deepcopy(record.target)
                variants.append(dataclasses.replace(record, id=f"{record.id}-aug{k}", text=text, target=target))
    return [*records, *variants], stats
