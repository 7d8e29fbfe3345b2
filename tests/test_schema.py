"""--guided-json's schema: inferred from targets, or read from --schema, or from the training data."""

from __future__ import annotations

import json

import pytest

from jsontune.errors import JsontuneError
from jsontune.manifest import write_manifest
from jsontune.schema import guided_json_schema, infer_schema, longest_output, max_length, string_pattern

STRING_16 = {"type": "string", "pattern": "^[^\\x00-\\x1f]{0,16}$"}


def test_flat_orders():
    schema = infer_schema(
        [
            {"producto": "A", "cantidad": 100, "precio_unitario": 50},
            {"producto": "B", "cantidad": 3, "precio_unitario": 12.5, "urgente": True},
        ]
    )
    assert schema == {
        "type": "object",
        "properties": {
            "producto": STRING_16,
            "cantidad": {"type": "integer", "minimum": 0, "maximum": 100_000},  # 100: 10^3, times 100
            "precio_unitario": {"type": "number", "minimum": 0, "maximum": 10_000},  # an int, then a float
            "urgente": {"type": "boolean"},
        },
        "required": ["producto", "cantidad", "precio_unitario"],  # "urgente" is missing from one target
        "additionalProperties": False,
    }


def test_nested_objects_lists_and_nulls():
    schema = infer_schema(
        [
            {"cliente": {"nombre": "Ana"}, "items": [{"sku": "A1", "n": 2}], "nota": None},
            {"cliente": {"nombre": "Luis", "rfc": "X"}, "items": [], "nota": "rápido"},
        ]
    )
    assert schema["properties"]["cliente"] == {
        "type": "object",
        "properties": {"nombre": STRING_16, "rfc": STRING_16},
        "required": ["nombre"],
        "additionalProperties": False,
    }
    assert schema["properties"]["items"]["items"]["properties"] == {
        "sku": STRING_16,
        "n": {"type": "integer", "minimum": 0, "maximum": 1000},
    }
    assert schema["properties"]["nota"] == {"type": ["null", "string"], "pattern": string_pattern(16)}


def test_needs_objects():
    with pytest.raises(ValueError):
        infer_schema([])
    with pytest.raises(ValueError):
        infer_schema([{"a": 1}, [1, 2]])


def test_schema_file_wins(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"type": "object", "properties": {"x": {"type": "string"}}}))
    assert guided_json_schema(path, []) == json.loads(path.read_text())


def test_bad_schema_file_is_one_sentence(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    with pytest.raises(JsontuneError, match="--schema .*schema.json"):
        guided_json_schema(path, [])


def test_schema_comes_from_the_training_data_in_the_manifest(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"id": "1", "text": "t", "target": {"producto": "A"}}) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    write_manifest(model, "adapter", data={"train": str(train)})
    assert guided_json_schema(None, [str(model)])["properties"] == {"producto": STRING_16}


def test_a_model_trained_on_several_files_gets_the_schema_of_all_their_targets(tmp_path):
    first, corrections = tmp_path / "train.jsonl", tmp_path / "corrections.jsonl"
    first.write_text(json.dumps({"id": "1", "text": "t", "target": {"producto": "A"}}) + "\n")
    corrections.write_text(json.dumps({"id": "2", "text": "u", "target": {"producto": "B", "cantidad": 3}}) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    write_manifest(model, "adapter", data={"train": [str(first), str(corrections)]})
    assert set(guided_json_schema(None, [str(model)])["properties"]) == {"producto", "cantidad"}


def test_no_source_asks_for_schema(tmp_path):
    with pytest.raises(JsontuneError, match="pass --schema"):
        guided_json_schema(None, [str(tmp_path), "Qwen/Qwen3-0.6B"])


def test_strings_are_bounded_with_headroom():
    """A guided model cannot write inside a string forever: twice the longest seen, at least 16."""
    long_name = "tornillos hexagonales de acero inoxidable"
    schema = infer_schema([{"producto": long_name, "nota": None}, {"producto": "A", "nota": "x"}])
    assert schema["properties"]["producto"]["pattern"] == string_pattern(2 * len(long_name))
    assert schema["properties"]["nota"] == {"type": ["null", "string"], "pattern": string_pattern(16)}


def test_numbers_are_bounded_with_headroom():
    schema = infer_schema(
        [{"cantidad": 1500, "ajuste": -3.5, "urgente": True}, {"cantidad": 2, "ajuste": 0.25, "urgente": False}]
    )
    assert schema["properties"]["cantidad"] == {"type": "integer", "minimum": 0, "maximum": 1_000_000}
    assert schema["properties"]["ajuste"] == {"type": "number", "minimum": -1000, "maximum": 1000}  # negatives seen
    assert schema["properties"]["urgente"] == {"type": "boolean"}  # True is an int to Python, not a number here


def test_every_inferred_bound_admits_the_targets_it_came_from():
    from jsonschema import Draft202012Validator

    from jsontune.data.synth import generate_orders

    targets = [r.target for r in generate_orders(300, seed=3)]
    validator = Draft202012Validator(infer_schema(targets))
    assert all(validator.is_valid(t) for t in targets)


def test_the_string_bound_is_a_pattern_that_refuses_control_characters():
    """jsonschema reads the bound as xgrammar does: at most N characters, any but a control character."""
    from jsonschema import Draft202012Validator

    schema = infer_schema([{"producto": "tornillos"}])  # 9 characters: bound 18
    assert schema["properties"]["producto"] == {"type": "string", "pattern": "^[^\\x00-\\x1f]{0,18}$"}
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"producto": "cañería de 3/4 €"})
    assert validator.is_valid({"producto": "x" * 18}) and not validator.is_valid({"producto": "x" * 19})
    for control in ("\x00", "\x07", "\x11", "\t", "\n", "\x1f"):
        assert not validator.is_valid({"producto": f"tor{control}nillo"}), repr(control)


def test_the_bound_is_read_from_the_pattern_or_from_a_users_max_length():
    assert max_length({"type": "string", "pattern": string_pattern(40)}) == 40
    assert max_length({"type": "string", "maxLength": 40}) == 40
    assert max_length({"type": "string", "pattern": "^[a-z]+$"}) is None  # a user's own pattern bounds nothing known
    assert max_length({"type": "string"}) is None
    inferred = infer_schema([{"producto": "tornillos"}])
    given = {**inferred, "properties": {"producto": {"type": "string", "maxLength": 18}}}
    assert longest_output(inferred) == longest_output(given) == 2 + len('"producto":') + 18 + 2
    assert longest_output({**inferred, "properties": {"producto": {"type": "string"}}}) is None


def test_xgrammar_writes_strict_json_strings_under_the_inferred_schema():
    """The grammar vLLM builds from the inferred schema (compact, as vllm_engine asks) admits no control
    character, quote or backslash inside a string, and still bounds its length."""
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    schema = infer_schema([{"producto": "tornillos", "cantidad": 3}])  # producto: at most 18 characters
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))

    def accepts(producto: str) -> bool:
        return _is_grammar_accept_string(grammar, f'{{"producto":"{producto}","cantidad":3}}')

    assert accepts("cañería de 3/4 €") and accepts("x" * 18)
    assert not accepts("x" * 19)
    for inside in ("tor\x00nillo", "tor\x07nillo", "tor\x11nillo", "tor\nnillo", 'a\\"b', "a\\\\b", "a\\u0041"):
        assert not accepts(inside), repr(inside)
    for text in ('{"producto":"cañería de 3/4 €","cantidad":3}', '{"producto":"","cantidad":0}'):
        assert _is_grammar_accept_string(grammar, text) and json.loads(text)
