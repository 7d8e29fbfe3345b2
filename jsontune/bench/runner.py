"""Bench: the same prompts through each engine, each engine in its own worker process.

    jsontune bench --model qwen3-0.6b -n 1000 --engines hf-seq,hf-batch,vllm

The prompts are rendered once (prompts.py, the model's own prompt format) and written to one file
that every worker reads; each row records the hash of the prompts its worker ran. A worker runs
`python -m jsontune.bench.worker SPEC RESULT` in its own process group, so a crash, an out-of-memory
kill or a timeout costs one row ("failed", with the reason), never the others; vLLM where it cannot
run is a "skipped" row. `run_bench` returns a `BenchResult`; report.py turns it into files and tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsontune.bench.config import ENGINES, BenchConfig
from jsontune.bench.results import BenchResult, BenchRow
from jsontune.bench.worker import ERROR_PREFIX, prompts_sha256
from jsontune.errors import JsontuneError
from jsontune.processes import guarded, start

if TYPE_CHECKING:
    from jsontune.bench.roofline import CpuSpec, GpuSpec
    from jsontune.shape import ModelShape

OnEngine = Callable[[str, int, int], None]
"""Called with (engine, its position from 1, number of engines) as each engine starts."""


def resolve_model(model: str, models_dir: Path) -> tuple[str, bool]:
    """(model folder or Hub id, whether its weights are random); a preset name is built on first use."""
    from jsontune.manifest import read_manifest
    from jsontune.offline import PRESETS, init_model

    if not Path(model).exists() and model in PRESETS:
        folder = Path(models_dir) / model
        if not (folder / "config.json").is_file():
            init_model(model, folder)  # atomic: a folder with a config.json is a finished one
        model = str(folder)
    return model, bool(read_manifest(model).get("random_weights"))


def load_inputs(config: BenchConfig) -> tuple[list[Any], list[dict] | None, list[str]]:
    """The first N records (from --input, else synthetic orders); their gold targets: from --gold, or, in
    natural mode, the input's own targets when every row has one (None otherwise); and one sentence per
    --input row that --skip-bad-rows skipped."""
    from jsontune.data import load_records

    if config.input is None:
        from jsontune.data.synth import generate_orders

        records, skipped = generate_orders(config.n, config.settings.seed), []
    else:
        loaded = load_records(config.input, config.columns, require_target=False)
        records, skipped = loaded.records[: config.n], loaded.skipped
        if not records:
            raise JsontuneError(f"--input {config.input} has no rows to bench; give a file with texts.")
    if config.gold is None:
        # --natural on a labelled input (synthetic orders too) scores against its own targets
        labelled = not config.fixed_length and all(r.target is not None for r in records)
        return records, [r.target for r in records] if labelled else None, skipped
    golds = {g.id: g.target for g in load_records(config.gold, config.columns).records}
    missing = [r.id for r in records if r.id not in golds]
    if missing:
        raise JsontuneError(
            f"--gold {config.gold} has no record for {len(missing)} of the input's ids (the first: "
            f"{missing[0]!r}); pass the gold file the input was made from."
        )
    return records, [golds[r.id] for r in records], skipped


def engine_spec(
    name: str,
    config: BenchConfig,
    model: str,
    work: Path,
    schema: dict[str, Any] | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """What worker.py needs to run engine `name` (on `replicas` Ray replicas when given); `schema`
    constrains vllm-guided's decoding."""
    t = config.max_new_tokens
    fixed = {"max_new_tokens": t, "min_new_tokens": t, "ignore_eos": True}  # HF and vLLM both honour one
    settings = config.settings.only(ENGINES[name])  # one set of flags, each engine takes its own
    if name == "hf-seq":
        settings = replace(settings, sequential=True)
    natural: dict[str, Any] = {"max_new_tokens": t}
    if name == "vllm-guided":
        natural["json_schema"] = schema
    if name.endswith("+logprobs"):
        fixed, natural = {**fixed, "logprobs": True}, {**natural, "logprobs": True}
    ray = None if replicas is None else {"address": config.ray, "replicas": replicas}
    return {
        "engine": name if replicas is None else f"{name}@ray×{replicas}",
        "kind": ENGINES[name],
        "ray": ray,
        "model": model,
        "settings": settings.to_dict(),  # typed again in the worker
        "prompts": str(work / "prompts.json"),
        "outputs": str(work / f"{name}{'' if replicas is None else f'.ray{replicas}'}.outputs.jsonl"),
        "params": fixed if config.fixed_length else natural,
        "fixed_length": config.fixed_length,
        "repeats": config.repeats,
        "warmup": config.warmup,
        "limit": config.seq_limit if name == "hf-seq" else None,
    }


