"""Does reviewing the least confident rows first pay? Correct N rows of a pool, train the next adapter, compare test F1.

    .venv/bin/python scripts/review_gain.py --out runs/review_gain --threads 1 --png docs/review_gain.png
    .venv/bin/python scripts/review_gain.py --out runs/review_quick --quick          # one N, one seed: a few minutes

The first line made docs/review_gain.png. It ran on one torch thread: on a 2-core CPU shared with other jobs, two
threads wait on each other (a small matmul loop ran 4 times slower on two than on one, side by side); on an idle
machine leave --threads out.

The demo's setting: its synthetic orders (`data synth --n 1000 --seed 0`: 800 train, 100 val, 100 test), its tiny
base warm-started for 800 steps and its recipe (configs/tiny-cpu.yaml). For each seed S, the first adapter is
trained on the training rows (seed S) and predicts, with field confidences, a pool of unlabeled orders (another
synthetic draw; no text of it is in the demo's data). A simulated reviewer, the gold labels, corrects N pool rows:
the N the review page shows first (`jsontune.review.queue`: no answer or a repaired one first, then the lowest
field confidence) or N drawn at random. The next adapter is trained as the first was on the training rows plus
those corrections (`jsontune train --train train.jsonl --train corrections.jsonl`) and predicts the test set
(HF, float32). N = 0 is the first adapter. The sets are nested: the 25 least confident rows are in the 50.

Prints each step, then a table of test F1 by N and strategy (mean and min-max over seeds) and, as its last line,
one JSON document; writes OUT/review_gain.json, OUT/review_gain.md and OUT/review_gain.png (and --png). A rerun
with the same --out keeps every finished step. --base, --data and --first reuse a warm-started base, the data and
a first run (the demo passes its own: `jsontune demo` prints its quick figure).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from jsontune.io import write_json_atomic, write_jsonl_atomic, write_text_atomic

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
STRATEGIES = ("least confident", "random")
MAX_NEW_TOKENS = 64
FULL = {"n": [0, 25, 50, 100], "seeds": [42, 43, 44, 45], "pool": 400}
QUICK = {"n": [0, 50], "seeds": [42], "pool": 400}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_data(out: Path, given: Path | None) -> Path:
    """train/val/test.jsonl: the folder given, else the demo's synthetic split made in OUT/data."""
    from jsontune.data.synth import write_splits

    folder = given or out / "data"
    if not (folder / "test.jsonl").is_file():
        log(f"data synth --n 1000 --seed 0 -> {folder}")
        write_splits(1000, folder, seed=0)
    return folder


def prepare_base(out: Path, given: Path | None) -> Path:
    """The tiny base warm-started as the demo's (800 steps, seed 0): the folder given, else made once in OUT/base."""
    from jsontune.offline import init_model

    if given:
        return given
    base = out / "base"
    if not (base / "config.json").is_file():
        log(f"init-model --preset tiny --seed 0 --pretrain-steps 800 -> {base}")
        shutil.rmtree(base, ignore_errors=True)
        init_model("tiny", base, seed=0, pretrain_steps=800)
    return base


def make_pool(data: Path, path: Path, size: int, seed: int) -> list:
    """`size` synthetic orders of another draw than the demo's (seed 1000 + S), none with a text the demo's data
    holds, with ids of their own (pool-...) so that no correction replaces a training row."""
    from jsontune.data import Record, load_records
    from jsontune.data.synth import generate_orders

    if path.is_file():
        return load_records(path).records
    seen = {r.text for split in ("train", "val", "test") for r in load_records(data / f"{split}.jsonl").records}
    fresh = [r for r in generate_orders(size + len(seen), seed=1000 + seed) if r.text not in seen][:size]
    pool = [Record(f"pool-{i:06d}", r.text, r.target) for i, r in enumerate(fresh, 1)]
    write_jsonl_atomic(path, [r.to_dict() for r in pool])
    return pool


