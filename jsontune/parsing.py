"""Generation text -> JSON object (or None). Pure: no I/O, no torch.

A model's answer is rarely only JSON: it may leak a Qwen3 `<think>` block, wrap the object in a
markdown fence, add prose before or after, or stop mid-object when it runs out of new tokens.
`extract_json` keeps the first JSON object it can find and returns None when there is none, the
way nanochat's `tasks/gsm8k.py` extracts an answer:

    >>> extract_json('<think>\\n\\n</think>\\n\\n```json\\n{"producto": "A", "cantidad": 100}\\n```')
    {'producto': 'A', 'cantidad': 100}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import json_repair

_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_FENCE = re.compile(r"```[\w+-]*")
_OPEN, _CLOSE = "<think>", "</think>"


def _split_thinking(text: str) -> tuple[list[str], str]:
    """(the contents of every think block, the text without them)."""
    thoughts = _THINK_BLOCK.findall(text)
    rest = _THINK_BLOCK.sub("", text)
    # A template that opens <think> inside the prompt leaves only the closing tag in the generation.
    if _CLOSE in rest:
        head, _, rest = rest.rpartition(_CLOSE)
        thoughts.append(head)
    # An opening tag that never closes: the generation stopped while the model was still thinking.
    if _OPEN in rest:
        rest, _, tail = rest.partition(_OPEN)
        thoughts.append(tail)
    return thoughts, rest


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


def _object_spans(text: str) -> Iterator[str]:
    """Every top-level `{…}` span in order; an unclosed one runs to the end and is the last."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is None:
            # A truncated generation: the object is everything that is left. Looking for later
            # `{` would only find its nested objects, which are not the answer.
            yield text[start:]
            return
        yield text[start : end + 1]
        start = text.find("{", end + 1)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def extract_json(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in a generation, repaired if it is near-JSON; None if there is none.

    A generation that is valid JSON as a whole but not an object (a list, a number) gives None: the
    model answered in the wrong shape, and picking one item out of a list would hide that.
    """
    if not text:
        return None
    body = _FENCE.sub("\n", strip_thinking(text)).strip()
    whole = _loads(body)
    if whole is not None:
        return whole if isinstance(whole, dict) else None
    spans = list(_object_spans(body))
    for span in spans:
        obj = _loads(span)
        if isinstance(obj, dict):
            return obj
    # Nothing parses as it stands: repair single quotes, trailing commas, unquoted keys and the
    # missing end of a truncated object. An empty repair means nothing was recovered.
    for span in spans:
        repaired = json_repair.loads(span)
        if isinstance(repaired, dict) and repaired:
            return repaired
    return None
