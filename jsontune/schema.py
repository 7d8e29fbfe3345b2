r"""The JSON schema that --guided-json constrains decoding to, inferred from training targets.

    >>> schema = infer_schema([{"producto": "A", "cantidad": 100}, {"producto": "B", "cantidad": 2.5}])
    >>> schema["properties"]["producto"]
    {'type': 'string', 'pattern': '^[^\\x00-\\x1f]{0,16}$'}
    >>> schema["properties"]["cantidad"]
    {'type': 'number', 'minimum': 0, 'maximum': 100000}

A key is required when every target has it; keys never seen are not allowed, so a guided model
cannot invent fields. A field that is sometimes an integer and sometimes not is a "number".
Every field is bounded, with headroom, so that constrained decoding always ends: a model that has not
learned where a value stops would otherwise write inside a string, or digits, until --max-new-tokens
runs out. A string may be twice as long as the longest seen (at least 16 characters). A number may
reach 100 times the next power of ten above the largest seen (never negative when none was), which
also bounds its decimals (xgrammar writes a ranged number with a bounded fraction, and no exponent).
Pass --schema FILE for other bounds.

A string's bound is a `pattern`, `^[^\x00-\x1f]{0,N}$`, not `maxLength: N`: xgrammar (vLLM's guided
decoding backend) writes a `maxLength` string with raw control characters in it (a barely trained model
writes \x00, \x07, \x11), which is not JSON: a client's `json.loads` refuses it. Under the pattern
xgrammar writes no control character, no quote and no backslash inside a string, so every guided output
is strict JSON, with its length still bounded. (xgrammar ignores `maxLength` beside a `pattern`, and vLLM
refuses the two together, so the pattern carries the bound alone.) A --schema FILE with `maxLength` works
as before; its bound is read the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.manifest import read_manifest

# bool before int: True is an int too.
_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


MIN_MAX_LENGTH = 16
_BOUNDED = re.compile(r"\^\[\^\\x00-\\x1f\]\{0,(\d+)\}\$")  # the pattern string_pattern writes


def string_pattern(max_length: int) -> str:
    """A JSON string of at most `max_length` characters and no control character: strict JSON under xgrammar."""
    return f"^[^\\x00-\\x1f]{{0,{max_length}}}$"


def max_length(node: dict[str, Any]) -> int | None:
    """The most characters a string node allows: its `maxLength`, else the bound of a pattern
    `string_pattern` wrote; None where neither bounds it."""
    if "maxLength" in node:
        return node["maxLength"]
    bound = _BOUNDED.fullmatch(node.get("pattern", ""))
    return int(bound.group(1)) if bound else None


def _json_type(value: Any) -> str:
    return next(name for kind, name in _TYPES if isinstance(value, kind))


def _schema_of(values: list[Any]) -> dict[str, Any]:
    """The narrowest schema (in this small vocabulary) that every value in `values` satisfies."""
    types = sorted({_json_type(v) for v in values})
    if "integer" in types and "number" in types:
        types.remove("integer")
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    strings = [v for v in values if isinstance(v, str)]
    if strings:
        schema["pattern"] = string_pattern(max(MIN_MAX_LENGTH, 2 * max(len(v) for v in strings)))
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers:
        bound = 10 ** (len(str(int(max(abs(v) for v in numbers)))) + 2)
        schema.update(minimum=0 if min(numbers) >= 0 else -bound, maximum=bound)
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        keys = list(dict.fromkeys(k for obj in objects for k in obj))
        schema["properties"] = {k: _schema_of([obj[k] for obj in objects if k in obj]) for k in keys}
        schema["required"] = [k for k in keys if all(k in obj for obj in objects)]
        schema["additionalProperties"] = False
    if "array" in types:
        items = [item for v in values if isinstance(v, list) for item in v]
        schema["items"] = _schema_of(items) if items else {}
    return schema


def infer_schema(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema (type object) that all `targets` satisfy."""
    if not targets or not all(isinstance(t, dict) for t in targets):
        raise ValueError("infer_schema needs at least one target, and every target must be a JSON object.")
    return _schema_of(targets)


