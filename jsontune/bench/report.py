"""What a bench run leaves behind: the speed and memory tables (rich and markdown), bench.json,
bench.png (throughput and memory bars), the notes that qualify the numbers, and the one-line summary
the CLI prints last for machines (nanochat's infer_bench habit). Everything here reads a `BenchResult`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from jsontune.bench.results import BenchResult, BenchRow

SPEED = ("engine", "status", "load s", "gen s", "examples/s", "out tok/s", "cached", "speedup", "roofline")
MEMORY = ("engine", "RSS GB", "GPU GB", "torch GB")
QUALITY = ("engine", "valid JSON", "repaired", "schema-valid", "cut", "F1", "exact match")
FLOOR = ("engine", "FLOPs done / fewest", "job s / floor s", "1,000 rows: job s / floor s")
CAPTIONS = {
    "speed": "gen s: median of the timed runs, after a warm-up; cached: share of the prompt tokens vLLM took from "
    "its prefix cache (each timed run starts with it empty); speedup: examples/s over hf-seq's; "
    "roofline: share of the ceiling output tok/s of the device it ran on, in its dtype (a GPU's datasheet, or "
    "the CPU's rates measured at the start).",
    "memory": "RSS: worker peak + its children; GPU: NVML per process (else the device's growth); "
    "torch: peak allocated.",
    "floor": "done: the FLOPs its forward passes did; fewest: the shared prompt head once, each row's own prompt "
    "tokens and its answer; job s: its start and its generation of every prompt; floor s: the fewest FLOPs at the "
    "ceiling's peak FLOP/s in its dtype; 1,000 rows: the start and the head once, each row as the mean row.",
    "quality": "valid JSON: outputs holding strict JSON (as json.loads reads it); repaired: outputs holding JSON "
    "only after repair; schema-valid: objects (strict or repaired) that fit the schema --guided-json uses; "
    "cut: outputs that ran into --max-new-tokens; F1 and exact match against --gold.",
}
SUMMARY_KEYS = (
    "status",
    "examples_per_s",
    "output_tokens_per_s",
    "speedup",
    "roofline_share",
    "peak_rss_gb",
    "children_rss_gb",
    "gpu_nvml_gb",
    "torch_peak_gb",
    "json_valid_rate",
    "json_repaired_rate",
    "schema_valid_rate",
    "cut_by_length",
    "f1",
)
DASH = "—"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return DASH if value is None else f"{value:{spec}}{suffix}"


def speed_rows(result: BenchResult) -> list[list[str]]:
    table = []
    for r in result.rows:
        if not r.ok:
            table.append([r.engine, r.status, *[DASH] * (len(SPEED) - 2)])
            continue
        # With --seq-limit hf-seq timed K prompts; its seconds are scaled to all N and starred.
        gen = f"{r.gen_s * result.n / r.n_timed:.2f}" + ("*" if r.extrapolated else "")
        table.append(
            [
                r.engine,
                r.status,
                f"{r.load_s:.1f}",
                gen,
                f"{r.examples_per_s:.2f}",
                f"{r.output_tokens_per_s:.1f}",
                _fmt(r.cached_tokens / r.prompt_tokens if r.cached_tokens is not None else None, ".1%"),
                _fmt(r.speedup, ".2f", "×"),
                _fmt(r.roofline_share, ".1%"),
            ]
        )
    return table


def memory_rows(result: BenchResult) -> list[list[str]]:
    table = []
    for r in result.rows:
        rss = r.peak_rss_gb + r.children_rss_gb if r.ok else None
        table.append([r.engine, _fmt(rss, ".2f"), _fmt(r.gpu_nvml_gb, ".2f"), _fmt(r.torch_peak_gb, ".2f")])
    return table


def quality_rows(result: BenchResult) -> list[list[str]]:
    """Natural mode only: valid-JSON (strict) and repaired rates and outputs cut always, the schema-valid rate
    where the model's manifest leads to a schema, F1 and exact match when --gold was given."""
    return [
        [
            r.engine,
            _fmt(r.json_valid_rate, ".1%"),
            _fmt(r.json_repaired_rate, ".1%"),
            _fmt(r.schema_valid_rate, ".1%"),
            _fmt(r.cut_by_length, "d"),
            _fmt(r.f1, ".4f"),
            _fmt(r.exact_match, ".4f"),
        ]
        for r in result.rows
    ]


