import json

import pytest

from jsontune.parsing import extract_json, find_json, has_thinking, strip_thinking, valid_json

ORDER = {"producto": "A", "cantidad": 100, "precio_unitario": 50}
ORDER_JSON = '{"producto": "A", "cantidad": 100, "precio_unitario": 50}'


@pytest.mark.parametrize(
    "text",
    [
        ORDER_JSON,
        f"<think>\n\n</think>\n\n{ORDER_JSON}",
        f"<think>El cliente pide {{100}} unidades.</think>{ORDER_JSON}",
        f"```json\n{ORDER_JSON}\n```",
        f"<think>\n\n</think>\n\n```\n{ORDER_JSON}\n```\n",
        f"Claro, aquí tienes el JSON:\n{ORDER_JSON}\nEspero que te sirva.",
        f"Usa la plantilla {{x}} así: {ORDER_JSON}",
        f'{ORDER_JSON}\n{{"producto": "B"}}',
        f"razonamiento sin etiqueta de apertura</think>\n{ORDER_JSON}",
    ],
    ids=["plain", "empty-think", "think", "fence", "think+fence", "prose", "prose-braces", "two", "orphan-close"],
)
def test_extracts_the_first_object_from_messy_output(text):
    assert extract_json(text) == ORDER


def test_nested_objects_and_braces_inside_strings():
    text = 'Respuesta: {"producto": "tubo {3/4}\\" }", "detalle": {"color": "rojo", "medidas": [1, 2]}} fin }'
    assert extract_json(text) == {"producto": 'tubo {3/4}" }', "detalle": {"color": "rojo", "medidas": [1, 2]}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"producto": "A", "cantidad": 100, "precio_unitario": 5', {**ORDER, "precio_unitario": 5}),
        ('{"producto": "A", "detalle": {"color": "ro', {"producto": "A", "detalle": {"color": "ro"}}),
        ("{'producto': 'A', 'cantidad': 100, 'precio_unitario': 50}", ORDER),
        ('{"producto": "A", "cantidad": 100, "precio_unitario": 50,}', ORDER),
        ('{producto: "A", cantidad: 100, precio_unitario: 50}', ORDER),
    ],
    ids=["truncated", "truncated-nested", "single-quotes", "trailing-comma", "unquoted-keys"],
)
def test_repairs_near_json(text, expected):
    assert extract_json(text) == expected


def test_truncated_output_keeps_the_outer_object_not_a_nested_one():
    # The nested {"c": 2} parses on its own; the answer is still the truncated outer object.
    assert extract_json('{"a": 1, "b": {"c": 2}, "d": "x') == {"a": 1, "b": {"c": 2}, "d": "x"}


@pytest.mark.parametrize(
    "text",
    ["", None, "   ", "no hay JSON aquí", "[1, 2, 3]", '[{"producto": "A"}]', "42", '"texto"', "{", "<think>{"],
    ids=["empty", "none", "blank", "prose", "list", "list-of-objects", "number", "string", "brace", "unclosed-think"],
)
def test_no_object_gives_none(text):
    assert extract_json(text) is None


def test_unclosed_think_swallows_the_rest():
    text = '<think>Primero el producto {"producto": "A"} y luego'
    assert strip_thinking(text) == ""
    assert extract_json(text) is None
    assert has_thinking(text)


def test_strip_thinking_keeps_the_answer():
    assert strip_thinking(f"<think>\nhmm\n</think>\n\n{ORDER_JSON}\n") == ORDER_JSON
    assert strip_thinking(f"{ORDER_JSON}<think>más") == ORDER_JSON


@pytest.mark.parametrize(
    "text, leaked",
    [
        (ORDER_JSON, False),
        (f"<think>\n\n</think>\n\n{ORDER_JSON}", False),
        (f"<think>El cliente pide 100.</think>{ORDER_JSON}", True),
        (f"pienso...</think>{ORDER_JSON}", True),
        (f"</think>{ORDER_JSON}", False),
        ("<think>   ", False),
    ],
)
def test_has_thinking_only_for_non_empty_blocks(text, leaked):
    assert has_thinking(text) is leaked


@pytest.mark.parametrize(
    "text",
    [
        f"<think>{ORDER_JSON}</think>\n```json\n{ORDER_JSON}\n```",
        f"Claro: {ORDER_JSON} y {{otro}}",
        f"pienso {ORDER_JSON}</think>\n\n {ORDER_JSON}",
    ],
    ids=["same-object-in-thinking", "prose", "orphan-close"],
)
def test_find_json_says_where_in_the_generation_the_object_was_read(text):
    found = find_json(text)
    assert found.value == ORDER and found.source == ORDER_JSON and not found.repaired
    # Every character comes from the generation, and from the answer, not the copy inside the thinking.
    start = text.rindex(ORDER_JSON)
    assert found.at == tuple(range(start, start + len(ORDER_JSON)))


def test_find_json_marks_a_repaired_object():
    found = find_json("Respuesta: {'producto': 'A', 'cantidad': 100} fin")
    assert found.repaired and found.value == {"producto": "A", "cantidad": 100}
    assert found.source == "{'producto': 'A', 'cantidad': 100}"


@pytest.mark.parametrize(
    "text",
    [
        ORDER_JSON,
        f"<think>\n\n</think>\n\n```json\n{ORDER_JSON}\n```",
        f"Claro, aquí tienes el JSON:\n{ORDER_JSON}\nEspero que te sirva.",
        f'{ORDER_JSON}\n{{"producto": "B",',
        '{"producto": "A\\u0007B\\tC", "cantidad": 100, "precio_unitario": 50}',
    ],
    ids=["plain", "think+fence", "prose", "then-a-cut-one", "escaped-control-characters"],
)
def test_an_object_json_loads_reads_as_written_is_valid_json(text):
    found = find_json(text)
    assert valid_json(found) and not found.repaired
    assert found.value["cantidad"] == 100


@pytest.mark.parametrize(
    "text",
    [
        '{"producto": "A", "cantidad": 100, "precio_unitario": 5',
        "{'producto': 'A', 'cantidad': 100, 'precio_unitario': 50}",
        '{"producto": "A", "cantidad": 100, "precio_unitario": 50,}',
        '{producto: "A", cantidad: 100, precio_unitario: 50}',
    ],
    ids=["truncated", "single-quotes", "trailing-comma", "unquoted-keys"],
)
def test_a_repaired_object_is_not_valid_json(text):
    found = find_json(text)
    assert found.repaired and not valid_json(found)
    assert extract_json(text) == found.value and found.value["cantidad"] == 100  # the object is still given


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x11", "\n", "\t", "\x1f"])
def test_a_raw_control_character_inside_a_string_is_not_valid_json(control):
    """What a guided model under xgrammar's maxLength wrote: json.loads refuses it, so it is only repaired."""
    text = f'{{"producto": "to{control}rnillo", "cantidad": 100, "precio_unitario": 50}}'
    with pytest.raises(ValueError):
        json.loads(text)
    for generation in (text, f"Claro: {text} listo"):
        found = find_json(generation)
        assert found.repaired and not valid_json(found) and found.value["cantidad"] == 100


@pytest.mark.parametrize("text", ["", None, "no hay JSON aquí", "[1, 2, 3]", "{", "<think>{"])
def test_no_object_is_not_valid_json(text):
    assert find_json(text) is None and not valid_json(None)