def _reason(log: Path) -> str:
    """The worker's own one-line reason, else the log's last line."""
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    marked = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    return marked[-1] if marked else (lines[-1] if lines else "no output")


def run_worker(spec: dict[str, Any], work: Path, timeout_s: float) -> BenchRow:
    """Run one engine in its own process group, under a guard that ends the group should this process die; its
    row, or a failed row with a one-line reason."""
    from jsontune.io import write_json_atomic

    name = spec["engine"]
    spec_path, result, log = (work / f"{name}.{kind}" for kind in ("spec.json", "result.json", "log"))
    result.unlink(missing_ok=True)
    write_json_atomic(spec_path, spec)
    root = str(Path(__file__).parents[2])  # the worker must import this very jsontune, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "jsontune.bench.worker", str(spec_path), str(result)]
    files = {"log": str(log), "outputs": spec["outputs"]}
    with (
        log.open("w", encoding="utf-8") as f,
        start(guarded(command), stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True) as proc,
    ):
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:  # also on Ctrl-C, which a new session does not receive from the terminal itself
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: anything left, such as vLLM's engine core
    if code is None:
        hint = " or time fewer prompts with --seq-limit" if name == "hf-seq" else ""
        reason = f"timed out after {timeout_s:g} s; raise --timeout-s{hint}."
    elif code < 0:
        killed = f"killed by signal {-code}" + (" (out of memory?)" if code == -signal.SIGKILL else "")
        reason = f"{killed}: {_reason(log)}"
    elif code != 0 or not result.is_file():
        reason = f"exit code {code}: {_reason(log)}"
    else:
        return BenchRow.from_dict({"engine": name, **json.loads(result.read_text(encoding="utf-8")), **files})
    return BenchRow(name, "failed", reason=reason, **files)


def with_quality(row: BenchRow, golds: list[dict] | None, schema: dict[str, Any] | None = None) -> BenchRow:
    """Natural mode: `row` with the shares of its outputs that are strict JSON and that hold JSON only after
    repair, that fit the schema (when one is known) and that ran into --max-new-tokens, and F1 / exact match
    against gold when given (repaired objects are scored too, as eval scores predict's CSV)."""
    from jsontune.metrics import score
    from jsontune.parsing import find_json, valid_json
    from jsontune.schema import schema_valid_rate

    lines = [json.loads(x) for x in Path(row.outputs).read_text(encoding="utf-8").split("\n") if x.strip()]
    found = [find_json(line["text"]) for line in lines]
    predictions = [f.value if f else None for f in found]
    scored = score(predictions, golds[: len(predictions)]) if golds is not None else {}  # --seq-limit: first K
    return replace(
        row,
        json_valid_rate=sum(valid_json(f) for f in found) / len(found),
        json_repaired_rate=sum(bool(f and f.repaired) for f in found) / len(found),
        schema_valid_rate=schema_valid_rate(predictions, schema) if schema is not None else None,
        cut_by_length=sum(line["finish_reason"] == "length" for line in lines),
        f1=scored.get("f1"),
        exact_match=scored.get("exact_match"),
    )


def with_speedups(rows: list[BenchRow]) -> list[BenchRow]:
    """The rows with examples/s over hf-seq's; None where there is no finished hf-seq row to compare with."""
    base = next((r for r in rows if r.engine == "hf-seq" and r.ok), None)
    return [replace(r, speedup=r.examples_per_s / base.examples_per_s if r.ok and base else None) for r in rows]


def _no_roofline(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def _run_dtype(config: dict[str, Any], dtype: str) -> str:
    """The dtype the engines load the weights in: --dtype, or the config's for "auto" (as on a GPU)."""
    from jsontune.device import config_dtype, dtype_name

    return config_dtype(config) if dtype == "auto" else dtype_name(dtype)


def _text_config(model: str) -> dict[str, Any]:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model).get_text_config().to_dict()


