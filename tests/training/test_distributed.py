"""The distributed path: two CPU processes (gloo) under torchrun train one adapter together."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_two_process_gloo_training(tiny_model, synth_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "jsontune.cli.app",
        "train",
        "--model",
        str(tiny_model),
        "--train",
        str(synth_dir / "train.jsonl"),
        "--val",
        str(synth_dir / "val.jsonl"),
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--eval-steps",
        "2",
        "--eval-samples",
        "2",
        "--batch-size",
        "2",
        "--seed",
        "3",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["steps"] == 4
    assert run["train_metrics"]["train_samples_per_second"] > 0
    assert (out / "last" / "adapter_model.safetensors").is_file()
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "eval_f1" in line]
    assert [e["step"] for e in evals] == [0, 2, 4], "rank 1 must not write metrics too"
    assert result.stdout.count("jsontune train") == 1, "only rank 0 prints the summary"
