"""`jsontune predict --ray`: replicas on a local Ray (one per session, 2 CPUs) write what one process writes.

Greedy decoding makes the CSV of N replicas byte-identical to the single-process one; a replica killed in
mid-run is restarted by Ray and a driver killed in mid-run resumes without redoing a row.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.predict import manifest_path, partial_path

pytestmark = pytest.mark.ray
runner = CliRunner()
INPUT_ROWS = 20  # the synthetic test split: enough batches of 1 or 2 for two replicas to share


@pytest.fixture(scope="module")
def orders(synth_dir, tmp_path_factory):
    lines = (synth_dir / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == INPUT_ROWS
    path = tmp_path_factory.mktemp("ray") / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _predict(model, orders, out, *extra):
    args = ["predict", "--model", str(model), "--input", str(orders), "--out", str(out), "--max-new-tokens", "24"]
    return runner.invoke(app, [*args, *extra])


def _ids(out):
    with open(out, encoding="utf-8", newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def one_process_hf(tiny_model, trained_run, orders, tmp_path_factory):
    """The reference: base + --lora adapter on HF in this process."""
    out = tmp_path_factory.mktemp("ray") / "one.csv"
    result = _predict(tiny_model, orders, out, "--engine", "hf", "--lora", str(trained_run[0] / "best"))
    assert result.exit_code == 0, result.output
    return out


def test_two_hf_replicas_write_the_csv_one_process_writes(
    ray_cluster, tiny_model, trained_run, orders, one_process_hf, tmp_path
):
    out = tmp_path / "ray.csv"
    lora = str(trained_run[0] / "best")
    result = _predict(
        tiny_model, orders, out, "--engine", "hf", "--lora", lora, "--ray", "--replicas", "2", "--chunk-size", "2"
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == one_process_hf.read_bytes()
    made = json.loads(manifest_path(out).read_text())
    assert made["engine"] == "hf@ray" and made["engine_settings"]["replicas"] == 2
    assert made["engine_settings"]["replica"]["torch_threads"] == 1  # one CPU each, not one thread per core


def _replica_pids() -> list[int]:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("_Replica" in part for part in process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def test_a_killed_replica_is_restarted_and_no_row_is_lost_or_doubled(
    ray_cluster, tiny_model, trained_run, orders, one_process_hf, tmp_path
):
    out = tmp_path / "killed.csv"
    killed: list[int] = []

    def kill_one_replica_once_rows_arrive() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            sidecar = partial_path(out)
            pids = _replica_pids()
            if pids and sidecar.exists() and len(sidecar.read_text().splitlines()) >= 3:  # settings + 2 rows
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_replica_once_rows_arrive)
    killer.start()
    lora = str(trained_run[0] / "best")
    result = _predict(
        tiny_model, orders, out, "--engine", "hf", "--lora", lora, "--ray", "--replicas", "2", "--chunk-size", "1"
    )
    killer.join()
    assert killed, "no replica was killed: the run ended before the first rows arrived"
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == one_process_hf.read_bytes()  # every id once, in input order, the same outputs


def test_a_killed_driver_resumes_without_redoing_a_row(ray_cluster, merged_run, orders, tmp_path):
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(merged_run), "--input", str(orders), "--out", str(out), "--engine", "hf"]
    args += ["--max-new-tokens", "24", "--ray", ray_cluster, "--replicas", "2", "--chunk-size", "1"]
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "jsontune.cli.app", *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    sidecar, deadline = partial_path(out), time.monotonic() + 180
    while time.monotonic() < deadline and driver.poll() is None:
        if sidecar.exists() and len(sidecar.read_text().splitlines()) >= 4:  # the settings + three rows
            break
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not out.exists(), (tmp_path / "driver.log").read_text()[-2000:]
    before = {json.loads(line)["id"] for line in sidecar.read_text().splitlines()[1:] if line.endswith("}")}
    assert 3 <= len(before) < INPUT_ROWS, "the driver must be killed in mid-run"

    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    ids = _ids(out)
    assert ids == [json.loads(line)["id"] for line in orders.read_text().splitlines()]  # every id once, in order
    assert json.loads(manifest_path(out).read_text())["generated"] == INPUT_ROWS - len(before)  # none twice


@pytest.mark.vllm
def test_vllm_replicas_decode_like_vllm_in_one_process(ray_cluster, vllm_engine, merged_run, orders, tmp_path):
    """Two vLLM (CPU) replicas with --guided-json give the outputs of the session's vLLM engine."""
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format
    from jsontune.modeling import load_tokenizer
    from jsontune.parsing import find_json, valid_json
    from jsontune.prompts import render_prompts
    from jsontune.schema import guided_json_schema
    from jsontune.serving.base import GenerationParams

    out = tmp_path / "vllm.csv"
    extra = ["--engine", "vllm", "--dtype", "float32", "--guided-json", "--ray", "--replicas", "2"]
    result = _predict(merged_run, orders, out, *extra)
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    records = load_records(orders).records
    prompts = render_prompts(load_tokenizer(merged_run), [r.text for r in records], read_prompt_format(merged_run))
    schema = guided_json_schema(None, [str(merged_run)])
    reference = vllm_engine.generate(prompts, GenerationParams(max_new_tokens=24, json_schema=schema))
    assert [r["raw_output"] for r in rows] == [g.text for g in reference]
    assert all(r["prediction"] for r in rows)  # an object on every row: strict, or cut at 24 tokens and repaired
    assert [r["valid_json"] == "true" for r in rows] == [valid_json(find_json(g.text)) for g in reference]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--ray", "--replicas", "0"], "--replicas must be at least 1, got 0"),
        (["--replicas", "2"], "--replicas needs --ray"),
        (["--ray", "--gpus-per-replica", "1"], "--gpus-per-replica 1: no node of the Ray cluster has 1 GPUs"),
        (["--ray", "--replicas", "3"], "--replicas 3 with --cpus-per-replica 1: the Ray cluster has room for 2"),
    ],
)
def test_bad_ray_settings_are_one_sentence(ray_cluster, tiny_model, orders, tmp_path, extra, says):
    out = tmp_path / "pred.csv"
    result = _predict(tiny_model, orders, out, "--engine", "hf", *extra)
    assert result.exit_code == 1
    assert says in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not out.exists() and not partial_path(out).exists()


def test_without_ray_installed_the_sentence_says_how_to_get_it(tiny_model, orders, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    result = _predict(tiny_model, orders, tmp_path / "pred.csv", "--engine", "hf", "--ray")
    assert result.exit_code == 1
    assert "pip install 'jsontune[ray]'" in result.output


def test_no_cluster_at_the_address_is_one_sentence(tiny_model, orders, tmp_path):
    """In a fresh process (this one has joined the session's Ray): nothing listens on port 1."""
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(tiny_model), "--input", str(orders), "--out", str(out), "--engine", "hf"]
    run = subprocess.run(
        [sys.executable, "-m", "jsontune.cli.app", *args, "--ray", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    message = " ".join(run.stderr.split())
    assert "no Ray cluster answers at 127.0.0.1:1" in message and "Traceback" not in run.stderr
    assert not out.exists()
