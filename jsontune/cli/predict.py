"""`jsontune predict`: run a model over a file of texts and write a CSV of JSON predictions.

jsontune predict --model runs/merged --input data/test.jsonl --out runs/pred.csv --gold data/test.jsonl
jsontune predict --model Qwen/Qwen3-0.6B --lora runs/sft/best --input orders.csv --out pred.csv --engine vllm
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jsontune.cli.common import (
    CpusPerReplica,
    GpusPerReplica,
    RayAddress,
    Replicas,
    ReviewBelow,
    ReviewShare,
    console,
    engine_options,
    err_console,
    input_options,
    print_eval_report,
)
from jsontune.data import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.settings import EngineSettings

if TYPE_CHECKING:
    from jsontune.predict import PredictSummary


def _engine_name(engine: str, sequential: bool) -> str:
    from jsontune.serving.registry import resolve_engine

    if sequential and engine == "vllm":
        raise JsontuneError("--sequential is the HF one-at-a-time baseline; drop it or use --engine hf.")
    name = resolve_engine("hf" if sequential and engine == "auto" else engine)
    return "auto" if engine == "auto" and name == "vllm" else name  # Extractor.load picks by the job (auto_engine)


def _print_summary(summary: PredictSummary) -> None:
    from rich.table import Table

    from jsontune.predict import manifest_path
    from jsontune.serving.base import prefix_cache_line

    table = Table(
        title=f"predict on {summary.engine}{' --guided-json' if summary.guided else ''} → {summary.out}",
        caption="valid JSON: strict, as json.loads reads it; repaired: JSON only after repair (kept as the "
        "prediction, with valid_json false)",
    )
    # The engine is in the title: 80 columns hold the rest with no header cut short.
    columns = ("rows", "valid JSON", "repaired", "schema-valid", "cut", "examples/s", "tokens/s")
    for name in columns:
        table.add_column(name, justify="right")
    schema_valid = "—" if summary.schema_valid_rate is None else f"{summary.schema_valid_rate:.1%}"
    table.add_row(
        str(summary.rows),
        f"{summary.valid_json_rate:.1%}",
        f"{summary.repaired_rate:.1%}",
        schema_valid,
        str(summary.cut_by_length),
        f"{summary.examples_per_s:.2f}",
        f"{summary.output_tokens_per_s:.1f}",
    )
    console.print(table)
    if summary.cached_tokens is not None:  # vLLM's own count; HF keeps no prefix cache
        console.print(prefix_cache_line(summary.cached_tokens, summary.prompt_tokens), highlight=False)
    chosen = ", ".join(f"{k}={v}" for k, v in summary.engine_settings.items())
    console.print(f"engine settings: {chosen} (recorded in {manifest_path(summary.out)})", highlight=False)
    if summary.review:
        console.print(
            f"review queue: {summary.review['rows']} row(s), least confident first, in {summary.review['file']} "
            "(records `jsontune train` reads: correct their targets and add them to the training data)",
            highlight=False,
        )
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)
    if summary.thinking_leaks:
        console.print(
            f"{summary.thinking_leaks} row(s) hold a non-empty <think> block: the model reasons "
            "although the prompt switched thinking off.",
            highlight=False,
        )
    if summary.cut_by_length:
        console.print(
            f"{summary.cut_by_length} row(s) ran into --max-new-tokens and were cut; raise it if their "
            "JSON is incomplete.",
            highlight=False,
        )
    if summary.generated < summary.rows:
        console.print(f"{summary.rows - summary.generated} row(s) came from the unfinished run (--resume).")
    if summary.skipped:
        err_console.print(f"[yellow]skipped {len(summary.skipped)} bad input row(s)[/yellow]; the first:")
        for sentence in summary.skipped[:5]:
            err_console.print(f"  {sentence}", highlight=False)


@engine_options()
@input_options
def predict(
    model: Annotated[str, typer.Option(help="Model folder or Hub id (with --lora: the adapter's base).")],
    input: Annotated[Path, typer.Option(help="Texts: .jsonl/.json/.csv/.parquet or a saved dataset.")],
    out: Annotated[Path, typer.Option(help="CSV to write: id, prediction, valid_json, raw_output.")],
    engine: Annotated[
        str,
        typer.Option(
            help="auto (vLLM where it can run, but HF for a small CPU job where both engines compute in float32; "
            "else hf), vllm or hf."
        ),
    ] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens generated per row.")] = 64,
    lora: Annotated[str | None, typer.Option(help="PEFT adapter folder to serve on top of --model.")] = None,
    guided_json: Annotated[
        bool, typer.Option(help="vLLM: constrain decoding to a JSON schema (--schema, else inferred).")
    ] = False,
    schema: Annotated[Path | None, typer.Option(help="JSON schema file for --guided-json.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run; skip ids done.")] = False,
    gold: Annotated[Path | None, typer.Option(help="Gold records: also print eval's metrics.")] = None,
    chunk_size: Annotated[
        int | None, typer.Option(help="Rows saved per chunk for --resume (default: hf 256, vllm 4096).")
    ] = None,
    confidence: Annotated[
        bool, typer.Option(help="A confidence for every field (the model's token log-probs; CSV columns).")
    ] = True,
    review_below: ReviewBelow = None,
    review_share: ReviewShare = None,
    ray: RayAddress = None,
    replicas: Replicas = 1,
    gpus_per_replica: GpusPerReplica = None,
    cpus_per_replica: CpusPerReplica = None,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
    settings: EngineSettings = EngineSettings(),  # the engine flags (@engine_options)
) -> None:
    """Predict JSON for every row of --input and write --out (CSV, input order, written atomically).

    With --ray, the engine runs in --replicas replicas on a Ray cluster; the CSV, its order and --resume
    work as on one machine."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from jsontune.data import load_records
    from jsontune.predict import ReviewQueue
    from jsontune.predict import predict as run_predict
    from jsontune.serving.base import GenerationParams
    from jsontune.serving.ray_engine import RayOptions

    name = _engine_name(engine, settings.sequential)
    given = review_below is not None or review_share is not None
    review = ReviewQueue(review_below, review_share) if given else None
    ray_options = RayOptions.given(ray, replicas, gpus_per_replica, cpus_per_replica)
    # A bad --gold fails here, before the model loads.
    golds = load_records(gold, columns).records if gold else None
    bar_columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    progress_bar = Progress(
        "[progress.description]{task.description}", *bar_columns, console=err_console, transient=True
    )
    with progress_bar as bar:
        task = bar.add_task(f"predict ({name})", total=None)
        summary = run_predict(
            model,
            input,
            out,
            engine=name,
            params=GenerationParams(max_new_tokens=max_new_tokens, logprobs=confidence),
            settings=settings,
            lora=lora,
            guided_json=guided_json,
            schema=schema,
            columns=columns,
            chunk_size=chunk_size,
            resume=resume,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            ray=ray_options,
            review=review,
        )
    _print_summary(summary)
    if gold and golds is not None:  # the same numbers and tables as `jsontune eval OUT --gold GOLD`
        from jsontune.evaluation import evaluate

        print_eval_report(evaluate(out, gold, golds).metrics)