def _job_shape(model: str, config: dict[str, Any], dtype: str) -> ModelShape:
    from jsontune.bench.measure import count_params
    from jsontune.shape import model_shape

    return model_shape(config, dtype, count_params(model) if Path(model).is_dir() else None)


COPY_BYTES = (64 << 20, 1 << 30)  # the copy that measures a CPU's bandwidth: the weights' size, within these
PREFILL_ROWS = 2048  # the rows of the products that measure a CPU's FLOP rate: a prefill's tokens


def measure_cpu_rates(model: str, dtypes: Iterable[str], device: str | None) -> dict[str, CpuSpec]:
    """Where the engines run on the CPU (`device`, else the best there is), its rates for the roofline in each
    of `dtypes`, measured now, before any engine runs: on torch's threads (the HF workers' count; vLLM's engine
    computes on every CPU up to 4), products of PREFILL_ROWS rows by the weights of the model's linear layers on
    the engines' kernels (`measure.measure_cpu`), and a copy the size of the weights (within COPY_BYTES, at most
    a quarter of the free memory). None ({}) on a GPU."""
    import psutil

    from jsontune.bench.measure import measure_cpu
    from jsontune.bench.roofline import FlopShape
    from jsontune.device import resolve_device
    from jsontune.shape import model_shape

    if resolve_device(device) != "cpu":
        return {}
    config = _text_config(model)
    weights = max(model_shape(config, dtype).weight_bytes for dtype in dtypes)  # from the config: files may be broken
    copy = min(max(weights, COPY_BYTES[0]), COPY_BYTES[1], psutil.virtual_memory().available // 4)
    return measure_cpu(dtypes, FlopShape.from_config(config).linear_shapes(), PREFILL_ROWS, copy)


def job_roofline(
    rows: list[BenchRow],
    model: str,
    dtype: str,
    prompt_lengths: list[int],
    new_tokens: int,
    cpu: CpuSpec | None = None,
) -> dict[str, Any]:
    """The roofline in `dtype` of the job (a prompt of each of `prompt_lengths` tokens, `new_tokens` for each) on
    the device the engines ran on: a GPU's from the table, else the CPU's from `cpu` (`measure_cpu_rates`); or
    why there is none."""
    from jsontune.bench.roofline import FlopShape, job_flops, roofline

    ok = [r for r in rows if r.ok]
    if not ok:
        return _no_roofline("no engine finished, so there is no device to bound.")
    gpu = next((r.gpu for r in ok if r.gpu), None)
    try:
        config = _text_config(model)
    except (OSError, ValueError) as e:
        return _no_roofline(f"the model config could not be read ({e}).")
    run_dtype = _run_dtype(config, dtype)
    spec = _device_spec(gpu, run_dtype, cpu)
    if isinstance(spec, str):
        return _no_roofline(spec)
    n, prompt_tokens = len(prompt_lengths), statistics.mean(prompt_lengths)
    flops = job_flops(FlopShape.from_config(config), prompt_lengths, new_tokens)
    try:
        roof = roofline(_job_shape(model, config, run_dtype), spec, n, prompt_tokens, new_tokens, flops)
    except ValueError as e:
        return _no_roofline(f"{e}.")
    return {"available": True, "device": gpu or spec.name, **roof}


def job_rooflines(
    rows: list[BenchRow],
    model: str,
    dtypes: Iterable[str],
    prompt_lengths: list[int],
    new_tokens: int,
    cpus: dict[str, CpuSpec],
) -> dict[str, dict[str, Any]]:
    """`job_roofline` in each dtype the engines ran in, by dtype, each on the CPU's rates in that dtype."""
    return {
        dtype: job_roofline(rows, model, dtype, prompt_lengths, new_tokens, cpus.get(dtype))
        for dtype in dict.fromkeys(dtypes)
    }


def _device_spec(gpu: str | None, dtype: str, cpu: CpuSpec | None) -> GpuSpec | CpuSpec | str:
    """What bounds a job in `dtype`: the table's spec of `gpu`, or without a GPU the CPU's measured rates; else
    why there is none."""
    from jsontune.bench.roofline import GPU_SPECS, gpu_spec

    if gpu is None:
        if cpu is None:
            return f"the engines ran on the CPU and its matmul and copy rates in {dtype} were not measured."
        return cpu
    spec = gpu_spec(gpu)
    if spec is None:
        known = ", ".join(listed.name for _, listed in GPU_SPECS)
        return f"GPU {gpu!r} is not in the roofline table ({known}); add it to jsontune/bench/roofline.py."
    if dtype not in ("bfloat16", "float16"):
        return f"the weights are {dtype} and the table's FLOP rates are 16-bit; bench with --dtype bfloat16."
    return spec


def row_dtype(row: BenchRow) -> str | None:
    """The dtype a row's engine ran in, as it recorded it (a Ray row: its replicas')."""
    settings = row.engine_settings or {}
    return settings.get("dtype") or (settings.get("replica") or {}).get("dtype")


def _row_roofline(row: BenchRow, rooflines: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """(the roofline a finished row is held against, None and why it has none)."""
    roof = rooflines.get(row_dtype(row) or "")
    if roof is None or not roof["available"]:
        return None, None  # the sentence under the roofline says why there is none in that dtype
    if bool(row.gpu) == ("cpu" in roof):
        return None, f"ran on {row.gpu or 'the CPU'} and the roofline is {roof['device']}'s: no share."
    return roof, None


def with_roofline_shares(rows: list[BenchRow], rooflines: dict[str, dict[str, Any]]) -> list[BenchRow]:
    """The rows with each finished row's output tokens/s as a share of the ceiling of the roofline in its dtype,
    a note where that share is over 100 % (`roofline.share_note`, naming the prefix cache where the row took
    prompt tokens from it), or a note why it has none (it ran on another device than the roofline's)."""
    from jsontune.bench.roofline import share_note

    def shared(row: BenchRow) -> BenchRow:
        roof, why = _row_roofline(row, rooflines)
        if roof is None:
            return replace(row, roofline_note=why)
        share = row.output_tokens_per_s / roof["ceiling_tokens_per_s"]
        cached = (row.cached_tokens or 0) / row.prompt_tokens if row.prompt_tokens else 0
        return replace(row, roofline_share=share, roofline_note=share_note(share, roof, cached))

    return [shared(r) if r.ok else r for r in rows]


def with_floors(
    rows: list[BenchRow],
    rooflines: dict[str, dict[str, Any]],
    model: str,
    prompt_lengths: list[int],
    shared: int,
    rows_at: int = 1000,
) -> list[BenchRow]:
    """The rows with each finished row's whole job against its floor (`roofline.job_against_floor`): the FLOPs it
    did for its answers (its mean answer length in natural mode; the prompt tokens vLLM took from its prefix
    cache left out) and the fewest they need (the `shared` prompt head once), its start plus its generation of
    every prompt against those FLOPs at the peak FLOP/s of the roofline in its dtype; for the job as run and for
    `rows_at` rows. Rows without a roofline get none."""
    from jsontune.bench.roofline import FlopShape, job_against_floor

    if not any(roof["available"] for roof in rooflines.values()):
        return rows
    shape = FlopShape.from_config(_text_config(model))
    n = len(prompt_lengths)

    def floored(row: BenchRow) -> BenchRow:
        roof, _ = _row_roofline(row, rooflines)
        if roof is None:
            return row
        answer, cached = row.output_tokens / row.n_timed, (row.cached_tokens or 0) / row.n_timed
        gen_s = row.gen_s * n / row.n_timed  # --seq-limit timed the first n_timed prompts
        rate = roof["flop_per_s"]
        floor = job_against_floor(shape, prompt_lengths, answer, shared, rate, row.load_s, gen_s, cached, rows_at)
        return replace(row, floor=floor)

    return [floored(r) if r.ok else r for r in rows]


def engine_dtype(model: str, requested: str, device: str | None = None, *, engine: str) -> str:
    """The dtype `engine` ("hf" or "vllm") is given: `device.inference_dtype`, the rule it follows when predict
    runs it, on the device it runs on here (HF: `device`, else the best there is), so each row times what
    predict runs. `auto` on a GPU is the checkpoint's dtype with float32 run as bfloat16 for both; on a CPU,
    vLLM's is bfloat16 where the CPU has bf16 instructions, HF's float32.
    """
    from transformers import AutoConfig

    from jsontune.device import config_dtype, inference_dtype, probe_cuda_with_nvml, resolve_device

    probe_cuda_with_nvml()  # no CUDA context in this process: its workers measure the GPU's memory
    stored = config_dtype(AutoConfig.from_pretrained(model).get_text_config())
    return inference_dtype(requested, resolve_device(device if engine == "hf" else None), stored, engine=engine)


def engine_dtypes(model: str, config: BenchConfig) -> dict[str, str]:
    """The dtype of each engine kind the bench runs ("hf", "vllm"), for --dtype as asked (`engine_dtype`)."""
    kinds = dict.fromkeys(ENGINES[name] for name in config.engines)
    return {kind: engine_dtype(model, config.settings.dtype, config.settings.device, engine=kind) for kind in kinds}


def run_engines(
    config: BenchConfig,
    model: str,
    work: Path,
    golds: list[dict] | None,
    on_engine: OnEngine | None,
    dtypes: dict[str, str],
) -> list[BenchRow]:
    """One row per engine, in order: measured, failed or skipped, never lost; each in its kind's dtype from
    `dtypes` (`engine_dtypes`)."""
    from jsontune.schema import schema_if_known
    from jsontune.serving.base import vllm_available
    from jsontune.serving.ray_engine import ray_available

    schema = None if config.fixed_length else schema_if_known([model])
    rows, planned = [], config.rows()
    for i, (row_name, name, replicas) in enumerate(planned, 1):
        if on_engine:
            on_engine(row_name, i, len(planned))
        missing = vllm_available() if ENGINES[name] == "vllm" else None
        if missing is None and replicas is not None:
            missing = ray_available()
        if missing is None and name == "vllm-guided" and schema is None:
            missing = "no JSON schema: the model's manifest names no training data to infer one from."
        if missing:
            rows.append(BenchRow(row_name, "skipped", reason=missing))
            continue
        in_dtype = replace(config, settings=replace(config.settings, dtype=dtypes[ENGINES[name]]))
        spec = engine_spec(name, in_dtype, model, work, schema, replicas)
        row = run_worker(spec, work, config.timeout_s)
        rows.append(with_quality(row, golds, schema) if row.ok and not config.fixed_length else row)
    return with_speedups(rows)


def run_bench(config: BenchConfig, on_engine: OnEngine | None = None) -> BenchResult:
    """Bench every engine of `config` on the same prompts; the workers' files go under config.out/workers."""
    from jsontune.bench.roofline import shared_prefix
    from jsontune.data import LoadResult
    from jsontune.extractor import Prompting, fit_context
    from jsontune.io import write_json_atomic
    from jsontune.prompts import token_lengths
    from jsontune.serving.base import GenerationParams

    records, golds, skipped = load_inputs(config)  # bad input or gold fails before any model is built
    model, random_weights = resolve_model(config.model, config.models_dir)
    dtypes = engine_dtypes(model, config)
    # The prompts and vLLM's context come from what predict uses: the model's prompt format, rendered once, and
    # the context sized to the longest prompt plus the new tokens (or --max-model-len, checked on every row).
    prompting = Prompting.resolve(model, params=GenerationParams(max_new_tokens=config.max_new_tokens))
    prompts = prompting.prompts([r.text for r in records])
    lengths = token_lengths(prompting.tokenizer, prompts)
    shared = shared_prefix(prompting.tokenizer(prompts, add_special_tokens=False)["input_ids"])
    prompt_tokens = statistics.mean(lengths)
    inputs = LoadResult(config.input or "the synthetic orders", records)
    settings = fit_context(config.settings, inputs, lengths, config.max_new_tokens)
    work = Path(config.out) / "workers"
    write_json_atomic(work / "prompts.json", prompts)
    ran_in = [dtypes[ENGINES[name]] for name in config.engines]
    cpus = measure_cpu_rates(model, ran_in, config.settings.device)  # before any engine, a few seconds a dtype
    rows = run_engines(replace(config, settings=settings), model, work, golds, on_engine, dtypes)
    roofs = job_rooflines(rows, model, ran_in, lengths, config.max_new_tokens, cpus)
    return BenchResult(
        config=config,  # as asked: bench.json and the rerun command show the flags, not the resolved values
        rows=with_floors(with_roofline_shares(rows, roofs), roofs, model, lengths, shared),
        rooflines=roofs,
        shared_prefix_tokens=shared,
        model_path=model,
        random_weights=random_weights,
        n=len(prompts),
        prompt_tokens_mean=prompt_tokens,
        prompt_tokens_max=max(lengths),
        prompts_sha256=prompts_sha256(prompts),
        engine_dtypes=dtypes,
        skipped_rows=skipped,
    )