def load_schema(path: str | Path) -> dict[str, Any]:
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JsontuneError(f"--schema {path} is not readable JSON ({e}); give a JSON schema file.") from None
    if not isinstance(schema, dict):
        raise JsontuneError(f"--schema {path} holds a JSON {type(schema).__name__}, not a schema object.")
    return schema


def guided_json_schema(schema_file: str | Path | None, model_folders: list[str]) -> dict[str, Any]:
    """The schema for --guided-json: --schema FILE, else the training data named in a model folder's
    manifest. Never the input's own targets: those may be the gold labels being evaluated."""
    from jsontune.data import load_records

    if schema_file:
        return load_schema(schema_file)
    for folder in model_folders:
        train = read_manifest(folder).get("data", {}).get("train") or []
        files = [f for f in ([train] if isinstance(train, str) else train) if Path(f).exists()]  # one or several
        if files:
            return infer_schema([r.target for f in files for r in load_records(f).records])
    raise JsontuneError(
        "--guided-json needs a JSON schema, and the model's manifest names no training data to infer one "
        "from; pass --schema FILE."
    )


def schema_if_known(folders: list[str]) -> dict[str, Any] | None:
    """The schema `guided_json_schema` infers from the training data a model folder's manifest names; None
    where none does (outputs are then checked for valid JSON only)."""
    try:
        return guided_json_schema(None, folders)
    except JsontuneError:
        return None


def schema_valid_rate(values: list[Any], schema: dict[str, Any]) -> float:
    """The share of `values` (parsed outputs; None where no JSON was found) that satisfy `schema`."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    return sum(v is not None and validator.is_valid(v) for v in values) / len(values) if values else 0.0


def minimal_output(schema: dict[str, Any]) -> str:
    """The shortest compact JSON text `schema` allows (an object with its required keys, each at its shortest):
    a --max-new-tokens that cannot hold it cuts every guided output."""

    def shortest(node: dict[str, Any]) -> Any:
        types = node.get("type", "object")
        kinds = types if isinstance(types, list) else [types]
        for kind, value in (("null", None), ("boolean", True), ("integer", 0), ("number", 0), ("array", [])):
            if kind in kinds:
                return value
        if "string" in kinds:
            return "x" * node.get("minLength", 0)
        return {k: shortest(node.get("properties", {}).get(k, {})) for k in node.get("required", [])}

    return json.dumps(shortest(schema), separators=(",", ":"))


def longest_output(schema: dict[str, Any]) -> int | None:
    """The most characters a compact JSON text `schema` allows (every key present, every value at its
    longest), or None where something is unbounded. A token is at least one byte, so on ASCII text this
    is also the most tokens a guided output can take."""

    def longest(node: dict[str, Any]) -> int | None:
        types = node.get("type", "object")
        sizes = [_longest_of(kind, node, longest) for kind in (types if isinstance(types, list) else [types])]
        return None if None in sizes else max(sizes)

    return longest(schema)


def _longest_of(kind: str, node: dict[str, Any], longest: Any) -> int | None:
    if kind in ("null", "boolean"):
        return 5  # null, true, false
    if kind in ("integer", "number"):
        if "maximum" not in node or "minimum" not in node:
            return None
        digits = max(len(str(int(abs(node[b])))) for b in ("minimum", "maximum"))
        return 1 + digits + (0 if kind == "integer" else 1 + _FRACTION_DIGITS)  # sign, digits, point, fraction
    if kind == "string":
        most = max_length(node)
        return None if most is None else most + 2  # the quotes
    if kind == "object":
        properties = node.get("properties", {})
        values = [longest(v) for v in properties.values()]
        if None in values or node.get("additionalProperties", True) is not False:
            return None
        commas = max(len(values) - 1, 0)
        return 2 + sum(len(json.dumps(k)) + 1 + v for k, v in zip(properties, values, strict=True)) + commas
    return None  # arrays: no maxItems inferred


_FRACTION_DIGITS = 6  # xgrammar's bound on a ranged number's decimals