def train_run(
    base: Path,
    train_files: list[Path],
    data: Path,
    run: Path,
    seed: int,
    max_steps: int | None,
    instruction: str | None,
) -> Path:
    """The recipe's training on `train_files` (seed `seed`; `max_steps`: a smoke run; `instruction`: train's
    --instruction, None for the recipe's) into `run`; its best adapter (by val F1)."""
    from jsontune.training.recipe import build_config
    from jsontune.training.sft import train

    if (run / "best" / "adapter_config.json").is_file() and (run / "last").is_dir():
        return run / "best"
    shutil.rmtree(run, ignore_errors=True)  # a run cut short starts over: its result decides nothing yet
    cfg = build_config(
        RECIPE,
        model=str(base),
        train=[str(f) for f in train_files],
        val=str(data / "val.jsonl"),
        out=str(run),
        seed=seed,
        max_steps=max_steps,
        instruction=instruction,
    )
    start = time.perf_counter()

    def show(event: dict[str, Any]) -> None:
        if "eval_f1" in event:
            print(f"    step {event['step']} val F1 {event['eval_f1']:.3f}", flush=True)
        elif "note" in event:
            print(f"    note: {event['note']}", flush=True)

    summary = train(cfg, on_event=show)
    log(f"  trained {summary.steps} steps on {summary.train_rows} rows in {time.perf_counter() - start:.0f} s")
    return run / "best"


def predict_file(base: Path, adapter: Path, records: Path, out: Path, confidence: bool) -> Path:
    """`jsontune predict --engine hf --dtype float32 --lora ADAPTER` of `records` into `out` (kept if there)."""
    from jsontune.predict import predict
    from jsontune.serving.base import GenerationParams
    from jsontune.serving.settings import EngineSettings

    if not out.is_file():
        params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS, logprobs=confidence)
        settings = EngineSettings(dtype="float32")
        predict(str(base), records, out, engine="hf", params=params, settings=settings, lora=str(adapter))
    return out


def f1_on_test(base: Path, adapter: Path, data: Path, out: Path) -> float:
    from jsontune.evaluation import evaluate

    predicted = predict_file(base, adapter, data / "test.jsonl", out, confidence=False)
    return evaluate(predicted, data / "test.jsonl").metrics["f1"]


def review_order(pool_csv: Path) -> list[int]:
    """The pool's rows in the review page's order (`jsontune review`: no threshold, no audit rows)."""
    from jsontune.confidence import row_confidence
    from jsontune.evaluation import read_confidences, read_predictions
    from jsontune.review.queue import plan

    answers, repaired = read_predictions(pool_csv)
    confidences = read_confidences(pool_csv) or {}
    lowest = [
        row_confidence(confidences[i]) if answer is not None and i not in repaired and confidences.get(i) else None
        for i, answer in answers.items()
    ]
    return plan(lowest, None, None, 0.0, seed=0).order


def needed_fixes(pool_csv: Path, corrected: list) -> int:
    """How many of the corrected rows the reviewer had to change (the model's answer was not exactly right)."""
    from jsontune.evaluation import read_predictions
    from jsontune.metrics import score

    answers, _ = read_predictions(pool_csv)
    if not corrected:
        return 0
    exact = score([answers[r.id] for r in corrected], [r.target for r in corrected])["exact_match"]
    return round((1 - exact) * len(corrected))


def run_seed(args: argparse.Namespace, base: Path, data: Path, seed: int) -> list[dict[str, Any]]:
    """Every (strategy, N) cell of one seed, each kept in OUT/seed-S/STRATEGY-N/result.json once done."""
    folder = args.out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    pool = make_pool(data, folder / "pool.jsonl", args.pool, seed)
    if args.first:
        first = args.first / "best"
        log(f"seed {seed}: the first adapter is {first}")
    else:
        log(f"seed {seed}: training the first adapter on {data / 'train.jsonl'}")
        first = train_run(base, [data / "train.jsonl"], data, folder / "first", seed, args.max_steps, args.instruction)
    log(f"seed {seed}: the first adapter predicts the pool ({len(pool)} rows) and the test set")
    pool_csv = predict_file(base, first, folder / "pool.jsonl", folder / "pool.csv", confidence=True)
    f1_first = f1_on_test(base, first, data, folder / "first-test.csv")
    log(f"seed {seed}: N=0 test F1 {f1_first:.3f}")
    orders = {
        "least confident": review_order(pool_csv),
        "random": random.Random(seed).sample(range(len(pool)), len(pool)),
    }
    results = [{"seed": seed, "strategy": s, "n": 0, "test_f1": f1_first, "fixed_rows": 0} for s in STRATEGIES]
    for n in sorted(k for k in args.n if k > 0):
        for strategy in STRATEGIES:
            results.append(
                run_cell(args, base, data, folder, seed, strategy, n, [pool[i] for i in orders[strategy][:n]])
            )
    return results


