"""How sure the model was of each field it wrote. Pure: no I/O, no torch; the tokenizer only in `token_spans`.

An engine gives, for every generation, the ids of the tokens it generated and the log-probability the model gave
each one. A field's confidence is the probability the model gave the tokens that wrote its value.

`token_spans(tokenizer, token_ids)` says which characters of the raw output each token wrote: [start, end)
ranges that tile, in order, the text `jsontune.serving.base.decode_output` gives for the same ids. A token wrote
what decoding it adds to the text of the tokens before it, by decode_output's rule (special tokens skipped; a
text that ends in U+FFFD, the first bytes of a character, held back). So a token that writes only the first bytes
of a character writes nothing (start == end) and the token that completes the character writes all of it; a
skipped special token, the tokens of an unfinished last character that decode_output drops and, with `stopped`,
the end-of-sequence token write nothing either.

`field_confidences(text, spans, logprobs)` takes the object `jsontune.parsing.find_json` finds in the raw output
(after thinking, fences and prose) and scans the characters it was read from again, with a small JSON scanner
that records where each leaf value is written; it never searches for a value's text, so in
{"cantidad": 5, "precio_unitario": 5} each 5 is its own. A value's tokens run
from the first to the last of:
- the tokens that wrote its characters: those between the quotes of a string (escapes as written: \\" is two
  characters, \\u00e9 six), the literal of a number, true, false, null, {} or [];
- the token that ends it where the value does not end itself: the one that writes a string's closing quote, and
  the one that writes the character right after a number (`,`, `}`, `]` or a space). It is the model's choice to
  stop there: 100 and not 1000, "tornillo" and not "tornillo cabeza", a choice the value's own tokens do not show.
  true, false, null and the closing bracket of {} or [] end themselves;
and take in the tokens that write nothing right before the first (the first bytes of its first character, or a
special token).

Keys are the leaf paths as `jsontune.metrics.flatten` names them. The items of a list share one path, and it
keeps the lowest of their confidences. Every leaf of an object read as the model wrote it appears in the raw
output; an object that only json_repair could read may hold text the model never wrote (a quote it closed, a
value it guessed), so each of its leaves gets None: no number is made up for it. No object gives {}.

`row_confidence(confidences)`: the lowest field confidence of a row; None when no field has one.

Rules, over the log-probabilities lp_1..lp_n of a value's tokens (`RULES`):
- "min": exp(min lp), the probability of its least likely token;
- "product": exp(sum lp), the joint probability of its tokens, which falls with the value's length;
- "mean": exp(mean lp), their geometric mean, which does not.
DEFAULT_RULE is chosen by measurement on the demo test set (`scripts/confidence_rules.py`: the demo's trained
model, HF in float32, its 100 test rows, 300 fields of which 127 right): the rule whose confidence best tells right
fields from wrong ones. AUROC: product 0.907, min 0.853, mean 0.692; auto-accept coverage at 95 % precision:
product 9.7 %, min 4.3 %, mean 3.0 %. So "product": a long value the model was unsure of token after token is less
likely right than its least likely token alone says.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jsontune.metrics import flatten
from jsontune.parsing import find_json

RULES: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "product": sum,
    "mean": lambda logprobs: sum(logprobs) / len(logprobs),
}
"""Each rule as the log of the confidence it gives, from a value's token log-probabilities."""

DEFAULT_RULE = "product"

Spans = list[tuple[int, int]]


