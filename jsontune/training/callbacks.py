"""Trainer callbacks: metrics.jsonl logging and the generation-based F1 eval that keeps the best adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from jsontune.io import atomic_folder
from jsontune.manifest import read_manifest, write_manifest


def save_adapter(model, tokenizer, folder: Path, **manifest: Any) -> None:
    """Adapter + tokenizer + manifest, swapped into `folder` whole: an interrupted save leaves the old one."""
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, "adapter", **manifest)


class MetricsLogger(TrainerCallback):
    """Appends every log record (loss, learning rate, eval F1) to RUN/metrics.jsonl, rank 0 only."""

    def __init__(self, path: Path, on_event=None):
        self.path = Path(path)
        self.on_event = on_event

    def write(self, record: dict[str, Any], is_main: bool = True) -> None:
        if not is_main:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.on_event:
            self.on_event(record)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.write({"step": state.global_step, **logs}, state.is_world_process_zero)


class GenerationEvalCallback(TrainerCallback):
    """Greedy-generates JSON for the validation records every `every` steps (and before the first step),
    scores it with jsontune.metrics, and saves the adapter with the best F1 (latest on ties) to RUN/best."""

    def __init__(
        self,
        records,
        tokenizer,
        fmt,
        *,
        run_dir: Path,
        manifest: dict[str, Any],
        every: int,
        batch_size: int,
        max_new_tokens: int,
        logger: MetricsLogger,
    ):
        self.records = records
        self.tokenizer = tokenizer
        self.fmt = fmt
        self.best_dir = Path(run_dir) / "best"
        self.manifest = manifest
        self.every = every
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.logger = logger
        self.first_f1: float | None = None
        self.last_f1: float | None = None
        self.last_step: int | None = None
        saved = read_manifest(self.best_dir)  # survives --resume
        self.best_f1: float | None = saved.get("eval_f1")
        self.best_step: int | None = saved.get("step")

    def evaluate(self, model, state) -> None:
        from jsontune.extractor import Extractor, Prompting
        from jsontune.metrics import score
        from jsontune.serving.base import GenerationParams
        from jsontune.serving.hf_engine import HFEngine

        # Under DDP rank 0 evaluates alone; the others wait for it at their next gradient all-reduce.
        if not self.records or self.last_step == state.global_step or not state.is_world_process_zero:
            return
        was_training = model.training
        model.eval()
        engine = HFEngine(model, self.tokenizer, batch_size=self.batch_size)
        params = GenerationParams(max_new_tokens=self.max_new_tokens)
        prompting = Prompting(self.tokenizer, self.fmt, params)
        extractions = Extractor(engine, prompting).extract_records([r.text for r in self.records])
        model.train(was_training)
        predictions, repaired = [e.prediction for e in extractions], [e.repaired for e in extractions]
        result = score(predictions, [r.target for r in self.records], repaired=repaired)
        record = {
            "step": state.global_step,
            "eval_f1": result["f1"],
            "eval_exact_match": result["exact_match"],
            "eval_json_valid": result["json_valid_rate"],
            "eval_samples": len(self.records),
        }
        self.logger.write(record, state.is_world_process_zero)
        self.last_step, self.last_f1 = state.global_step, result["f1"]
        if self.first_f1 is None:
            self.first_f1 = result["f1"]
        # Ties go to the later adapter: equal F1 after more training steps is the better bet.
        if self.best_f1 is None or result["f1"] >= self.best_f1:
            self.best_f1, self.best_step = result["f1"], state.global_step
            if state.is_world_process_zero:
                save_adapter(
                    model,
                    self.tokenizer,
                    self.best_dir,
                    step=state.global_step,
                    eval_f1=result["f1"],
                    eval_exact_match=result["exact_match"],
                    **self.manifest,
                )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self.evaluate(model, state)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.evaluate(model, state)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.evaluate(model, state)