def run_cell(args, base: Path, data: Path, folder: Path, seed: int, strategy: str, n: int, corrected: list) -> dict:
    cell = folder / f"{strategy.replace(' ', '-')}-{n}"
    done = cell / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        log(f"seed {seed} {strategy} N={n}: kept, test F1 {result['test_f1']:.3f}")
        return result
    cell.mkdir(parents=True, exist_ok=True)
    corrections = cell / "corrections.jsonl"
    write_jsonl_atomic(corrections, [r.to_dict() for r in corrected])  # the reviewer's answer is the gold one
    fixed = needed_fixes(folder / "pool.csv", corrected)
    log(f"seed {seed} {strategy} N={n}: {fixed} of the {n} rows needed a fix; training the next adapter")
    adapter = train_run(
        base, [data / "train.jsonl", corrections], data, cell / "run", seed, args.max_steps, args.instruction
    )
    f1 = f1_on_test(base, adapter, data, cell / "test.csv")
    log(f"seed {seed} {strategy} N={n}: test F1 {f1:.3f}")
    result = {"seed": seed, "strategy": strategy, "n": n, "test_f1": f1, "fixed_rows": fixed}
    write_json_atomic(done, result)
    return result


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N, strategy): test F1 mean, min and max over seeds, the rows that needed a fix, and test F1
    minus the other strategy's with the same seed and N (mean, min, max): the seeds' spread cancels there."""
    f1 = {(r["n"], r["strategy"], r["seed"]): r["test_f1"] for r in results}
    rows = []
    for n in sorted({r["n"] for r in results}):
        for strategy, other in zip(STRATEGIES, reversed(STRATEGIES), strict=True):
            cell = [r for r in results if r["n"] == n and r["strategy"] == strategy]
            scores = [r["test_f1"] for r in cell]
            paired = [f1[n, strategy, r["seed"]] - f1[n, other, r["seed"]] for r in cell]
            rows.append(
                {
                    "n": n,
                    "strategy": strategy,
                    "seeds": len(cell),
                    "f1_mean": statistics.mean(scores),
                    "f1_min": min(scores),
                    "f1_max": max(scores),
                    "fixed_rows_mean": statistics.mean(r["fixed_rows"] for r in cell),
                    "minus_other": [statistics.mean(paired), min(paired), max(paired)],
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in results})
    head = "| N corrected | strategy | rows that needed a fix | test F1 mean | min-max | " + " | ".join(
        f"seed {s}" for s in seeds
    )
    head += " | least confident minus random, same seed: mean (min, max)"
    lines = [head + " |", "|" + "---|" * (6 + len(seeds))]
    for row in rows:
        if row["n"] == 0 and row["strategy"] != STRATEGIES[0]:
            continue  # N = 0 is the first adapter, the same for both
        by_seed = {r["seed"]: r["test_f1"] for r in results if r["n"] == row["n"] and r["strategy"] == row["strategy"]}
        strategy = "(first adapter)" if row["n"] == 0 else row["strategy"]
        fixed = "-" if row["n"] == 0 else f"{row['fixed_rows_mean']:.1f} of {row['n']}"
        mean, low, high = row["minus_other"]
        paired = f"{mean:+.3f} ({low:+.3f}, {high:+.3f})" if row["n"] and row["strategy"] == STRATEGIES[0] else ""
        lines.append(
            f"| {row['n']} | {strategy} | {fixed} | {row['f1_mean']:.3f} | {row['f1_min']:.3f}-{row['f1_max']:.3f} | "
            + " | ".join(f"{by_seed[s]:.3f}" for s in seeds)
            + f" | {paired} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for strategy, color in zip(STRATEGIES, ("tab:red", "tab:gray"), strict=True):
        points = [r for r in rows if r["strategy"] == strategy]
        ns = [r["n"] for r in points]
        ax.plot(ns, [r["f1_mean"] for r in points], marker="o", color=color, label=f"{strategy} (mean)")
        ax.fill_between(ns, [r["f1_min"] for r in points], [r["f1_max"] for r in points], color=color, alpha=0.2)
    ax.set_xlabel("pool rows corrected (N)")
    ax.set_ylabel("test F1 of the next adapter")
    ax.set_title(title, fontsize=10)
    ax.legend(title="rows corrected: band = min-max over seeds", fontsize=8, title_fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for every run, CSV and the results.")
    parser.add_argument("--n", help=f"Pool rows to correct, comma-separated (default {FULL['n']}).")
    parser.add_argument("--seeds", help=f"Training seeds, comma-separated (default {FULL['seeds']}).")
    parser.add_argument("--pool", type=int, help=f"Unlabeled rows the first adapter predicts (default {FULL['pool']}).")
    parser.add_argument("--quick", action="store_true", help=f"One N and one seed: {QUICK['n'][1]}, {QUICK['seeds']}.")
    parser.add_argument("--base", type=Path, help="A warm-started tiny base to reuse (else made in OUT/base).")
    parser.add_argument("--data", type=Path, help="A folder with the demo's train/val/test.jsonl (else made).")
    parser.add_argument("--first", type=Path, help="A trained first run to reuse (one seed: its own).")
    parser.add_argument("--max-steps", type=int, help="Train each adapter for at most N steps (a smoke run).")
    parser.add_argument(
        "--instruction",
        help="train's --instruction for every adapter (default: the recipe's; with --first, the first run's).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's; on a busy CPU, 1 thread spends far less time waiting).",
    )
    parser.add_argument("--png", type=Path, help="Also write the figure here (e.g. docs/review_gain.png).")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.n = [int(k) for k in args.n.split(",")] if args.n else defaults["n"]
    args.n = sorted({0, *args.n})
    args.seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else defaults["seeds"]
    args.pool = args.pool or defaults["pool"]
    if args.first:
        args.seeds = [json.loads((args.first / "run.json").read_text())["seed"]]
        if args.instruction is None:  # the next adapters are asked as the first one was
            from jsontune.manifest import read_prompt_format
            from jsontune.prompts import NO_INSTRUCTION

            args.instruction = read_prompt_format(args.first / "best").instruction or NO_INSTRUCTION
    if max(args.n) > args.pool:
        parser.error(f"--n {max(args.n)} is more than the --pool of {args.pool} rows.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from datasets.utils.logging import disable_progress_bar

    args = parse_args(argv)
    disable_progress_bar()  # TRL's tokenizing bars, a screen each training: the steps are logged instead
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = prepare_data(args.out, args.data)
    base = prepare_base(args.out, args.base)
    results = [r for seed in args.seeds for r in run_seed(args, base, data, seed)]
    rows = summarize(results)
    table = markdown(rows, results)
    title = f"Correcting N of {args.pool} pool rows, then retraining (tiny model, {len(args.seeds)} seeds)"
    plot(rows, args.out / "review_gain.png", title)
    if args.png:
        shutil.copyfile(args.out / "review_gain.png", args.png)
    document = {
        "command": " ".join(sys.argv),
        "pool": args.pool,
        "seeds": args.seeds,
        "threads": args.threads,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
        "results": results,
    }
    write_json_atomic(args.out / "review_gain.json", document)
    write_text_atomic(args.out / "review_gain.md", table)
    print(table)
    print(json.dumps(document))
    return document


if __name__ == "__main__":
    main()