def token_spans(tokenizer: Any, token_ids: Sequence[int], *, stopped: bool = False) -> Spans:
    """[start, end) of the raw output's characters that each of `token_ids` wrote (see the module docstring);
    `stopped` as for decode_output. One decode a token: a prefix's text is decode_output's for it, the prefix
    decoded unless that text ends in U+FFFD, and then the text of the prefix one token shorter."""
    # Not decode_output on every prefix: it drops a held-back tail one token at a time, so a run of invalid bytes
    # (an untrained model's output) would cost a decode per token per prefix: quadratic in the stray bytes.
    ids = list(token_ids)
    decoded = ids[:-1] if stopped else ids
    ends, end = [], 0
    for k in range(1, len(decoded) + 1):
        text = tokenizer.decode(decoded[:k], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if not text.endswith("\ufffd"):
            end = len(text)
        ends.append(end)
    ends += [end] * (len(ids) - len(decoded))
    return list(zip([0, *ends[:-1]], ends, strict=True))


@dataclass(frozen=True)
class _Leaf:
    """Where a leaf value is written in the scanned text: its characters [start, end), and the character that
    ends it (`stop`) where it does not end itself."""

    start: int
    end: int
    stop: int | None


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_WORD = re.compile(r"true|false|null|NaN|-?Infinity")  # json.loads reads NaN and Infinity too
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _skip(text: str, at: int) -> int:
    return _WHITESPACE.match(text, at).end()


def _scan(text: str, at: int) -> tuple[Any, int]:
    """The JSON value that starts at text[at], each leaf a _Leaf, and the index after it. `text` is JSON that
    json.loads read, so nothing is checked."""
    char = text[at]
    if char in "{[":
        return _scan_container(text, at)
    if char == '"':
        end = _STRING.match(text, at).end()
        return _Leaf(at + 1, end - 1, stop=end - 1), end
    word = _WORD.match(text, at)
    if word:
        return _Leaf(at, word.end(), stop=None), word.end()
    end = _NUMBER.match(text, at).end()
    return _Leaf(at, end, stop=end), end


def _scan_container(text: str, at: int) -> tuple[Any, int]:
    close = "}" if text[at] == "{" else "]"
    i = _skip(text, at + 1)
    if text[i] == close:  # an empty {} or [] is a leaf, as flatten has it
        return _Leaf(at, i + 1, stop=None), i + 1
    items: Any = {} if close == "}" else []
    while True:
        if close == "}":
            key_end = _STRING.match(text, i).end()
            key = json.loads(text[i:key_end])
            value, i = _scan(text, _skip(text, _skip(text, key_end) + 1))
            items[key] = value  # a repeated key keeps its last value, as json.loads does
        else:
            value, i = _scan(text, i)
            items.append(value)
        i = _skip(text, i)
        if text[i] == close:
            return items, i + 1
        i = _skip(text, i + 1)


def _tokens(leaf: _Leaf, at: Sequence[int], owner: list[int], spans: Spans) -> range:
    """The indexes of the tokens that wrote `leaf`; `at` maps the scanned text into the raw output and `owner` says
    which token wrote each character of it."""
    last = leaf.stop if leaf.stop is not None else leaf.end - 1
    first, last = owner[at[leaf.start]], owner[at[last]]
    while first and spans[first - 1][0] == spans[first - 1][1]:
        first -= 1
    return range(first, last + 1)


def _check(text: str, spans: Spans, logprobs: Sequence[float], rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown confidence rule {rule!r}; choose one of {', '.join(RULES)}.")
    if len(spans) != len(logprobs):
        raise ValueError(f"{len(spans)} token spans for {len(logprobs)} log-probabilities; they must pair up.")
    ends = [0, *(end for _, end in spans)]
    if any(start != ends[i] or end < start for i, (start, end) in enumerate(spans)) or ends[-1] != len(text):
        raise ValueError(
            f"the token spans do not tile the text ({len(text)} characters): give the spans token_spans made "
            "for the token ids the text was decoded from."
        )


def field_confidences(
    text: str, spans: Spans, logprobs: Sequence[float], rule: str = DEFAULT_RULE
) -> dict[str, float | None]:
    """The confidence of every leaf of the object in `text` (the raw output), by path (see the module docstring):
    `spans` from token_spans, `logprobs` the log-probability of each of the same tokens."""
    _check(text, spans, logprobs, rule)
    found = find_json(text)
    if found is None or not found.value:
        return {}
    if found.repaired:
        return {path: None for path, _ in flatten(found.value)}
    tree, _ = _scan(found.source, 0)
    owner = [token for token, (start, end) in enumerate(spans) for _ in range(start, end)]
    confidences: dict[str, float | None] = {}
    for path, leaf in flatten(tree):
        tokens = _tokens(leaf, found.at, owner, spans)
        confidence = math.exp(RULES[rule]([logprobs[t] for t in tokens]))
        confidences[path] = min(confidence, confidences.get(path, confidence))
    return confidences


def row_confidence(confidences: dict[str, float | None]) -> float | None:
    """The lowest confidence of a row's fields; None when no field has one."""
    return min((c for c in confidences.values() if c is not None), default=None)
