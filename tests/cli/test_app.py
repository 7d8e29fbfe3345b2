"""The CLI surface: every verb answers --help, and the top-level help imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app

VERBS = [
    ["data"],
    ["data", "synth"],
    ["data", "check"],
    ["data", "augment"],
    ["init-model"],
    ["train"],
    ["merge"],
    ["predict"],
    ["eval"],
    ["bench"],
    ["demo"],
]


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb):
    result = CliRunner().invoke(app, [*verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_imports_no_heavy_library():
    code = (
        "import sys, json; from jsontune.cli.app import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); "
        "print(json.dumps([r.exit_code, sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', "
        "'vllm', 'pandas') if m in sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    exit_code, heavy = json.loads(out.strip().splitlines()[-1])
    assert exit_code == 0 and heavy == []


def test_train_flags_are_the_contract():
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    for flag in [
        "--model",
        "--train",
        "--val",
        "--out",
        "--config",
        "--augment-factor",
        "--epochs",
        "--max-steps",
        "--lr",
        "--batch-size",
        "--lora-r",
        "--eval-samples",
        "--report-to",
        "--resume",
    ]:
        assert flag in result.output, flag


def test_bad_training_flag_is_one_sentence(tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--model", "m", "--train", "t.jsonl", "--out", str(tmp_path / "r"), "--lr", "0"]
    )
    assert result.exit_code == 1
    assert "--lr must be positive" in result.output and "Traceback" not in result.output


def test_train_reads_every_train_flag(tmp_path):
    """--train repeated: each file is read (the second, missing, is named before any model loads)."""
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "1", "text": "10 de A", "target": {"producto": "A", "cantidad": 10}}\n')
    missing = tmp_path / "fixes.jsonl"
    args = ["train", "--model", "m", "--train", str(data), "--train", str(missing), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(missing) in " ".join(result.output.split()), result.output


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "demo"), "--n", "60", "--bench-n", "4", "--pretrain-steps", "20"]
    )
    assert result.exit_code == 0, result.output
    for path in [
        "data/train.jsonl",
        "tiny/config.json",
        "run/best/adapter_config.json",
        "merged/config.json",
        "predictions.csv",
        "bench/bench.json",
        "review_gain/review_gain.json",
    ]:
        assert (tmp_path / "demo" / path).exists(), path
    assert "val F1 before training" in result.output
    said = " ".join(result.output.split())
    assert f"jsontune review {tmp_path / 'demo' / 'predictions.csv'}" in said
    assert "simulated review of 24 pool rows" in said and "3 least confident rows corrected" in said


def test_a_folder_where_a_file_goes_names_the_path_the_user_gave(tmp_path):
    from typer.testing import CliRunner

    from jsontune.cli.app import app

    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "1", "text": "10 de A", "target": {"producto": "A", "cantidad": 10}}\n')
    (tmp_path / "aug").mkdir()
    result = CliRunner().invoke(
        app, ["data", "augment", "--input", str(data), "--out", str(tmp_path / "aug"), "--factor", "2"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    said = " ".join(result.output.split())
    assert said.startswith(f"error: {tmp_path / 'aug'}:") and ".tmp" not in said
