"""--guided-json's schema: inferred from targets, or read from --schema, or from the training data."""

from __future__ import annotations

import json

import pytest

from jsontune.errors import JsontuneError
from jsontune.manifest import write_manifest
from jsontune.serving.schema import guided_json_schema, infer_schema


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
            "cantidad": {"type": "integer"},
            "precio_unitario": {"type": "number"},  # an int in one target, a float in the other
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
        "n": {"type": "integer"},
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
