"""The demo's closing summary, read from a small fake run folder (the full demo is too slow for a test)."""

from __future__ import annotations

import csv
import json

from rich.console import Console

from jsontune.cli.demo import _review_gain_args, _summary

GOLD = {"producto": "tuercas M10", "cantidad": 97, "precio_unitario": 3110}


def _row(i: int, prediction: dict | None, confidence: float | None) -> dict[str, str]:
    fields = {k: confidence for k in prediction} if prediction else None
    return {
        "id": f"r{i}",
        "prediction": json.dumps(prediction) if prediction else "",
        "valid_json": "true" if prediction else "false",
        "raw_output": json.dumps(prediction) if prediction else "no JSON here",
        "confidence": json.dumps(fields) if fields else "",
        "min_confidence": "" if confidence is None else repr(confidence),
    }


def _fake_run(out):
    """Ten test rows: six right (confidence 0.99), r7 and r8 one wrong field each (0.2, 0.3), r9 two wrong
    fields (0.95), r10 no JSON and no confidence. The least confident fifth is r10 and r7: 1 of 4 wrong fields."""
    (out / "data").mkdir(parents=True)
    with (out / "data" / "test.jsonl").open("w") as f:
        for i in range(1, 11):
            f.write(json.dumps({"id": f"r{i}", "text": "97 bolsas de tuercas M10 a $3110", "target": GOLD}) + "\n")
    rows = [_row(i, GOLD, 0.99) for i in range(1, 7)]
    rows += [_row(7, {**GOLD, "cantidad": 9}, 0.2), _row(8, {**GOLD, "producto": "tuercas"}, 0.3)]
    rows += [_row(9, {**GOLD, "cantidad": 1, "precio_unitario": 311}, 0.95), _row(10, None, None)]
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest = {"engine": "vllm", "engine_settings": {"device": "cpu"}}
    (out / "predictions.csv.manifest.json").write_text(json.dumps(manifest))
    (out / "run" / "best").mkdir(parents=True)
    metrics = [{"step": 0, "eval_f1": 0.0}, {"step": 10, "loss": 1.5}, {"step": 20, "eval_f1": 0.61}]
    (out / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (out / "run" / "best" / "jsontune.json").write_text(json.dumps({"kind": "adapter", "step": 20, "eval_f1": 0.61}))
    (out / "bench").mkdir()
    bench = {"rows": [{"engine": "hf-seq", "status": "ok", "output_tokens_per_s": 500.0, "speedup": 1.0}]}
    (out / "bench" / "bench.json").write_text(json.dumps(bench))


def test_summary_prints_per_field_f1_and_how_far_confidences_can_be_trusted(tmp_path):
    _fake_run(tmp_path)
    console = Console(record=True, width=200)
    console.print(_summary(tmp_path, 90.0))
    text = console.export_text()
    lines = {" ".join(line.strip("│┃ ").split()) for line in text.splitlines()}
    assert any(line.startswith("val F1 before training (step 0) │ 0.000") for line in lines), text
    assert any(line.startswith("val F1 best adapter (step 20) │ 0.610") for line in lines), text
    # producto: 8 right of 9 predicted and 10 gold -> F1 2*8/(9+10) = 0.842; cantidad (r7, r9 wrong) 14/19
    assert "test F1 producto │ 0.842" in lines, text
    assert "test F1 cantidad │ 0.737" in lines, text
    assert "test F1 precio_unitario │ 0.842" in lines, text
    assert "test wrong fields in the least confident 20% of rows │ 1 of 4 (25%)" in lines, text
    assert any(line.startswith("test confidence AUROC (right vs wrong fields) │ 0.") for line in lines), text
    assert any(line.startswith("test fields auto-accepted at 95% precision │") for line in lines), text


def test_summary_without_confidences_leaves_those_rows_out(tmp_path):
    _fake_run(tmp_path)
    path = tmp_path / "predictions.csv"
    with path.open(newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in ("confidence", "min_confidence")} for r in csv.DictReader(f)]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    console = Console(record=True, width=200)
    console.print(_summary(tmp_path, 90.0))
    text = console.export_text()
    assert "test F1 producto" in text and "AUROC" not in text and "least confident" not in text


