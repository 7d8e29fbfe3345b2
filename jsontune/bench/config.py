"""What a bench run is asked to do: `BenchConfig`, one field per `jsontune bench` flag, checked on creation."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from jsontune.data.records import InputColumns
from jsontune.errors import JsontuneError
from jsontune.serving.settings import EngineSettings

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
    ray: str | None = None  # --ray: its address ("local": a Ray started on this machine)
    replicas: int = 1
    settings: EngineSettings = EngineSettings()  # every engine's flags; each row takes the ones its engine does
    columns: InputColumns = InputColumns()  # --input's columns

    def __post_init__(self) -> None:
        if not self.engines or not set(self.engines) <= set(ENGINES) or len(set(self.engines)) < len(self.engines):
            raise JsontuneError(
                f"--engines {','.join(self.engines)!r}: list engines from {', '.join(ENGINES)}, "
                "comma-separated, each at most once."
            )
        for flag, value, least in [
            ("-n", self.n, 1),
            ("--max-new-tokens", self.max_new_tokens, 1),
            ("--repeats", self.repeats, 1),
            ("--warmup", self.warmup, 0),
            ("--seq-limit", self.seq_limit or 1, 1),
            ("--timeout-s", self.timeout_s, 1),
            ("--replicas", self.replicas, 1),
        ]:
            if value < least:
                raise JsontuneError(f"{flag} must be at least {least}, got {value}.")
        if self.replicas > 1 and self.ray is None:
            raise JsontuneError("--replicas needs --ray (the replicas run on a Ray cluster).")
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
        """The `jsontune bench` command line that reruns this configuration."""
        defaults = BenchConfig(model=self.model)
        parts = ["jsontune bench", f"--model {shlex.quote(self.model)}"]
        flat = {k: v for k, v in asdict(self).items() if k not in ("settings", "columns")}
        given = {**flat, **asdict(self.settings), **asdict(self.columns)}
        default = {**asdict(defaults), **asdict(defaults.settings), **asdict(defaults.columns)}
        for name, value in given.items():
            if name in ("model", "fixed_length") or value == default[name] or value is None:
                continue
            flag = "-n" if name == "n" else "--" + name.replace("_", "-")
            if isinstance(value, bool) or (name == "ray" and value == "local"):  # --ray alone means "local"
                parts.append(flag)
                continue
            parts.append(f"{flag} {shlex.quote(','.join(value) if isinstance(value, tuple) else str(value))}")
        return " ".join(parts + ([] if self.fixed_length else ["--natural"]))
