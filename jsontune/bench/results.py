"""What a bench run found: one `BenchRow` per engine and the `BenchResult` that `run_bench` returns.

A row is frozen: the runner adds quality, speedup and roofline share by making new rows
(`dataclasses.replace`), so no function changes a row another one holds. `BenchResult.to_json` is
bench.json: the settings and what the run measured about its job under "config", every row with every
field (None where an engine did not get that far), and the roofline in each dtype the engines ran in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from jsontune.bench.config import BenchConfig


@dataclass(frozen=True)
class BenchRow:
    """One engine's line: measured ("ok"), or "failed" / "skipped" with the reason and no measurements."""

    engine: str
    status: Literal["ok", "failed", "skipped"]
    reason: str | None = None
    # measured by the worker (worker.py) in its own process: its RESULT.json holds these
    engine_settings: dict[str, Any] | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    gen_s: float | None = None  # the median of gen_s_repeats
    gen_s_repeats: list[float] | None = None
    peak_rss_gb: float | None = None
    children_rss_gb: float | None = None
    torch_peak_gb: float | None = None
    gpu: str | None = None  # the GPU's NVML name; None on a CPU
    gpu_nvml_gb: float | None = None
    gpu_memory_method: str | None = None
    n_timed: int | None = None
    extrapolated: bool | None = None  # --seq-limit timed fewer prompts than the job has
    prompt_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens vLLM took from its prefix cache; None: the engine keeps none
    output_tokens: int | None = None
    wrong_length: int | None = None  # fixed-length mode: outputs without exactly --max-new-tokens tokens
    examples_per_s: float | None = None
    output_tokens_per_s: float | None = None
    device: str | None = None
    versions: dict[str, str] | None = None
    prompts_sha256: str | None = None
    # the worker's files
    log: str | None = None
    outputs: str | None = None
    # natural mode: the outputs' quality (runner.with_quality)
    json_valid_rate: float | None = None  # strict JSON, as json.loads reads it
    json_repaired_rate: float | None = None  # JSON only after repair
    schema_valid_rate: float | None = None
    cut_by_length: int | None = None
    f1: float | None = None
    exact_match: float | None = None
    # against hf-seq's row and the device's ceiling (runner.with_speedups, runner.with_roofline_shares)
    speedup: float | None = None
    roofline_share: float | None = None
    roofline_note: str | None = None  # why a finished row has no share (another device), or is over 100 %
    # its whole job against the fewest FLOPs it needs (runner.with_floors, roofline.job_against_floor)
    floor: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchRow:
        """A row from its JSON form, such as a worker's RESULT.json with the engine's name and files added.

        A key that no field holds is an error naming it, so the worker and this class cannot drift apart
        unnoticed (a dropped measurement, or a new one missing from bench.json).
        """
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(
                f"bench row {data.get('engine')!r} has keys that BenchRow does not know: {', '.join(unknown)}; "
                "add them to jsontune/bench/results.py."
            )
        return cls(**data)


@dataclass
class BenchResult:
    """The rows of one run, the roofline, and what the run found out about its job on the way."""

    config: BenchConfig  # as asked; the engines ran in `engine_dtypes` and vLLM's context sized to the job
    rows: list[BenchRow]
    # by dtype the engines ran in: roofline.roofline()'s numbers (its "gpu" or "cpu" spec among them) and
    # "available": True, or "available": False and the "reason"
    rooflines: dict[str, dict[str, Any]]
    model_path: str  # the folder or Hub id the engines loaded (a preset name becomes its folder)
    random_weights: bool
    n: int  # prompts run: -n, or fewer when --input has fewer rows
    prompt_tokens_mean: float
    prompt_tokens_max: int
    prompts_sha256: str
    engine_dtypes: dict[str, str]  # the dtype each engine kind ran in ("hf", "vllm"): what predict runs it in
    shared_prefix_tokens: int = 0  # the prompt head every prompt starts with (roofline.shared_prefix)
    skipped_rows: list[str] = field(default_factory=list)  # --skip-bad-rows: one sentence per bad --input row

    @property
    def mode(self) -> str:
        return "fixed-length" if self.config.fixed_length else "natural"

    @property
    def input_label(self) -> str:
        return str(self.config.input) if self.config.input else f"synthetic orders (seed {self.config.settings.seed})"

    def to_json(self) -> dict[str, Any]:
        """bench.json: {"config": the flags and the job, "rows": one object per engine, "rooflines": by dtype}."""
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()}
        summary = {
            **settings,
            "skipped_rows": self.skipped_rows,
            "command": self.config.command(),
            "model_path": self.model_path,
            "random_weights": self.random_weights,
            "mode": self.mode,
            "n_requested": self.config.n,
            "n": self.n,
            "input_label": self.input_label,
            "prompt_tokens_mean": self.prompt_tokens_mean,
            "prompt_tokens_max": self.prompt_tokens_max,
            "prompts_sha256": self.prompts_sha256,
            "engine_dtypes": self.engine_dtypes,
            "shared_prefix_tokens": self.shared_prefix_tokens,
        }
        return {"config": summary, "rows": [asdict(row) for row in self.rows], "rooflines": self.rooflines}
