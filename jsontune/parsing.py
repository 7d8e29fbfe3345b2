"""Generation text -> JSON object (or None). Pure: no I/O, no torch.

A model's answer is rarely only JSON: it may leak a Qwen3 `<think>` block, wrap the object in a
markdown fence, add prose before or after, or stop mid-object when it runs out of new tokens.
`extract_json` keeps the first JSON object it can find and returns None when there is none, the
way nanochat's `tasks/gsm8k.py` extracts an answer:

    >>> extract_json('<think>\\n\\n</think>\\n\\n```json\\n{"producto": "A", "cantidad": 100}\\n```')
    {'producto': 'A', 'cantidad': 100}

`find_json` also says where the object was read from: its JSON text, the index in the generation of each
of that text's characters, and whether only json_repair could read it (what `jsontune.confidence` needs
to trace a value back to the tokens that wrote it).

Valid JSON means strict JSON (RFC 8259), what a client's plain `json.loads` reads: `valid_json` is true
where the object was read as the model wrote it (the whole answer, or a `{…}` span of it), and false where
it was only repaired (single quotes, a trailing comma, a raw control character inside a string, a missing
end) or where there is none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import json_repair

_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_FENCE = re.compile(r"```[\w+-]*")
_OPEN, _CLOSE = "<think>", "</think>"


def _split_thinking(text: str) -> tuple[list[str], str, list[int]]:
    """(the contents of every think block, the text without them, the index in `text` of each of its characters)."""
    thoughts, kept, at = [], [], 0
    for block in _THINK_BLOCK.finditer(text):
        thoughts.append(block[1])
        kept.append(range(at, block.start()))
        at = block.end()
    kept.append(range(at, len(text)))
    rest = "".join(text[part.start : part.stop] for part in kept)
    index = [i for part in kept for i in part]
    # A template that opens <think> inside the prompt leaves only the closing tag in the generation.
    if _CLOSE in rest:
        cut = rest.rindex(_CLOSE)
        thoughts.append(rest[:cut])
        rest, index = rest[cut + len(_CLOSE) :], index[cut + len(_CLOSE) :]
    # An opening tag that never closes: the generation stopped while the model was still thinking.
    if _OPEN in rest:
        cut = rest.index(_OPEN)
        thoughts.append(rest[cut + len(_OPEN) :])
        rest, index = rest[:cut], index[:cut]
    return thoughts, rest, index


def strip_thinking(text: str) -> str:
    """`text` without `<think>…</think>` blocks, an unclosed `<think>…` tail or a stray `…</think>` head."""
    return _split_thinking(text)[1].strip()


def has_thinking(text: str) -> bool:
    """True when the text carries a think block with something in it (the empty one Qwen3 writes when
    thinking is switched off does not count)."""
    return any(thought.strip() for thought in _split_thinking(text)[0])


def _matching_brace(text: str, start: int) -> int | None:
    """Index of the `}` that closes the `{` at `start`, skipping braces inside JSON strings."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _object_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every top-level `{…}` span in order; an unclosed one runs to the end and is the last."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is None:
            # A truncated generation: the object is everything that is left. Looking for later
            # `{` would only find its nested objects, which are not the answer.
            yield start, len(text)
            return
        yield start, end + 1
        start = text.find("{", end + 1)


def _answer(text: str) -> tuple[str, list[int]]:
    """The text the object is looked for in: `text` without thinking, fences and the whitespace around them;
    and the index in `text` of each of its characters (the newline that replaces a fence: the fence's first)."""
    _, rest, index = _split_thinking(text)
    pieces, at, pos = [], [], 0
    for fence in _FENCE.finditer(rest):
        pieces += [rest[pos : fence.start()], "\n"]
        at += [*index[pos : fence.start()], index[fence.start()]]
        pos = fence.end()
    pieces.append(rest[pos:])
    at += index[pos:]
    unstripped = "".join(pieces)
    body = unstripped.strip()
    lead = len(unstripped) - len(unstripped.lstrip())
    return body, at[lead : lead + len(body)]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Found:
    """The object of a generation and where it was read from."""

    value: dict[str, Any]
    source: str  # the JSON text it was read from: the whole answer, or its first `{…}` span that reads
    at: tuple[int, ...]  # for every character of `source`, its index in the generation
    repaired: bool  # only json_repair could read `source`


def find_json(text: str | None) -> Found | None:
    """The first JSON object in a generation, repaired if it is near-JSON, with where it was found; None if there
    is none.

    A generation that is valid JSON as a whole but not an object (a list, a number) gives None: the
    model answered in the wrong shape, and picking one item out of a list would hide that.
    """
    if not text:
        return None
    body, at = _answer(text)
    whole = _loads(body)
    if whole is not None:
        return Found(whole, body, tuple(at), repaired=False) if isinstance(whole, dict) else None
    spans = list(_object_spans(body))
    for start, end in spans:
        obj = _loads(body[start:end])
        if isinstance(obj, dict):
            return Found(obj, body[start:end], tuple(at[start:end]), repaired=False)
    # Nothing parses as it stands: repair single quotes, trailing commas, unquoted keys, raw control characters
    # inside strings and the missing end of a truncated object. An empty repair means nothing was recovered.
    for start, end in spans:
        repaired = json_repair.loads(body[start:end])
        if isinstance(repaired, dict) and repaired:
            return Found(repaired, body[start:end], tuple(at[start:end]), repaired=True)
    return None


def valid_json(found: Found | None) -> bool:
    """Whether `find_json` found an object that is strict JSON as the model wrote it (not repaired)."""
    return found is not None and not found.repaired


def extract_json(text: str | None) -> dict[str, Any] | None:
    """The object `find_json` finds in a generation, or None."""
    found = find_json(text)
    return found.value if found else None
