"""What a bench run is asked to do: `BenchConfig`, one field per `jsontune bench` flag, checked on creation."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import Path

from jsontune.data.records import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.ray_engine import LOCAL, RayOptions
from jsontune.serving.settings import EngineSettings, as_flags, flag

# bench name -> engine; a "+logprobs" row also returns every token's log-probability (what field confidences
# cost)
ENGINES = {
    "hf-seq": "hf",
    "hf-batch": "hf",
    "vllm": "vllm",
    "vllm-guided": "vllm",
    "hf-batch+logprobs": "hf",
    "vllm+logprobs": "vllm",
}


@dataclass
class BenchConfig:
    """Everything a bench run depends on; each field is the CLI flag of the same name."""

    model: str
    input: Path | None = None
    n: int = 1000
    engines: tuple[str, ...] = ("hf-seq", "hf-batch", "vllm")
    max_new_tokens: int = 64
    fixed_length: bool = True
    repeats: int = 3
    warmup: int = 4
    seq_limit: int | None = None
    gold: Path | None = None
    timeout_s: float = 3600.0
    out: Path = Path("runs/bench")
    models_dir: Path = Path("runs/bench-models")
    ray: str | None = None  # --ray: its address ("local": a Ray started on the local machine)
    replicas: int = 1
    settings: EngineSettings = EngineSettings()  # every engine's flags; each row takes the ones its engine does
    columns: InputColumns = InputColumns()  # --input's columns

    def __post_init__(self) -> None:
        if not self.engines or not set(self.engines) <= set(ENGINES) or len(set(self.engines)) < len(self.engines):
            raise JsontuneError(
                f"--engines {','.join(self.engines)!r}: list engines from {', '.join(ENGINES)}, "
                "comma-separated, each at most once."
            )
        for name, value, least in [
            ("-n", self.n, 1),
            ("--max-new-tokens", self.max_new_tokens, 1),
            ("--repeats", self.repeats, 1),
            ("--warmup", self.warmup, 0),
            ("--seq-limit", self.seq_limit or 1, 1),
            ("--timeout-s", self.timeout_s, 1),
        ]:
            if value < least:
                raise JsontuneError(f"{name} must be at least {least}, got {value}.")
        RayOptions.given(self.ray, self.replicas)  # --replicas: at least 1, and only with --ray
        if "vllm-guided" in self.engines and self.fixed_length:
            raise JsontuneError(
                "vllm-guided decodes under the JSON schema, which ends the object where it ends; bench it with "
                "--natural."
            )
        if self.gold is not None and self.fixed_length:
            raise JsontuneError(
                "--gold scores outputs that stop at end-of-sequence; add --natural (fixed-length outputs "
                "are forced past it)."
            )

    def rows(self) -> list[tuple[str, str, int | None]]:
        """(row name, engine, Ray replicas or None) for every row, in order: each engine in one process and,
        with --ray, on 1 and on --replicas replicas, so that the scaling is measured."""
        counts = sorted({1, self.replicas}) if self.ray is not None else []
        return [(e, e, None) for e in self.engines] + [(f"{e}@ray×{k}", e, k) for e in self.engines for k in counts]

    def command(self) -> str:
        """The `jsontune bench` command line that reruns this configuration: each flag that differs from its
        default, the engine and input-column flags spelt as their declarations say (`settings.as_flags`)."""
        defaults = BenchConfig(model=self.model)
        words = ["jsontune", "bench", "--model", self.model]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("model", "settings", "columns", "fixed_length") or value in (getattr(defaults, f.name), None):
                continue
            words.append("-n" if f.name == "n" else flag(f.name))
            if not (f.name == "ray" and value == LOCAL):  # --ray alone means a Ray started on the local machine
                words.append(",".join(value) if isinstance(value, tuple) else str(value))
        words += as_flags(self.settings) + as_flags(self.columns)
        return shlex.join(words + ([] if self.fixed_length else ["--natural"]))
