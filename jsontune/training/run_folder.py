"""The run folder: made ready or resumed (checkpoints, metrics.jsonl), and its run.json record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.io import write_json_atomic
from jsontune.manifest import library_versions
from jsontune.training.config import TrainConfig


def open_run_folder(cfg: TrainConfig, main_process: bool, on_event) -> int | None:
    """Make OUT ready and return the checkpoint step to resume from (None: from the start). A folder that
    holds a run needs --resume; the metrics logged after its last checkpoint go, as they are logged again."""
    run_dir = Path(cfg.out)
    if main_process and run_dir.exists() and any(run_dir.iterdir()) and not cfg.resume:
        raise JsontuneError(f"run folder {run_dir} already exists; pass --resume to continue it or pick another --out.")
    check_report_to(cfg.report_to)
    resume_step = last_checkpoint_step(run_dir / "checkpoints") if cfg.resume else None
    if cfg.resume and resume_step is None:  # killed before its first checkpoint: nothing to keep
        on_event({"note": f"--resume: {run_dir} has no checkpoint yet; starting from step 0."})
    run_dir.mkdir(parents=True, exist_ok=True)
    if main_process:
        keep_metrics_until(run_dir / "metrics.jsonl", resume_step or 0)
    return resume_step


def check_report_to(report_to: str) -> None:
    """A tracker the user asked for must be installed: one sentence instead of the Trainer's traceback."""
    import importlib.util

    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",)}
    packages = needs.get(report_to, ())
    if packages and not any(importlib.util.find_spec(p) for p in packages):
        raise JsontuneError(f"--report-to {report_to} needs the {packages[0]} package: pip install {packages[0]}.")


def last_checkpoint_step(checkpoints: Path) -> int | None:
    """The step of the newest checkpoint-N in `checkpoints`, or None."""
    steps = [int(p.name.split("-")[-1]) for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(steps) if steps else None


def keep_metrics_until(path: Path, step: int) -> None:
    """Forget the metrics logged after `step` (all of them for 0): a resumed run logs those steps again."""
    import json

    from jsontune.io import write_text_atomic

    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def step_of(line: str) -> float:
        try:
            return json.loads(line).get("step", 0)
        except ValueError:  # the line a hard kill tore in half: it goes
            return float("inf")

    kept = [line for line in lines if step_of(line) <= step] if step else []
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def check_resumed_data(run_dir: Path, data_info: dict[str, Any]) -> None:
    """Refuse to resume on a --train file whose content changed since the run started (its SHA-256 in
    run.json): the checkpoint's data order and the rows it has seen belong to the old content."""
    import json

    path = run_dir / "run.json"
    if not path.is_file():
        return
    was = json.loads(path.read_text(encoding="utf-8")).get("data", {}).get("train") or []
    was = [was] if isinstance(was, dict) else was  # the run.json of a run before several --train files
    for old, new in zip(was, data_info["train"], strict=False):  # the same files: check_resume compared them
        if old.get("sha256") and new["sha256"] and old["sha256"] != new["sha256"]:
            raise JsontuneError(
                f"--resume: {new['path']} changed since {run_dir} started (SHA-256 {old['sha256'][:12]}... is now "
                f"{new['sha256'][:12]}...); a run resumes on the data it started with (start a new --out to "
                "train on the new content)."
            )


def run_record(cfg: TrainConfig, manifest: dict[str, Any], precision: str, data_info: dict[str, Any]) -> dict:
    """RUN/run.json: the adapter manifest, with every setting, the data files and hashes, and versions."""
    settings = {"settings": cfg.to_dict(), "precision": precision, "seed": cfg.seed}
    return {**manifest, **settings, "data": data_info, "versions": library_versions()}


def finish_run_record(run_dir: Path, run_info: dict[str, Any]) -> None:
    """run.json with the summary, and curves.png from metrics.jsonl."""
    from jsontune.training.curves import plot_curves

    write_json_atomic(run_dir / "run.json", run_info)
    plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
