"""load_records: every format loads the same records; every bad input is one sentence naming file and row."""

from __future__ import annotations

import json

import pytest

from jsontune.data import InputColumns, Record, load_records
from jsontune.errors import JsontuneError

ROWS = [
    {
        "id": "a1",
        "text": "Necesito 100 unidades de producto A, precio 50 pesos",
        "target": {"producto": "A", "cantidad": 100, "precio_unitario": 50},
    },
    {
        "id": "a2",
        "text": "Solicito 3 cajas de guantes de nitrilo a USD 12.5 c/u",
        "target": {"producto": "guantes de nitrilo", "cantidad": 3, "precio_unitario": 12.5},
    },
    {
        "id": "a3",
        "text": "ñandú: 7 metros de cable UTP cat6, $1.250,50",
        "target": {"producto": "cable UTP cat6", "cantidad": 7, "precio_unitario": 1250.5},
    },
]
EXPECTED = [Record(r["id"], r["text"], r["target"]) for r in ROWS]


def _as_strings(rows):
    """The rows with the target stored as a JSON string, as CSV and most tables hold it."""
    return [{**r, "target": json.dumps(r["target"], ensure_ascii=False)} for r in rows]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _write(tmp_path, fmt, rows):
    if fmt == "jsonl":
        return _write_jsonl(tmp_path / "d.jsonl", rows)
    if fmt == "json":
        (tmp_path / "d.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        return tmp_path / "d.json"
    if fmt == "json-lines":
        return _write_jsonl(tmp_path / "d.json", rows)
    if fmt == "json-wrapped":
        (tmp_path / "d.json").write_text(json.dumps({"data": rows}), encoding="utf-8")
        return tmp_path / "d.json"
    import pandas as pd

    if fmt == "csv":
        pd.DataFrame(_as_strings(rows)).to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv"
    if fmt == "parquet":
        pd.DataFrame(_as_strings(rows)).to_parquet(tmp_path / "d.parquet")
        return tmp_path / "d.parquet"
    import datasets

    datasets.Dataset.from_list(_as_strings(rows)).save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "json-lines", "json-wrapped", "csv", "parquet", "save_to_disk"])
def test_every_format_loads_the_same_records(tmp_path, fmt):
    result = load_records(_write(tmp_path, fmt, ROWS))
    assert result.records == EXPECTED
    assert result.skipped == []
    assert (result.text_col, result.target_col, result.id_col) == ("text", "target", "id")
    assert result.columns == ["id", "text", "target"]


def test_semicolon_csv_with_spanish_column_names_and_row_number_ids(tmp_path):
    path = tmp_path / "pedidos.csv"
    path.write_text(
        'Entrada;Salida\n"100 unidades de A, 50 pesos";"{""producto"": ""A""}"\n'
        '"2 cajas de B";"{""producto"": ""B""}"\n',
        encoding="utf-8",
    )
    result = load_records(path)
    assert [(r.id, r.text, r.target) for r in result.records] == [
        ("0", "100 unidades de A, 50 pesos", {"producto": "A"}),
        ("1", "2 cajas de B", {"producto": "B"}),
    ]
    assert (result.text_col, result.target_col, result.id_col) == ("Entrada", "Salida", None)


def test_flags_choose_columns_that_names_do_not_reveal(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"ref": 7, "mensaje_cliente": "hola", "resultado": {"x": 1}}])
    found = "no text column.*columns found: ref, mensaje_cliente, resultado.*--text-col"
    with pytest.raises(JsontuneError, match=found):
        load_records(path)
    result = load_records(path, InputColumns(text_col="mensaje_cliente", target_col="resultado", id_col="ref"))
    assert result.records == [Record("7", "hola", {"x": 1})]


def test_unknown_flag_column_lists_the_columns(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(
        JsontuneError,
        match=r"d\.jsonl has no column 'texto' \(given with --text-col\); "
        r"columns found: id, text, target",
    ):
        load_records(path, InputColumns(text_col="texto"))


def test_without_require_target_a_file_without_labels_loads(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"input": "100 unidades de A"}, {"input": "2 de B"}])
    result = load_records(path, require_target=False)
    assert result.records == [Record("0", "100 unidades de A", None), Record("1", "2 de B", None)]
    with pytest.raises(JsontuneError, match="no target column.*--target-col"):
        load_records(path)


