"""One engine's bench run, alone in its own process so its memory and start-up are its own:

    python -m jsontune.bench.worker SPEC.json RESULT.json

SPEC (written by `runner.py`) names the engine, its options, the prompts file and the decoding
settings. The worker loads the engine (timed), warms it up on a few prompts (not timed), times
`repeats` generate calls over all the prompts and keeps the median, writes every output of the last
call to SPEC["outputs"] and the measurements to RESULT. On any error it prints the traceback, then
one line marked with ERROR_PREFIX, the reason, and exits 1; the runner makes it a "failed" row.

Memory is read after the timed calls, before the engine is closed: the process's peak RSS (plus
the current RSS of any children, such as vLLM's engine-core process), the GPU memory NVML sees
used by those processes (or, where NVML cannot see them, as in a container with its own PID
namespace, the growth of the GPU's used memory since the worker started), and torch's peak
allocated bytes when the model runs in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.memory import GB, gpu_used_bytes

ERROR_PREFIX = "bench-worker error: "  # marks the one-line reason in the log, whatever vLLM prints after


def prompts_sha256(prompts: list[str]) -> str:
    """The hash every row records, so rows can be checked to have run the very same prompts."""
    return hashlib.sha256(json.dumps(prompts, ensure_ascii=False).encode("utf-8")).hexdigest()


def memory_now(gpu_used_at_start: int | None) -> dict[str, Any]:
    """Peak RSS of this process, current RSS of its children, torch's peak and the GPU's share (GB)."""
    import psutil

    from jsontune.device import cuda_available
    from jsontune.memory import gpu_memory, peak_rss_bytes, torch_peak_gb

    children, children_rss = psutil.Process().children(recursive=True), 0
    for child in children:
        try:
            children_rss += child.memory_info().rss
        except psutil.Error:  # it exited meanwhile
            continue
    # torch's peak is None where the model ran in a child process (vLLM's engine core).
    memory = {"peak_rss_gb": peak_rss_bytes() / GB, "children_rss_gb": children_rss / GB, "torch_peak_gb": None}
    if not cuda_available():  # also where NVML sees GPUs that CUDA_VISIBLE_DEVICES hides
        return {**memory, "gpu": None, "gpu_nvml_gb": None, "gpu_memory_method": None}
    memory["torch_peak_gb"] = torch_peak_gb()
    return {**memory, **gpu_memory({os.getpid(), *(c.pid for c in children)}, gpu_used_at_start)}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else the platform's) and its count of CPUs."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return f"CPU {model or platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


def measure(spec: dict[str, Any], prompts: list[str], gpu_used_at_start: int | None) -> tuple[dict, list]:
    """Load, warm up, time `repeats` runs; the row's timing fields and the last run's generations."""
    from jsontune.extractor import build_engine
    from jsontune.serving.base import GenerationParams
    from jsontune.serving.ray_engine import RayOptions
    from jsontune.serving.settings import EngineSettings

    params = GenerationParams(**spec["params"])
    ray = RayOptions(**spec["ray"]) if spec.get("ray") else None
    if ray is not None:
        # Each generate call starts its replicas afresh (a Ray Data pipeline), as a `predict --ray` run does:
        # the timed runs include their start, and a warm-up would warm nothing.
        spec = {**spec, "warmup": 0}
    start = time.perf_counter()
    # The engine `predict` would build, with the settings the runner resolved (dtype, vLLM's context).
    engine = build_engine(spec["kind"], spec["model"], EngineSettings.from_dict(spec["settings"]), ray=ray)
    load_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        if spec["warmup"]:
            engine.generate(prompts[: spec["warmup"]], params)
        warmup_s = time.perf_counter() - start
        times = []
        for _ in range(spec["repeats"]):
            # vLLM would otherwise find every prompt of a repeat (and of the warm-up) in its prefix cache
            # and skip their prefill; each timed run starts cold, as the first one does.
            engine.reset_cache()
            start = time.perf_counter()
            generations = engine.generate(prompts, params)
            times.append(time.perf_counter() - start)
        memory = memory_now(gpu_used_at_start)
    finally:
        engine.close()
    return {
        "engine_settings": engine.settings,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "gen_s": statistics.median(times),
        "gen_s_repeats": times,
        **memory,
    }, generations


def run(spec: dict[str, Any], gpu_used_at_start: int | None = None) -> dict[str, Any]:
    """The measurements of one engine over the prompts file (the first `limit` prompts when set)."""
    from jsontune.io import write_jsonl_atomic
    from jsontune.manifest import library_versions

    prompts = json.loads(Path(spec["prompts"]).read_text(encoding="utf-8"))
    digest = prompts_sha256(prompts)
    timed = prompts[: spec["limit"]] if spec["limit"] else prompts
    row, generations = measure(spec, timed, gpu_used_at_start)
    write_jsonl_atomic(
        spec["outputs"],
        [{"text": g.text, "output_tokens": g.output_tokens, "finish_reason": g.finish_reason} for g in generations],
    )
    output_tokens = sum(g.output_tokens for g in generations)
    cached = [g.cached_tokens for g in generations]
    expected = spec["params"]["max_new_tokens"]
    return {
        **row,
        "n_timed": len(timed),
        "extrapolated": len(timed) < len(prompts),
        "prompt_tokens": sum(g.prompt_tokens for g in generations),
        "output_tokens": output_tokens,
        # of the timed run's prompt tokens, those vLLM took from its prefix cache (it starts empty: reset_cache)
        "cached_tokens": None if None in cached else sum(cached),
        "wrong_length": sum(g.output_tokens != expected for g in generations) if spec["fixed_length"] else 0,
        "examples_per_s": len(timed) / row["gen_s"],
        "output_tokens_per_s": output_tokens / row["gen_s"],
        "device": row["gpu"] or cpu_name(),
        "versions": library_versions(),
        "prompts_sha256": digest,
    }


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    used_at_start = gpu_used_bytes()  # before torch or vLLM put anything on the GPU
    try:
        result = run(spec, used_at_start)
    except Exception as e:  # the runner shows the marked line as the row's reason
        traceback.print_exc()
        message = " ".join(str(e).split())[:300]  # one line, whatever the library wrote
        reason = message if isinstance(e, JsontuneError) else f"{type(e).__name__}: {message}"
        print(ERROR_PREFIX + reason, file=sys.stderr, flush=True)
        return 1
    from jsontune.io import write_json_atomic

    write_json_atomic(result_path, {"status": "ok", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