def _flops(flops: float) -> str:
    return f"{flops / 1e12:.3g} TFLOP" if flops >= 1e12 else f"{flops / 1e9:.3g} GFLOP"


def _over(done: float, fewest: float, text: str) -> str:
    return f"{text} ({done / fewest:.1f}×)"


def floor_rows(result: BenchResult) -> list[list[str]]:
    """Each row with a floor (`runner.with_floors`): the FLOPs it did against the fewest its job needs, and its
    whole job's seconds against the time those take at the ceiling, as run and for 1,000 rows."""
    table = []
    for r in result.rows:
        f = r.floor
        if f is None:
            continue
        table.append(
            [
                r.engine,
                _over(f["flops"], f["flops_floor"], f"{_flops(f['flops'])} / {_flops(f['flops_floor'])}"),
                _over(f["job_s"], f["floor_s"], f"{f['job_s']:,.1f} / {f['floor_s']:,.2f}"),
                _over(
                    f["job_s_at_rows"], f["floor_s_at_rows"], f"{f['job_s_at_rows']:,.0f} / {f['floor_s_at_rows']:,.1f}"
                ),
            ]
        )
    return table


def _tables(result: BenchResult) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    tables = [("speed", SPEED, speed_rows(result)), ("memory", MEMORY, memory_rows(result))]
    if any(r.floor for r in result.rows):
        tables.append(("floor", FLOOR, floor_rows(result)))
    if result.mode == "natural":
        tables.append(("quality", QUALITY, quality_rows(result)))
    return tables


def _job(result: BenchResult) -> str:
    return f"{result.n} prompts × {result.config.max_new_tokens} new tokens ({result.mode})"


def rich_tables(result: BenchResult) -> list[Table]:
    out = []
    for title, headers, rows in _tables(result):
        heading = f"bench {title}: {_job(result)}" if title == "speed" else f"bench {title}"
        table = Table(title=heading, caption=CAPTIONS[title], min_width=60)
        for header in headers:
            table.add_column(header, justify="left" if header in ("engine", "status") else "right")
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out


def notes(result: BenchResult) -> list[str]:
    """The sentences a reader needs next to the numbers: what was skipped, estimated or random."""
    n, tokens, said = result.n, result.config.max_new_tokens, []
    if result.random_weights:
        said.append(
            "The weights are random (an untrained model from `jsontune init-model`): speed and memory "
            "are those of its shape, its outputs are noise."
        )
    if result.skipped_rows:
        skipped = result.skipped_rows
        said.append(f"--skip-bad-rows: {len(skipped)} bad --input rows skipped (the first: {skipped[0]})")
    if n < result.config.n:
        said.append(f"--input has {n} rows, fewer than -n {result.config.n}: all were used.")
    if len(set(result.engine_dtypes.values())) > 1:
        ran = ", ".join(f"{kind} in {dtype}" for kind, dtype in result.engine_dtypes.items())
        said.append(
            f"The engines ran in different dtypes, each in what predict runs it in ({ran}); "
            "give --dtype to time them in one."
        )
    for r in result.rows:
        if not r.ok:
            said.append(f"{r.engine} {r.status}: {r.reason}")
            continue
        if r.extrapolated:
            said.append(
                f"* {r.engine} was timed on the first {r.n_timed} of {n} prompts "
                "(--seq-limit); its seconds are scaled to all of them, its rates are measured."
            )
        if r.wrong_length:
            said.append(
                f"{r.engine}: {r.wrong_length} of {r.n_timed} outputs did not have exactly "
                f"{tokens} tokens, so its run was not fixed-length."
            )
        if r.engine == "vllm" and r.gpu_nvml_gb is not None:
            share = result.config.settings.gpu_memory_utilization
            said.append(
                f"vllm's GPU memory is what it reserves up front (--gpu-memory-utilization {share}: weights, "
                "then KV cache blocks filling the rest), not what this job needed; lower it to share the GPU."
            )
        if r.roofline_note:
            said.append(f"{r.engine} {r.roofline_note}")
        if r.prompts_sha256 != result.prompts_sha256:
            said.append(f"{r.engine} ran different prompts (hash {r.prompts_sha256[:12]}); do not compare it.")
    if any("@ray×" in r.engine for r in result.rows):
        said.append(
            "The @ray× rows run the engine on that many Ray replicas, as `predict --ray` does: every timed run "
            "starts its replicas (each loads the model), so those seconds include the start; their RSS is the "
            "worker and Ray's own processes once the run is over, not the replicas', which are gone by then."
        )
    if not any(r.engine == "hf-seq" and r.ok for r in result.rows):
        said.append("No speedups: they are measured against a finished hf-seq row.")
    if any(r.floor for r in result.rows):
        said.append(
            f"The {n} prompts share their first {result.shared_prefix_tokens} tokens: the floor computes them once."
        )
    said += [roofline_sentence(result, dtype) for dtype in result.rooflines]
    return said


