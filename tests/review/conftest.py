"""Predictions made by hand, as `jsontune predict` writes them (the CSV, its manifest naming the input file),
so the review tests need no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsontune.io import file_sha256
from jsontune.parsing import find_json
from jsontune.predict import csv_row, manifest_path, write_csv

SCRIPT_TEXT = (
    'Mándenme 3 <b>tornillos</b> <script>window.ran = "script"</script> a 12 pesos '
    '<img src="none" onerror="window.ran = \'img\'">'
)

# id -> (text, the model's raw output, its field confidences or None)
ROWS = {
    "low": (
        "Necesito 100 unidades de producto A, precio 50 pesos",
        '{"producto": "A", "cantidad": 10, "precio_unitario": 50}',
        {"producto": 0.91, "cantidad": 0.12, "precio_unitario": 0.88},
    ),
    "mid": (
        "Quiero 7 baterías de 12V a 480 soles cada una",
        '{"producto": "baterías de 12V", "cantidad": 7, "precio_unitario": 480}',
        {"producto": 0.55, "cantidad": 0.97, "precio_unitario": 0.93},
    ),
    "none": ("hola, ¿tienen cemento?", "no entiendo", None),
    "repaired": (
        "Mándame 20 sacos de cemento a 9,50",
        "{'producto': 'sacos de cemento', 'cantidad': 20, 'precio_unitario': 9.5}",
        {"producto": None, "cantidad": None, "precio_unitario": None},
    ),
    "script": (
        SCRIPT_TEXT,
        '{"producto": "<b>tornillos</b>", "cantidad": 3, "precio_unitario": 12}',
        {"producto": 0.7, "cantidad": 0.96, "precio_unitario": 0.95},
    ),
    **{
        f"sure-{n}": (
            f"Envíen {n + 2} cajas de guantes de nitrilo a {n + 20} dólares",
            f'{{"producto": "guantes de nitrilo", "cantidad": {n + 2}, "precio_unitario": {n + 20}}}',
            {"producto": 0.99, "cantidad": 0.98 - n / 100, "precio_unitario": 0.99},
        )
        for n in range(8)
    },
}


def write_predictions(folder: Path, rows: dict = ROWS, review: dict | None = None) -> Path:
    """folder/orders.jsonl (the texts), folder/pred.csv (predict's CSV with confidences) and its manifest;
    returns the CSV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "orders.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, (t, _, _) in rows.items())
    )
    table = []
    for row_id, (_, raw, confidence) in rows.items():
        known = [c for c in (confidence or {}).values() if c is not None]
        done = {"id": row_id, "raw_output": raw, "confidence": confidence, "min_confidence": min(known, default=None)}
        table.append(csv_row(done, find_json(raw)))
    pred = folder / "pred.csv"
    write_csv(pred, table)
    input_file = {"path": str(source.resolve()), "sha256": file_sha256(source), "text_col": "text", "id_col": "id"}
    manifest_path(pred).write_text(json.dumps({"kind": "predictions", "input": input_file, "review": review}))
    return pred


@pytest.fixture
def pred(tmp_path):
    """Predictions whose queue takes the rows with a field below 0.8 (none, repaired, low, mid, script)."""
    return write_predictions(tmp_path / "run", review={"below": 0.8, "share": None})
