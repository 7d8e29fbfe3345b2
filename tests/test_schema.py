"""--guided-json's schema: inferred from targets, or read from --schema, or from the training data."""

from __future__ import annotations

import json

import pytest

from jsontune.errors import JsontuneError
from jsontune.manifest import write_manifest
from jsontune.schema import guided_json_schema, infer_schema


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
            "producto": {"type": "string", "maxLength": 16},
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
        "properties": {"nombre": {"type": "string", "maxLength": 16}, "rfc": {"type": "string", "maxLength": 16}},
        "required": ["nombre"],
        "additionalProperties": False,
    }
    assert schema["properties"]["items"]["items"]["properties"] == {
        "sku": {"type": "string", "maxLength": 16},
        "n": {"type": "integer", "minimum": 0, "maximum": 1000},
    }
    assert schema["properties"]["nota"] == {"type": ["null", "string"], "maxLength": 16}


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
    assert guided_json_schema(None, [str(model)])["properties"] == {"producto": {"type": "string", "maxLength": 16}}


def test_no_source_asks_for_schema(tmp_path):
    with pytest.raises(JsontuneError, match="pass --schema"):
        guided_json_schema(None, [str(tmp_path), "Qwen/Qwen3-0.6B"])


def test_strings_are_bounded_with_headroom():
    """A guided model cannot write inside a string forever: twice the longest seen, at least 16."""
    long_name = "tornillos hexagonales de acero inoxidable"
    schema = infer_schema([{"producto": long_name, "nota": None}, {"producto": "A", "nota": "x"}])
    assert schema["properties"]["producto"]["maxLength"] == 2 * len(long_name)
    assert schema["properties"]["nota"] == {"type": ["null", "string"], "maxLength": 16}


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
