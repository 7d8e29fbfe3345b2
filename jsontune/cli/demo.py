"""`jsontune demo`: the whole pipeline on a tiny local model and synthetic data, as a user would type it.

    jsontune demo --out runs/demo        # what `make demo` runs: CPU, offline, a few minutes

Each step is the real CLI verb, run in this process and echoed as the command line it stands for.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.rule import Rule
from rich.table import Table

from jsontune.cli.common import console
from jsontune.errors import JsontuneError
from jsontune.manifest import read_manifest

CHECKOUT = Path(__file__).resolve().parents[2]
RECIPE = CHECKOUT / "configs" / "tiny-cpu.yaml"
REVIEW_GAIN = CHECKOUT / "scripts" / "review_gain.py"


def _steps(out: Path, n: int, bench_n: int, engine: str, pretrain_steps: int, instruction: bool) -> list[list[str]]:
    data, run, merged = out / "data", out / "run", out / "merged"
    test = str(data / "test.jsonl")
    # The text alone by default: the demo's model scored as well without the instruction and a 0.6B model ran 8-9 %
    # faster on vLLM (docs/BENCHMARKS.md, "The prefix cache on a CPU").
    prompt = [] if instruction else ["--instruction", "none"]
    return [
        ["data", "synth", "--n", str(n), "--out", str(data), "--seed", "0"],
        [
            "init-model",
            "--preset",
            "tiny",
            "--out",
            str(out / "tiny"),
            "--seed",
            "0",
            "--pretrain-steps",
            str(pretrain_steps),
        ],
        [
            "train",
            "--config",
            str(RECIPE),
            "--model",
            str(out / "tiny"),
            "--train",
            str(data / "train.jsonl"),
            "--val",
            str(data / "val.jsonl"),
            "--out",
            str(run),
            *prompt,
        ],
        ["merge", str(run), "--out", str(merged)],
        ["predict", "--model", str(merged), "--input", test, "--out", str(out / "predictions.csv"), "--engine", engine],
        ["eval", str(out / "predictions.csv"), "--gold", test],
        [
            "bench",
            "--model",
            str(merged),
            "--input",
            test,
            "-n",
            str(bench_n),
            "--engines",
            "hf-seq,hf-batch,vllm",
            "--max-new-tokens",
            "32",
            "--repeats",
            "1",
            "--out",
            str(out / "bench"),
        ],
    ]


def _run_step(jsontune: click.Command, args: list[str]) -> float:
    """Run one verb through the `jsontune` command, as the user would type it; its wall time in seconds."""
    console.print(Rule(f"$ jsontune {' '.join(args)}", align="left", style="cyan"))
    start = time.perf_counter()
    code = jsontune.main(args, prog_name="jsontune", standalone_mode=False)
    if code not in (None, 0):
        raise JsontuneError(f"demo step `jsontune {' '.join(args)}` failed (exit code {code}); see above.")
    seconds = time.perf_counter() - start
    console.print(f"[dim]({seconds:.1f} s)[/dim]")
    return seconds


def _review_gain_args(out: Path, n: int) -> list[str]:
    """scripts/review_gain.py --quick on the demo's own base, data and first run: a pool of 0.4 x --n unlabeled
    orders (400 for the demo's 1000), of which 0.05 x --n (50) are corrected, least confident first or at random."""
    pool, corrected = max(2, round(0.4 * n)), max(1, round(0.05 * n))
    return [
        "--quick",
        "--out",
        str(out / "review_gain"),
        "--base",
        str(out / "tiny"),
        "--data",
        str(out / "data"),
        "--first",
        str(out / "run"),
        "--pool",
        str(pool),
        "--n",
        str(corrected),
    ]


def script_module(script: Path) -> Any:
    """A script of the checkout (not a package module), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(script: Path, args: list[str]) -> float:
    """Run a script of the checkout in this process, echoed as the command it stands for; its wall time."""
    console.print(Rule(f"$ python {script.relative_to(CHECKOUT)} {' '.join(args)}", align="left", style="cyan"))
    start = time.perf_counter()
    script_module(script).main(args)
    seconds = time.perf_counter() - start
    console.print(f"[dim]({seconds:.1f} s)[/dim]")
    return seconds


def _review_gain_rows(out: Path) -> list[tuple[str, str]]:
    """The summary's rows on the simulated review (scripts/review_gain.py --quick): the test F1 of the adapter
    trained again with N corrected pool rows, least confident first against at random."""
    path = out / "review_gain" / "review_gain.json"
    if not path.is_file():
        return []
    found = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for row in found["rows"]:
        if row["n"] == 0 and row["strategy"] == "least confident":
            rows.append((f"simulated review of {found['pool']} pool rows: test F1 before", f"{row['f1_mean']:.3f}"))
        elif row["n"]:
            label = f"  {row['n']} {row['strategy']} rows corrected, retrained"
            rows.append((label, f"{row['f1_mean']:.3f} ({row['fixed_rows_mean']:.0f} needed a fix)"))
    return rows


def _test_scores(out: Path) -> dict:
    """eval's metrics of the demo's predictions; with confidences, what a review of the least confident
    REVIEW_SHARE of the rows would catch too (`jsontune eval --review-share 0.2`)."""
    from jsontune.evaluation import evaluate, read_confidences

    pred, gold = out / "predictions.csv", out / "data" / "test.jsonl"
    share = REVIEW_SHARE if read_confidences(pred) is not None else None
    return evaluate(pred, gold, review_share=share).metrics


def _timings(steps: list[list[str]], seconds: list[float]) -> Table:
    """Where the demo's time went, step by step."""
    table = Table(title=f"where the time went ({sum(seconds) / 60:.1f} min)")
    for name, justify in (("step", "left"), ("seconds", "right"), ("share", "right")):
        table.add_column(name, justify=justify)
    for args, s in zip(steps, seconds, strict=True):
        verb = " ".join(args[:2]) if args[0] == "data" else args[0]
        table.add_row(verb, f"{s:.1f}", f"{s / sum(seconds):.0%}")
    return table


REVIEW_SHARE = 0.2  # the least confident fifth of the rows: a queue a person could check by hand


def _confidence_rows(calibration: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's rows on how far the test set's field confidences can be trusted: eval's AUROC, its
    auto-accept coverage at 95 % precision, and what `--review-share 0.2`'s queue would catch."""
    overall, review = calibration["overall"], calibration["review"]
    accept = overall["auto_accept"]["0.95"]
    auroc = "n/a (one class)" if overall["auroc"] is None else f"{overall['auroc']:.3f}"
    covered = "none" if accept["threshold"] is None else f"{accept['coverage']:.0%} (conf >= {accept['threshold']:.3f})"
    caught = f"{review['caught_fields']} of {review['wrong_fields']}"
    if review["wrong_fields"]:
        caught += f" ({review['caught_fields'] / review['wrong_fields']:.0%})"
    return [
        ("test confidence AUROC (right vs wrong fields)", auroc),
        ("test fields auto-accepted at 95% precision", covered),
        (f"test wrong fields in the least confident {REVIEW_SHARE:.0%} of rows", caught),
    ]


def _summary(out: Path, seconds: float) -> Table:
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_f1" in r]
    test = _test_scores(out)
    bench = {r["engine"]: r for r in json.loads((out / "bench" / "bench.json").read_text())["rows"]}
    table = Table(title=f"jsontune demo ({seconds / 60:.1f} min)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("val F1 before training (step 0)", f"{evals[0]['eval_f1']:.3f}")
    best = read_manifest(out / "run" / "best")
    table.add_row(f"val F1 best adapter (step {best['step']})", f"{best['eval_f1']:.3f}")
    predicted = json.loads((out / "predictions.csv.manifest.json").read_text())
    table.add_row("test F1 (merged model)", f"{test['f1']:.3f}")
    for field, scores in test["per_field"].items():
        if scores["support"]:  # a gold field, not a key the model invented
            table.add_row(f"  test F1 {field}", f"{scores['f1']:.3f}")
    table.add_row("predict engine", f"{predicted['engine']} ({predicted['engine_settings'].get('device')})")
    table.add_row("test exact match / valid JSON", f"{test['exact_match']:.3f} / {test['json_valid_rate']:.3f}")
    if "calibration" in test:  # predict wrote confidences (not with --no-confidence)
        for name, value in _confidence_rows(test["calibration"]):
            table.add_row(name, value)
    for name, row in bench.items():
        if row.get("status") == "ok":
            table.add_row(
                f"bench {name}: output tok/s (speedup)",
                f"{row['output_tokens_per_s']:.0f} ({row.get('speedup') or 0:.1f}x)",
            )
    for name, value in _review_gain_rows(out):
        table.add_row(name, value)
    return table


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for everything the demo makes.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option(help="Synthetic orders to generate (80/10/10 split).")] = 1000,
    bench_n: Annotated[int, typer.Option(help="Prompts in the closing bench.")] = 48,
    engine: Annotated[
        str,
        typer.Option(
            help="Predict engine: auto is vLLM where it can run (the demo shows it, though `predict --engine auto` "
            "would take HF for a job this small), else HF."
        ),
    ] = "auto",
    pretrain_steps: Annotated[
        int, typer.Option(help="Warm-start steps for the tiny base (a stand-in for pretraining; 0: random).")
    ] = 800,
    simulated_review: Annotated[
        bool,
        typer.Option(
            help="Close with scripts/review_gain.py --quick: correct the least confident and random pool rows "
            "by their gold labels, train again on each, compare test F1 (two more trainings)."
        ),
    ] = True,
    instruction: Annotated[
        bool,
        typer.Option(
            help="Train with the recipe's instruction before each text (default: the text alone, "
            "train --instruction none: as good on the demo's model, and shorter prompts)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete --out first if it exists.")] = False,
) -> None:
    """Run data synth -> init-model -> train -> merge -> predict -> eval -> bench on a tiny local model, then a
    simulated review, and print the `jsontune review` command for a person to review its answers."""
    for needed in (RECIPE, REVIEW_GAIN) if simulated_review else (RECIPE,):
        if not needed.is_file():
            raise JsontuneError(
                f"the demo's {needed.name} is missing at {needed}; run the demo from a jsontune checkout."
            )
    if out.exists() and any(out.iterdir()):
        if not force:
            raise JsontuneError(f"{out} already exists; pass --force to start the demo over, or pick another --out.")
        shutil.rmtree(out)
    start = time.perf_counter()
    from jsontune.serving.registry import resolve_engine

    steps = _steps(out, n, bench_n, resolve_engine(engine), pretrain_steps, instruction)
    jsontune = ctx.find_root().command  # the app that called this verb: no import of cli/app.py, no cycle
    seconds = [_run_step(jsontune, args) for args in steps]
    if simulated_review:
        args = _review_gain_args(out, n)
        seconds.append(_run_script(REVIEW_GAIN, args))
        steps.append([REVIEW_GAIN.name, *args])
    console.print(_timings(steps, seconds))
    console.print(_summary(out, time.perf_counter() - start))
    console.print(
        "Review the least confident answers yourself (a page on 127.0.0.1; the corrections train the next model):\n"
        f"  jsontune review {out / 'predictions.csv'}",
        highlight=False,
        soft_wrap=True,  # a command to copy stays on one line
    )
