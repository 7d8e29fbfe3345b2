"""`jsontune extract`: send texts to a served model (`jsontune serve`) and get JSON back.

jsontune extract --url http://127.0.0.1:8000 "Necesito 100 tornillos a 50 pesos"
jsontune extract --url http://127.0.0.1:8000 --input orders.jsonl --out pred.csv --concurrency 32
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import console, err_console, input_options, options_from, print_load_report
from jsontune.data import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.client import ServerClient


@options_from(ServerClient, "client")
@input_options
def extract(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to extract from (or --input FILE).")] = None,
    url: Annotated[str, typer.Option(help="The server: http://HOST:PORT (as `jsontune serve` prints it).")] = "",
    input: Annotated[Path | None, typer.Option(help="Texts: .jsonl/.json/.csv/.parquet (with --out).")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV to write, as predict writes it (with --input).")] = None,
    model: Annotated[
        Path | None, typer.Option(help="The served checkpoint or adapter folder, for its prompt format and schema.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens generated per text.")] = 64,
    confidence: Annotated[
        bool, typer.Option(help="A confidence for every field (TEXT: printed after a tab; the CSV's columns).")
    ] = True,
    schema: Annotated[Path | None, typer.Option(help="JSON schema for response_format (default: inferred).")] = None,
    guided: Annotated[bool, typer.Option("--guided/--free", help="Send the JSON schema as response_format.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted --input run; skip ids done.")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="Rows saved per chunk for --resume.")] = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
    client: ServerClient = ServerClient(),  # --api-key, --concurrency, ... (@options_from)
) -> None:
    """Extract JSON through a served model: TEXT... prints one JSON object per line (null: none), and
    --input FILE --out FILE.csv writes predict's CSV (resumable)."""
    from jsontune.extractor import Extractor
    from jsontune.serving.base import GenerationParams

    if not url:
        raise JsontuneError("--url is required: the server's address, as `jsontune serve` prints it.")
    if bool(input) != bool(out) or bool(input) == bool(texts):
        raise JsontuneError("give either TEXT... or --input FILE with --out FILE.csv.")
    params = GenerationParams(max_new_tokens=max_new_tokens, logprobs=confidence)
    with Extractor.connect(url, model=model, schema=schema, guided=guided, params=params, client=client) as extractor:
        if guided and extractor.params.json_schema is None:
            err_console.print(
                "[yellow]note:[/yellow] no JSON schema known (give --model or --schema): decoding is free."
            )
        if texts:
            for extraction in extractor.extract_records(list(texts)):
                line = json.dumps(extraction.prediction, ensure_ascii=False)
                if extraction.confidence is not None:  # beside the JSON, so that the line's first field stays it
                    line += "\t" + json.dumps(extraction.confidence, ensure_ascii=False)
                print(line)
            return
        _extract_file(extractor, input, out, resume, chunk_size, columns)


def _extract_file(extractor, input, out, resume, chunk_size, columns) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from jsontune.data import load_records
    from jsontune.predict import check_out, predict_with
    from jsontune.serving.base import prefix_cache_line

    check_out(out, chunk_size)
    loaded = load_records(input, columns, require_target=False)
    print_load_report(loaded, "skipped input row")
    bar = Progress(
        "extract", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True
    )
    with bar:
        task = bar.add_task("extract", total=len(loaded.records))
        summary = predict_with(
            extractor,
            loaded,
            out,
            chunk_size=chunk_size,
            resume=resume,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    rates = f"valid JSON {summary.valid_json_rate:.1%}, repaired {summary.repaired_rate:.1%}"
    cache = ""
    if summary.cached_tokens is not None:  # the server's own count (`jsontune serve` asks vLLM for it)
        cache = "; " + prefix_cache_line(summary.cached_tokens, summary.prompt_tokens)
    console.print(f"wrote {summary.out}: {summary.rows} rows, {rates}, {summary.examples_per_s:.1f} rows/s{cache}")