def test_summary_closes_with_the_simulated_review(tmp_path):
    """scripts/review_gain.py's result: the first adapter's test F1, then the adapter trained again with N
    corrected pool rows, least confident first and at random, with how many of them needed a fix."""
    _fake_run(tmp_path)
    rows = [
        {"n": 0, "strategy": "least confident", "f1_mean": 0.5, "fixed_rows_mean": 0},
        {"n": 0, "strategy": "random", "f1_mean": 0.5, "fixed_rows_mean": 0},
        {"n": 50, "strategy": "least confident", "f1_mean": 0.58, "fixed_rows_mean": 41},
        {"n": 50, "strategy": "random", "f1_mean": 0.54, "fixed_rows_mean": 27},
    ]
    (tmp_path / "review_gain").mkdir()
    (tmp_path / "review_gain" / "review_gain.json").write_text(json.dumps({"pool": 400, "rows": rows}))
    console = Console(record=True, width=200)
    console.print(_summary(tmp_path, 90.0))
    lines = {" ".join(line.strip("│┃ ").split()) for line in console.export_text().splitlines()}
    assert "simulated review of 400 pool rows: test F1 before │ 0.500" in lines, lines
    assert "50 least confident rows corrected, retrained │ 0.580 (41 needed a fix)" in lines, lines
    assert "50 random rows corrected, retrained │ 0.540 (27 needed a fix)" in lines, lines


def test_the_simulated_review_runs_on_the_demos_own_model_and_scales_with_n(tmp_path):
    args = _review_gain_args(tmp_path, 1000)
    given = dict(zip(args[1::2], args[2::2], strict=True))
    assert args[0] == "--quick" and given["--first"] == str(tmp_path / "run")
    assert (given["--base"], given["--data"]) == (str(tmp_path / "tiny"), str(tmp_path / "data"))
    assert (given["--pool"], given["--n"]) == ("400", "50")
    small = dict(zip(*[iter(_review_gain_args(tmp_path, 60)[1:])] * 2, strict=True))
    assert (small["--pool"], small["--n"]) == ("24", "3")


def test_the_demo_trains_on_the_text_alone_unless_asked_and_its_review_retrains_the_same_way(tmp_path):
    """The demo's train step asks for prompts without the instruction (its measured default), --instruction keeps
    the recipe's; the simulated review trains its next adapters in the first run's prompt format."""
    from jsontune.cli.demo import REVIEW_GAIN, _steps, script_module
    from jsontune.prompts import DEFAULT_INSTRUCTION

    def train_step(instruction: bool) -> list[str]:
        return next(s for s in _steps(tmp_path, 100, 8, "vllm", 0, instruction) if s[0] == "train")

    alone, given = train_step(False), train_step(True)
    assert alone[-2:] == ["--instruction", "none"] and "--instruction" not in given

    review_gain = script_module(REVIEW_GAIN)
    for recorded, expected in (("", "none"), (DEFAULT_INSTRUCTION, DEFAULT_INSTRUCTION)):
        first = tmp_path / f"first-{len(recorded)}"
        (first / "best").mkdir(parents=True)
        (first / "run.json").write_text(json.dumps({"seed": 7}))
        fmt = {"instruction": recorded, "system": None, "enable_thinking": False, "version": 1}
        (first / "best" / "jsontune.json").write_text(json.dumps({"kind": "adapter", "prompt_format": fmt}))
        args = review_gain.parse_args(["--out", str(tmp_path / "rg"), "--quick", "--first", str(first)])
        assert (args.seeds, args.instruction) == ([7], expected)
