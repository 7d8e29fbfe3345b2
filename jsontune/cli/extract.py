"""`jsontune extract`: send texts to a served model (`jsontune serve`) and get JSON back.

jsontune extract --url http://127.0.0.1:8000 "Necesito 100 tornillos a 50 pesos"
jsontune extract --url http://127.0.0.1:8000 --input orders.jsonl --out pred.csv --concurrency 32
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import IdCol, SkipBadRows, TargetCol, TextCol, err_console
from jsontune.errors import JsontuneError


def extract(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to extract from (or --input FILE).")] = None,
    url: Annotated[str, typer.Option(help="The server: http://HOST:PORT (as `jsontune serve` prints it).")] = "",
    input: Annotated[Path | None, typer.Option(help="Texts: .jsonl/.json/.csv/.parquet (with --out).")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV to write, as predict writes it (with --input).")] = None,
    model: Annotated[
        Path | None, typer.Option(help="The served checkpoint or adapter folder, for its prompt format and schema.")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="The served model to ask (default: the adapter, else the model).")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="The server's --api-key (default: $JSONTUNE_API_KEY).")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens generated per text.")] = 64,
    schema: Annotated[Path | None, typer.Option(help="JSON schema for response_format (default: inferred).")] = None,
    guided: Annotated[bool, typer.Option("--guided/--free", help="Send the JSON schema as response_format.")] = True,
    timeout_s: Annotated[float, typer.Option(help="Seconds one request may take (per try).")] = 120.0,
    retries: Annotated[int, typer.Option(help="Retries of a request on connection errors, timeouts and 5xx.")] = 3,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted --input run; skip ids done.")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="Rows saved per chunk for --resume.")] = None,
    text_col: TextCol = None,
    target_col: TargetCol = None,
    id_col: IdCol = None,
    skip_bad_rows: SkipBadRows = False,
) -> None:
    """Extract JSON through a served model: TEXT... prints one JSON object per line (null: none), and
    --input FILE --out FILE.csv writes predict's CSV (resumable)."""
    from jsontune.parsing import extract_json
    from jsontune.serving.base import GenerationParams
    from jsontune.serving.client import connect

    if not url:
        raise JsontuneError("--url is required: the server's address, as `jsontune serve` prints it.")
    if bool(input) != bool(out) or bool(input) == bool(texts):
        raise JsontuneError("give either TEXT... or --input FILE with --out FILE.csv.")
    client = {"model_name": model_name, "api_key": api_key, "concurrency": concurrency}
    engine, known = connect(url, model, schema, guided, timeout_s=timeout_s, retries=retries, **client)
    params = GenerationParams(max_new_tokens=max_new_tokens, json_schema=known)
    if guided and known is None:
        err_console.print("[yellow]note:[/yellow] no JSON schema known (give --model or --schema): decoding is free.")
    try:
        if texts:
            for generation in engine.generate(list(texts), params):
                print(json.dumps(extract_json(generation.text), ensure_ascii=False))
            return
        _extract_file(engine, params, input, out, resume, chunk_size, text_col, target_col, id_col, skip_bad_rows)
    finally:
        engine.close()


def _extract_file(engine, params, input, out, resume, chunk_size, text_col, target_col, id_col, skip_bad_rows) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from jsontune.cli.common import console, print_load_report
    from jsontune.data import load_records
    from jsontune.predict import run_predictions

    loaded = load_records(
        input,
        require_target=False,
        skip_bad_rows=skip_bad_rows,
        text_col=text_col,
        target_col=target_col,
        id_col=id_col,
    )
    print_load_report(loaded, "skipped input row")
    records = loaded.records
    bar = Progress(
        "extract", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True
    )
    with bar:
        task = bar.add_task("extract", total=len(records))
        summary = run_predictions(
            engine,
            records,
            [r.text for r in records],
            out,
            params,
            chunk_size=chunk_size or 256,
            resume=resume,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            settings={"url": engine.url, "model": engine.model_name, "engine": "server"},
            schema=params.json_schema,
        )
    rate = f"{summary.valid_json_rate:.1%}"
    console.print(f"wrote {summary.out}: {summary.rows} rows, valid JSON {rate}, {summary.examples_per_s:.1f} rows/s")