def roofline_sentence(result: BenchResult, dtype: str) -> str:
    """What the roofline in `dtype` stands on and the ceiling it gives, or why there is none."""
    roof = result.rooflines[dtype]
    if not roof["available"]:
        return f"No roofline in {dtype}: {roof['reason']}"
    if "cpu" in roof:
        on = cpu_rates(roof["cpu"])
    else:
        on = f"{roof['gpu']['name']} ({roof['gpu']['bandwidth_tb_s']} TB/s, {roof['gpu']['tflops']:g} TFLOP/s)"
    return (
        f"Roofline in {dtype} on {on}: {result.n} prompts × {result.config.max_new_tokens} tokens "
        f"({_flops(roof['flops'])}) take at least {roof['lower_bound_s']:.3f} s ({roof['bound']}-bound at batch "
        f"{roof['batch']}), a ceiling of {_rate(roof['ceiling_tokens_per_s'])} output tok/s."
    )


def _rate(per_s: float) -> str:
    """287,918 or 34.9: a CPU's ceiling can be a few tokens a second."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def cpu_rates(cpu: dict[str, Any]) -> str:
    """What a CPU roofline stands on: the CPU, its instructions, and the rates measured at the start."""
    by_kernel = cpu["gflops_by_kernel"]
    kernels = ", ".join(f"{name} {max(rates.values()):,.1f}" for name, rates in by_kernel.items())
    products = sorted({shape for rates in by_kernel.values() for shape in rates}, key=lambda x: int(x.split("x")[0]))
    rows = products[-1].split("x")[0]
    features = ", ".join(cpu["features"]) or "none of AVX2, AVX-512, AMX named"
    return (
        f"{cpu['name'].removeprefix('CPU ')} [{features}; torch's kernels {cpu['kernels']}], measured at the start "
        f"in {cpu['dtype']} on {cpu['threads']} threads in {cpu['seconds']:.1f} s: products {cpu['gflops']:,.1f} "
        f"GFLOP/s (the best median of {kernels} on {rows} rows by the model's {len(products)} linear weights), "
        f"copy {cpu['bandwidth_gb_s']:,.1f} GB/s ({cpu['copy_gib']:.2f} GiB), "
        f"{cpu['memory_gib']:.1f} GiB free, load average {cpu['load_avg']:.1f} (other work on these cores lowers "
        "the rates)"
    )


def _first_ok(result: BenchResult) -> BenchRow | None:
    return next((r for r in result.rows if r.ok), None)


def markdown(result: BenchResult) -> str:
    from jsontune.manifest import library_versions

    config, first = result.config, _first_ok(result)
    versions = (first and first.versions) or library_versions()
    random = " — **the weights are random**" if result.random_weights else ""
    mode = (
        f"fixed-length (every output exactly {config.max_new_tokens} tokens)"
        if config.fixed_length
        else f"natural (stops at end-of-sequence, at most {config.max_new_tokens} tokens)"
    )
    lines = [
        "# jsontune bench",
        "",
        f"    {config.command()}",
        "",
        f"- model: `{config.model}` ({result.model_path}){random}",
        f"- input: {result.input_label}: {result.n} prompts, {result.prompt_tokens_mean:.1f} prompt "
        f"tokens on average, sha256 `{result.prompts_sha256[:16]}`",
        f"- mode: {mode}; median of {config.repeats} timed runs, after a warm-up on {config.warmup} prompts",
        f"- device: {', '.join(sorted({r.device for r in result.rows if r.ok})) or DASH}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    for title, headers, rows in _tables(result):
        rule = ["---" if header in ("engine", "status") else "---:" for header in headers]
        lines += [
            "",
            f"## {title.capitalize()}",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "|".join(rule) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += ["", f"_{CAPTIONS[title]}_"]
    lines += ["", "## Notes", "", *[f"- {note}" for note in notes(result)]]
    return "\n".join(lines) + "\n"


def _peak_gb(row: BenchRow, on_gpu: bool) -> float:
    if not row.ok:
        return 0.0
    return (row.gpu_nvml_gb or 0.0) if on_gpu else row.peak_rss_gb + row.children_rss_gb


def write_png(result: BenchResult, path: Path) -> None:
    """Two bar charts: output tokens/s and peak memory per engine (a failed or skipped one says so)."""
    from matplotlib.figure import Figure

    from jsontune.io import atomic_path

    rows = result.rows
    names = [r.engine for r in rows]
    fig = Figure(figsize=(11, 4), layout="constrained")
    speed, memory = fig.subplots(1, 2)
    speed.bar(names, [r.output_tokens_per_s if r.ok else 0 for r in rows])
    speed.set(title="throughput", ylabel="output tokens / s")
    on_gpu = any(r.gpu_nvml_gb is not None for r in rows)
    memory.bar(names, [_peak_gb(r, on_gpu) for r in rows], color="tab:orange")
    memory.set(title="memory", ylabel="GPU memory, NVML (GB)" if on_gpu else "peak RSS (GB)")
    for axis in (speed, memory):
        for i, r in enumerate(rows):
            if not r.ok:
                axis.annotate(r.status, (i, 0), ha="center", va="bottom", color="tab:red")
    random = ", random weights" if result.random_weights else ""
    fig.suptitle(f"{result.config.model}: {_job(result)}{random}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def summary_line(result: BenchResult, files: dict[str, Path]) -> dict[str, Any]:
    """The machine-readable summary: one JSON object printed as the CLI's last line."""
    first = _first_ok(result)
    return {
        "model": result.config.model,
        "random_weights": result.random_weights,
        "mode": result.mode,
        "n": result.n,
        "max_new_tokens": result.config.max_new_tokens,
        "device": first.device if first else None,
        "ceiling_tokens_per_s": {dtype: roof.get("ceiling_tokens_per_s") for dtype, roof in result.rooflines.items()},
        "engines": {r.engine: {k: getattr(r, k) for k in SUMMARY_KEYS} for r in result.rows},
        "files": {k: str(v) for k, v in files.items()},
    }


def write_all(result: BenchResult, out: Path) -> dict[str, Path]:
    """bench.json (`BenchResult.to_json`), bench.md and bench.png under `out`; their paths by kind."""
    from jsontune.io import write_json_atomic, write_text_atomic

    files = {"json": out / "bench.json", "markdown": out / "bench.md", "png": out / "bench.png"}
    write_json_atomic(files["json"], result.to_json())
    write_text_atomic(files["markdown"], markdown(result))
    write_png(result, files["png"])
    return files
