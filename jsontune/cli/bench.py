"""`jsontune bench`: the same prompts through each engine, each in its own process; speedup and memory.

jsontune bench --model qwen3-0.6b -n 1000 --engines hf-seq,hf-batch,vllm
jsontune bench --model runs/merged --input data/test.jsonl --gold data/test.jsonl --natural -n 200
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import RayAddress, Replicas, console, engine_options, err_console, input_options
from jsontune.data import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.settings import EngineSettings


@engine_options()
@input_options
def bench(
    model: Annotated[
        str,
        typer.Option(help="Model folder or Hub id; `tiny` or `qwen3-0.6b` builds that random-weight preset."),
    ],
    input: Annotated[Path | None, typer.Option(help="Texts to bench (default: synthetic orders).")] = None,
    n: Annotated[int, typer.Option("-n", help="Prompts: the first N rows of --input, or N synthetic.")] = 1000,
    engines: Annotated[
        str,
        typer.Option(
            help="Comma-separated: hf-seq, hf-batch, vllm, vllm-guided (--natural: JSON schema); hf-batch+logprobs "
            "and vllm+logprobs also return token log-probs (the cost of field confidences)."
        ),
    ] = "hf-seq,hf-batch,vllm",
    max_new_tokens: Annotated[int, typer.Option(help="New tokens per prompt (exactly, unless --natural).")] = 64,
    fixed_length: Annotated[
        bool,
        typer.Option("--fixed-length/--natural", help="Force every output to --max-new-tokens, or stop at eos."),
    ] = True,
    out: Annotated[Path, typer.Option(help="Folder for bench.json, bench.md, bench.png.")] = Path("runs/bench"),
    repeats: Annotated[int, typer.Option(help="Timed runs per engine; the median is reported.")] = 3,
    warmup: Annotated[int, typer.Option(help="Prompts generated once before timing (not timed).")] = 4,
    seq_limit: Annotated[
        int | None, typer.Option(help="hf-seq: time only the first K prompts and scale to N (flagged).")
    ] = None,
    gold: Annotated[Path | None, typer.Option(help="Gold records (with --natural): F1 per engine.")] = None,
    timeout_s: Annotated[float, typer.Option(help="Seconds one engine may take before it is stopped.")] = 3600.0,
    models_dir: Annotated[Path, typer.Option(help="Where preset models are built and reused.")] = Path(
        "runs/bench-models"
    ),
    ray: RayAddress = None,
    replicas: Replicas = 1,
    columns: InputColumns = InputColumns(),  # the --text-col, ... flags (@input_options)
    settings: EngineSettings = EngineSettings(),  # the engine flags (@engine_options)
) -> None:
    """Time the same N prompts through each engine, each in its own process: load time, generation time
    (median of --repeats after a warm-up), examples/s, output tokens/s, speedup over hf-seq, peak memory,
    each engine's share of the device's roofline in its dtype (a GPU's from its datasheet; the CPU's product and
    copy rates measured at the start in each dtype the engines run in, a few seconds each), and its whole job
    (start included) against the fewest FLOPs the job needs, as run and for 1,000 rows. With --ray, each engine
    also runs on 1 and on --replicas
    Ray replicas (`predict --ray`), so the scaling is measured. Writes bench.json, bench.md and bench.png;
    the last line printed is one JSON object.
    """
    from jsontune.bench import report
    from jsontune.bench.config import BenchConfig
    from jsontune.bench.runner import run_bench

    config = BenchConfig(
        model=model,
        input=input,
        n=n,
        engines=tuple(e.strip() for e in engines.split(",") if e.strip()),
        max_new_tokens=max_new_tokens,
        fixed_length=fixed_length,
        repeats=repeats,
        warmup=warmup,
        seq_limit=seq_limit,
        gold=gold,
        timeout_s=timeout_s,
        out=out,
        models_dir=models_dir,
        ray=ray,
        replicas=replicas,
        settings=settings,
        columns=columns,
    )
    with err_console.status("bench: preparing the model and the prompts") as status:
        result = run_bench(config, on_engine=lambda name, i, total: status.update(f"bench {i}/{total}: {name}"))
    files = report.write_all(result, out)
    for table in report.rich_tables(result):
        console.print(table)
    for note in report.notes(result):
        console.print(note, highlight=False, markup=False)
    console.print(f"wrote {', '.join(str(p) for p in files.values())}", highlight=False, markup=False)
    print(json.dumps(report.summary_line(result, files)))  # plain print: rich would wrap it
    if not any(row.ok for row in result.rows):
        raise JsontuneError("no engine ran to the end; the reasons are in the table above and each engine's log.")
