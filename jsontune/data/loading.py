"""Read a dataset into validated `Record`s, with one clear sentence for every problem.

Formats: `.jsonl`, `.json` (an array of objects, or JSON Lines as `datasets.Dataset.to_json` writes
them), `.csv` (`,` `;` or tab), `.parquet`, a folder written by `datasets.save_to_disk`, and, when
the path does not exist and looks like "owner/name", the train split of a Hugging Face Hub dataset.

Columns are found by name (TEXT_NAMES, TARGET_NAMES, ID_NAMES, any case) or given with
--text-col / --target-col / --id-col. A target is a JSON object or a string holding one. Rows keep
the id from the id column, else their 0-based position in the file, so ids stay stable when rows
are skipped.

Problems with a row (bad JSON, empty text, duplicate id, ...) name the file and the row; they raise
unless `InputColumns.skip_bad_rows`, in which case each skipped row is one sentence in `LoadResult.skipped`.
Problems with the whole file always raise. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsontune.data.records import InputColumns, LoadResult, Record
from jsontune.errors import JsontuneError

TEXT_NAMES = (
    "text",
    "texto",
    "input",
    "entrada",
    "prompt",
    "instruction",
    "query",
    "question",
    "sentence",
    "content",
    "mensaje",
    "message",
    "pedido",
)
TARGET_NAMES = (
    "target",
    "json",
    "output",
    "salida",
    "respuesta",
    "label",
    "labels",
    "completion",
    "answer",
    "response",
    "expected",
    "gold",
)
ID_NAMES = ("id", "uid", "uuid", "row_id", "example_id", "idx", "key")

_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Bytes that are not UTF-8 survive decoding as lone surrogates (errors="surrogateescape"), so the
# row that holds them can be named instead of failing the whole file.
_BAD_BYTES = re.compile("[\udc80-\udcff]")


@dataclass
class _Row:
    where: str  # how a person finds the row: "line 3", "row 3 (1-based)"
    values: dict[str, Any] | None
    problem: str | None = None


class _BadRow(Exception):
    """A problem confined to one row; `load_records` adds the file and row and raises or skips."""


def load_records(
    path: str | os.PathLike, columns: InputColumns | None = None, *, require_target: bool = True
) -> LoadResult:
    """Load and validate every row of `path`, read by `columns` (default: found by name, a bad row stops);
    see the module docstring for formats and rules."""
    columns = columns or InputColumns()
    text_col, target_col, id_col, skip_bad_rows = (
        columns.text_col,
        columns.target_col,
        columns.id_col,
        columns.skip_bad_rows,
    )
    source = str(path)
    rows = _read_rows(path)
    if not rows:
        raise JsontuneError(f"{source} has no rows; check that it is the right file.")
    if all(row.values is None for row in rows):
        raise JsontuneError(f"{source}, {rows[0].where}: {rows[0].problem}; no row of the file could be read.")
    found = list(dict.fromkeys(key for row in rows for key in (row.values or {})))
    text_col = _pick(source, found, text_col, TEXT_NAMES, "text", required=True)
    target_col = _pick(source, found, target_col, TARGET_NAMES, "target", required=require_target)
    id_col = _pick(source, found, id_col, ID_NAMES, "id", required=False)

    records: list[Record] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    for index, row in enumerate(rows):
        try:
            record = _to_record(row, index, text_col, target_col, id_col, require_target)
            if record.id in seen:
                raise _BadRow(f"id {record.id!r} repeats the id at {seen[record.id]}; ids must be unique")
        except _BadRow as e:
            message = f"{source}, {row.where}: {e}"
            if not skip_bad_rows:
                raise JsontuneError(f"{message}; fix the row or pass --skip-bad-rows to skip bad rows.") from None
            skipped.append(f"{message}.")
            continue
        seen[record.id] = row.where
        records.append(record)
    if not records:
        raise JsontuneError(f"{source} has no usable rows: all {len(rows)} were bad (first: {skipped[0]})")
    notes = []
    typed = not Path(path).is_file() or Path(path).suffix.lower() == ".parquet"  # Arrow-typed columns
    if typed and target_col and any(isinstance(row.values and row.values.get(target_col), dict) for row in rows):
        notes.append(
            f"{source}: the target column {target_col!r} is stored as a struct, so every row carries "
            "every key (absent ones as null) and each key has one number type (1 may read as 1.0); "
            "store targets as JSON strings to keep each row exactly as written."
        )
    return LoadResult(
        path=Path(path) if Path(path).exists() else source,
        records=records,
        skipped=skipped,
        notes=notes,
        columns=found,
        text_col=text_col,
        target_col=target_col,
        id_col=id_col,
    )


def _pick(
    source: str, columns: list[str], given: str | None, names: tuple[str, ...], kind: str, required: bool
) -> str | None:
    """The column for `kind`: the one given by flag, else the first of `names` present (any case)."""
    found = ", ".join(columns) or "(none)"
    if given is not None:
        if given not in columns:
            raise JsontuneError(f"{source} has no column {given!r} (given with --{kind}-col); columns found: {found}.")
        return given
    by_name = {}
    for column in reversed(columns):
        by_name[str(column).lower()] = column
    for name in names:
        if name in by_name:
            return by_name[name]
    if required:
        raise JsontuneError(
            f"{source} has no {kind} column (looked for {', '.join(names)}); "
            f"columns found: {found}; pass --{kind}-col NAME to choose one."
        )
    return None


def _to_record(
    row: _Row, index: int, text_col: str, target_col: str | None, id_col: str | None, require_target: bool
) -> Record:
    if row.problem or row.values is None:
        raise _BadRow(row.problem)
    text, target, rid = (_decoded(row.values.get(c)) if c else None for c in (text_col, target_col, id_col))
    for column, value in ((text_col, text), (target_col, target), (id_col, rid)):
        if _has_bad_bytes(value):
            raise _BadRow(
                f"column {column!r} holds bytes that are not UTF-8; re-save the file as UTF-8 "
                "(from Latin-1: iconv -f latin1 -t utf-8 FILE)"
            )
    if not isinstance(text, str) and not _is_missing(text):
        raise _BadRow(f"the text (column {text_col!r}) is a {_kind(text)}, not a string")
    if _is_missing(text):
        raise _BadRow(f"the text (column {text_col!r}) is empty")
    return Record(
        id=_id(rid, id_col) if id_col else str(index), text=text, target=_target(target, target_col, require_target)
    )


def _target(value: Any, column: str | None, require_target: bool) -> dict[str, Any] | None:
    if _is_missing(value):
        if require_target:
            raise _BadRow(f"the target (column {column!r}) is missing; training and eval need one on every row")
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise _BadRow(f"the target (column {column!r}) is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(value, dict):
        raise _BadRow(
            f"the target (column {column!r}) is a JSON {_kind(value)}, not an object like "
            '{"producto": ..., "cantidad": ...}'
        )
    if not _finite(value):
        raise _BadRow(f"the target (column {column!r}) holds NaN or Infinity, which JSON has no way to write")
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _id(value: Any, column: str | None) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 from a numeric column is the id "7"
    if _is_missing(value):
        raise _BadRow(f"the id (column {column!r}) is empty")
    return str(value)


def _decoded(value: Any) -> Any:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _has_bad_bytes(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_BAD_BYTES.search(value))
    if isinstance(value, dict):
        return any(_has_bad_bytes(k) or _has_bad_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_bad_bytes(v) for v in value)
    return False


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def _kind(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    names = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


# ---- readers: each returns the rows of one format, row-level problems attached, file problems raised


def _read_rows(path: str | os.PathLike) -> list[_Row]:
    p = Path(path)
    if not p.exists():
        if _HUB_ID.fullmatch(str(path)) and p.suffix.lower() not in _SUFFIXES:
            return _hub_rows(str(path))
        raise JsontuneError(f"{path} does not exist; check the path (a Hub dataset id looks like owner/name).")
    if p.is_dir():
        return _saved_dataset_rows(p)
    readers = {
        ".jsonl": _jsonl_rows,
        ".ndjson": _jsonl_rows,
        ".json": _json_rows,
        ".csv": _csv_rows,
        ".parquet": _parquet_rows,
    }
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise JsontuneError(
            f"{p} has an unknown format ({p.suffix or 'no extension'}); use .jsonl, .json, "
            ".csv, .parquet or a folder saved with datasets.save_to_disk."
        )
    return reader(p)


def _read_text(p: Path) -> str:
    return p.read_bytes().decode("utf-8-sig", "surrogateescape")


def _jsonl_rows(p: Path) -> list[_Row]:
    rows = []
    # split("\n"), not splitlines(): U+2028 and friends may sit unescaped inside JSON strings.
    for number, line in enumerate(_read_text(p).split("\n"), start=1):
        if line.strip():  # blank lines, such as a trailing one, hold no row
            rows.append(_object_row(f"line {number}", line))
    return rows


def _object_row(where: str, line: str) -> _Row:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        return _Row(where, None, f"the line is not valid JSON ({e.msg} at character {e.pos})")
    if not isinstance(value, dict):
        return _Row(where, None, f"the line is a JSON {_kind(value)}, not an object with named columns")
    return _Row(where, value)


def _json_rows(p: Path) -> list[_Row]:
    try:
        data = json.loads(_read_text(p))
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level values: JSON Lines under a .json name
            return _jsonl_rows(p)
        raise JsontuneError(
            f"{p} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "fix it or save one object per line as .jsonl."
        ) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else data  # {"data": [...]} wrappers
    if not isinstance(data, list):
        raise JsontuneError(
            f"{p} holds a JSON {_kind(data)}; it must be an array of objects, one per row (or JSON Lines)."
        )
    rows = []
    for number, item in enumerate(data, start=1):
        where = f"item {number} (1-based)"
        ok = isinstance(item, dict)
        rows.append(
            _Row(
                where,
                item if ok else None,
                None if ok else f"the item is a JSON {_kind(item)}, not an object with named columns",
            )
        )
    return rows


def _csv_rows(p: Path) -> list[_Row]:
    text = _read_text(p)
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for record in reader:
            where = f"row {len(rows) + 1} (1-based, after the header; line {reader.line_num} of the file)"
            values = {k: v for k, v in record.items() if k is not None}
            problem = None
            if None in record:
                fields = len(values) + len(record[None])
                problem = (
                    f"the row has {fields} fields but the header has {len(values)}; "
                    f"quote fields that contain {delimiter!r}"
                )
            rows.append(_Row(where, values, problem))
    except csv.Error as e:
        raise JsontuneError(
            f"{p} could not be read as CSV near line {reader.line_num} ({e}); check its quoting."
        ) from None
    return rows


def _parquet_rows(p: Path) -> list[_Row]:
    # pyarrow (which pandas uses for Parquet) hands back plain Python values, not numpy scalars.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise JsontuneError(f"{p} could not be read as Parquet ({e}); check that it is a Parquet file.") from None
    return [_Row(f"row {n} (1-based)", values) for n, values in enumerate(table.to_pylist(), start=1)]


def _saved_dataset_rows(folder: Path) -> list[_Row]:
    if not any((folder / name).exists() for name in ("state.json", "dataset_info.json", "dataset_dict.json")):
        raise JsontuneError(
            f"{folder} is a folder but not a dataset saved with datasets.save_to_disk; "
            "pass a .jsonl, .json, .csv or .parquet file instead."
        )
    import datasets

    data = datasets.load_from_disk(str(folder))
    if isinstance(data, datasets.DatasetDict):
        splits = list(data)
        raise JsontuneError(
            f"{folder} holds several splits ({', '.join(splits)}); pass one split's folder, "
            f"for example {folder / splits[0]}."
        )
    return [_Row(f"row {n} (1-based)", values) for n, values in enumerate(data.to_list(), start=1)]


def _hub_rows(name: str) -> list[_Row]:
    import datasets

    try:
        data = datasets.load_dataset(name, split="train")
    except Exception as e:  # the Hub fails in many ways (network, auth, no such dataset); all mean the same
        raise JsontuneError(
            f"{name} is not a local file or folder, and loading it as a Hugging Face Hub "
            f"dataset failed ({type(e).__name__}: {e}); check the path or the dataset id."
        ) from None
    return [_Row(f"row {n} (1-based)", values) for n, values in enumerate(data.to_list(), start=1)]