GOOD = '{"id": "r1", "text": "100 unidades de A", "target": {"producto": "A"}}\n'
BAD_ROWS = {
    "invalid JSON target": ('{"id": "r2", "text": "t", "target": "{producto: A"}\n', "is not valid JSON"),
    "target not an object": ('{"id": "r2", "text": "t", "target": "[1, 2]"}\n', "is a JSON array, not an object"),
    "target a number": ('{"id": "r2", "text": "t", "target": 5}\n', "is a JSON number, not an object"),
    "empty text": ('{"id": "r2", "text": "   ", "target": {"a": 1}}\n', "the text (column 'text') is empty"),
    "missing target": ('{"id": "r2", "text": "t"}\n', "the target (column 'target') is missing"),
    "duplicate id": ('{"id": "r1", "text": "t", "target": {"a": 1}}\n', "id 'r1' repeats the id at line 1"),
    "line not JSON": ('{"id": "r2", "text": \n', "the line is not valid JSON"),
    "line not an object": ('["r2", "t"]\n', "the line is a JSON array"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_bad_row_raises_one_sentence_naming_file_and_line(tmp_path, name):
    line, problem = BAD_ROWS[name]
    path = tmp_path / "orders.jsonl"
    path.write_text(GOOD + line, encoding="utf-8")
    with pytest.raises(JsontuneError) as e:
        load_records(path)
    message = str(e.value)
    assert message.startswith(f"{path}, line 2: ")
    assert problem in message
    assert message.endswith("pass --skip-bad-rows to skip bad rows.")
    assert "\n" not in message


def test_undecodable_bytes_name_the_row(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + '{"id": "r2", "text": "cañería", "target": {"a": 1}}\n'.encode("latin-1"))
    with pytest.raises(JsontuneError, match=r"latin1\.jsonl, line 2: column 'text' holds bytes that are not UTF-8"):
        load_records(path)


def test_csv_errors_give_the_1_based_row_and_the_file_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,target\nbien,"{""a"": 1}"\nmal,"{a: 1}"\n', encoding="utf-8")
    with pytest.raises(
        JsontuneError,
        match=r"d\.csv, row 2 \(1-based, after the header; line 3 of the file\): "
        r"the target \(column 'target'\) is not valid JSON",
    ):
        load_records(path)


def test_csv_row_with_an_unquoted_delimiter_is_reported(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,target\n100 unidades, precio 5,"{""a"": 1}"\n', encoding="utf-8")
    with pytest.raises(JsontuneError, match="row 1 .*has 3 fields but the header has 2"):
        load_records(path)


def test_json_array_items_are_numbered_from_1(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([ROWS[0], {"id": "x", "text": "", "target": {}}]), encoding="utf-8")
    with pytest.raises(JsontuneError, match=r"d\.json, item 2 \(1-based\): the text"):
        load_records(path)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("d.txt", "hola", r"unknown format \(\.txt\)"),
        ("d.json", '{"text": "a", ', "is not valid JSON"),
        ("d.json", '"just a string"', "holds a JSON string; it must be an array of objects"),
        ("d.jsonl", "", "has no rows"),
        ("d.parquet", "not parquet", "could not be read as Parquet"),
    ],
)
def test_file_level_problems_raise_even_when_skipping(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(JsontuneError, match=problem) as e:
        load_records(path, InputColumns(skip_bad_rows=True))
    assert str(path) in str(e.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(JsontuneError, match=r"nope\.jsonl does not exist"):
        load_records(tmp_path / "nope.jsonl")


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    with pytest.raises(JsontuneError, match="not a dataset saved with datasets.save_to_disk"):
        load_records(tmp_path)


def test_dataset_dict_folder_asks_for_one_split(tmp_path):
    import datasets

    split = datasets.Dataset.from_list(_as_strings(ROWS))
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(JsontuneError, match=r"holds several splits \(train, test\)"):
        load_records(tmp_path / "dd")
    assert load_records(tmp_path / "dd" / "train").records == EXPECTED


def test_skip_bad_rows_keeps_good_rows_and_reports_each_skip(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        '{"text": "uno", "target": {"a": 1}}',
        '{"text": "", "target": {"a": 2}}',
        "",  # a blank line is not a row
        '{"text": "tres", "target": "no json"}',
        '{"text": "cuatro", "target": {"a": 4}}',
        '{"text": "cinco"}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_records(path, InputColumns(skip_bad_rows=True))
    # Ids are positions among the rows, so skipping does not renumber the rows that stay.
    assert [(r.id, r.text) for r in result.records] == [("0", "uno"), ("3", "cuatro")]
    assert len(result.skipped) == 3
    for skipped, line in zip(result.skipped, (2, 4, 6), strict=True):
        assert skipped.startswith(f"{path}, line {line}: ")


def test_skipping_every_row_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "", "target": {}}\n{"text": "x", "target": 3}\n', encoding="utf-8")
    with pytest.raises(JsontuneError, match="has no usable rows: all 2 were bad"):
        load_records(path, InputColumns(skip_bad_rows=True))


def test_a_nan_target_is_a_bad_row(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"id": "1", "text": "10 de A", "target": {"producto": "A", "cantidad": NaN}}\n')
    with pytest.raises(JsontuneError, match=r"line 1: .*NaN or Infinity"):
        load_records(path)


def test_a_null_target_is_named_null(tmp_path):
    path = tmp_path / "null.jsonl"
    path.write_text('{"id": "1", "text": "10 de A", "target": "null"}\n')
    with pytest.raises(JsontuneError, match="is a JSON null, not an object"):
        load_records(path)


def test_struct_targets_in_parquet_come_with_a_note(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [
            {"text": "10 de A a 5", "target": {"producto": "A", "cantidad": 10}},
            {"text": "B, 2.5", "target": {"producto": "B", "precio": 2.5}},
        ]
    )
    pq.write_table(table, tmp_path / "struct.parquet")
    loaded = load_records(tmp_path / "struct.parquet")
    assert loaded.records[1].target == {"producto": "B", "cantidad": None, "precio": 2.5}  # what Arrow keeps
    assert len(loaded.notes) == 1 and "stored as a struct" in loaded.notes[0]
    pq.write_table(pa.Table.from_pylist([{"text": "x", "target": json.dumps({"a": 1})}]), tmp_path / "s.parquet")
    assert load_records(tmp_path / "s.parquet").notes == []
