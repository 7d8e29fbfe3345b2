"""`jsontune serve` (vLLM's OpenAI server, on its CPU build here) and its client `jsontune extract`, on loopback.

One server for the module; the last test stops it the way Ctrl-C does and checks that no process is left.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.errors import JsontuneError
from jsontune.parsing import find_json, valid_json
from jsontune.serving import server as serving
from jsontune.serving.settings import EngineSettings

pytestmark = pytest.mark.vllm
runner = CliRunner()
KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(merged_run, tmp_path_factory):
    """(url, the `jsontune serve` process, its output) once it says it is serving."""
    url, process, log = _serve(merged_run, tmp_path_factory.mktemp("serve"))
    yield url, process, log
    if process.poll() is None:
        process.kill()


def _serve(merged_run, folder):
    """`jsontune serve` in its own process, on a free port: (url, process, its output) once it serves."""
    port = _free_port()
    args = ["serve", str(merged_run), "--port", str(port), "--api-key", KEY, "--dtype", "float32"]
    log = folder / "serve.out"
    process = subprocess.Popen(
        [sys.executable, "-m", "jsontune.cli.app", *args, "--log-dir", str(folder)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while "Ctrl-C stops" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "Ctrl-C stops" in log.read_text(), log.read_text()[-2000:]
    return f"http://127.0.0.1:{port}", process, log


@pytest.fixture(scope="module")
def orders(synth_dir, tmp_path_factory):
    """40 orders: more than the 16 requests kept in flight."""
    lines = (synth_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    path = tmp_path_factory.mktemp("extract") / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(out):
    with open(out, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_serve_prints_the_model_and_its_schema(server, merged_run):
    _, _, log = server
    printed = log.read_text()
    assert f"serving {merged_run.name} at" in printed
    schema_line = next(line for line in printed.splitlines() if line.startswith("{"))
    assert json.loads(schema_line)["required"] == ["producto", "cantidad", "precio_unitario"]


def test_extract_many_at_once_gives_offline_guided_predictions(server, vllm_engine, merged_run, orders, tmp_path):
    from jsontune.data import load_records
    from jsontune.manifest import read_prompt_format
    from jsontune.modeling import load_tokenizer
    from jsontune.prompts import render_prompts
    from jsontune.schema import guided_json_schema
    from jsontune.serving.base import GenerationParams

    url = server[0]
    out = tmp_path / "pred.csv"
    args = ["extract", "--url", url, "--api-key", KEY, "--input", str(orders), "--out", str(out)]
    result = runner.invoke(app, [*args, "--model", str(merged_run), "--concurrency", "16", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    records = load_records(orders).records
    assert [r["id"] for r in rows] == [r.id for r in records]
    prompts = render_prompts(load_tokenizer(merged_run), [r.text for r in records], read_prompt_format(merged_run))
    params = GenerationParams(max_new_tokens=24, json_schema=guided_json_schema(None, [str(merged_run)]))
    expected = vllm_engine.generate(prompts, params)
    assert [r["raw_output"] for r in rows] == [g.text for g in expected]
    assert all(r["prediction"] for r in rows)  # an object on every row: strict, or cut at 24 tokens and repaired
    assert [r["valid_json"] == "true" for r in rows] == [valid_json(find_json(g.text)) for g in expected]
    # The server's own count of prompt tokens from its prefix cache: every request after the first reuses the
    # prompt head's first block (32 tokens on a CPU) at least.
    made = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert made["cached_tokens"] >= 32 * (len(records) - 1) and made["prompt_tokens"] == sum(
        len(p) for p in load_tokenizer(merged_run)(prompts, add_special_tokens=False)["input_ids"]
    )
    assert "prompt tokens from the prefix cache: " in " ".join(result.output.split())


def test_extract_texts_prints_one_json_per_line(server):
    result = runner.invoke(app, ["extract", "--url", server[0] + "/v1", "--api-key", KEY, "Necesito 100 tornillos"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    prediction, confidence = lines[0].split("\t")  # the JSON, then each field's confidence beside it
    assert len(lines) == 1 and isinstance(json.loads(prediction), dict)  # the prompt format came from the server
    assert set(json.loads(confidence)) == set(json.loads(prediction))


@pytest.mark.parametrize(
    ("where", "key", "says"),
    [
        ("dead", KEY, "no server answers at http://127.0.0.1:"),
        ("live", "wrong-key", "refused the API key (401)"),
    ],
)
def test_a_dead_server_or_a_wrong_key_is_one_sentence_and_the_csv_is_untouched(
    server, orders, tmp_path, where, key, says
):
    url = server[0] if where == "live" else f"http://127.0.0.1:{_free_port()}"
    out = tmp_path / "pred.csv"
    out.write_text("id,prediction,valid_json,raw_output\nkept,,false,\n")
    before = out.read_bytes()
    result = runner.invoke(app, ["extract", "--url", url, "--api-key", key, "--input", str(orders), "--out", str(out)])
    assert result.exit_code == 1
    assert says in " ".join(result.output.split()) and "Traceback" not in result.output
    assert out.read_bytes() == before and not (tmp_path / "pred.csv.partial.jsonl").exists()


def test_resume_follows_the_model_to_a_restarted_server_which_dies_with_its_supervisor(
    server, merged_run, orders, tmp_path, monkeypatch
):
    """An extract interrupted on one server resumes on the same model served at another port; then that
    second `jsontune serve` is SIGKILLed (no handler of it runs) and nothing of its server is left."""
    from jsontune.predict import partial_path
    from jsontune.serving import client

    args = ["extract", "--api-key", KEY, "--input", str(orders), "--model", str(merged_run), "--chunk-size", "4"]
    # Without confidences: their last digits follow how the server batched the requests, not what it served.
    args += ["--max-new-tokens", "24", "--no-confidence"]
    full, out = tmp_path / "full.csv", tmp_path / "pred.csv"
    assert runner.invoke(app, [*args, "--url", server[0], "--out", str(full)]).exit_code == 0
    original, calls = client.ServerEngine._one, []

    def interrupted(self, prompt, params):
        calls.append(prompt)
        if len(calls) > 10:
            raise KeyboardInterrupt  # Ctrl-C in mid-run
        return original(self, prompt, params)

    with monkeypatch.context() as patched:
        patched.setattr(client.ServerEngine, "_one", interrupted)
        result = runner.invoke(app, [*args, "--url", server[0], "--out", str(out), "--concurrency", "1"])
    assert result.exit_code == 130, result.output
    saved = len(partial_path(out).read_text().splitlines()) - 1
    assert 0 < saved < 40

    (tmp_path / "second").mkdir()
    url, process, _ = _serve(merged_run, tmp_path / "second")
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    try:
        assert url != server[0]
        result = runner.invoke(app, [*args, "--url", url, "--out", str(out), "--resume"])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == full.read_bytes()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 60
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(family), "the server outlived its SIGKILLed supervisor"
    serving._check_port_free("127.0.0.1", int(url.rsplit(":", 1)[1]))  # a new `jsontune serve` may take the port


def test_a_port_left_in_time_wait_is_free_and_a_listened_one_is_not():
    """A killed server's closed connections linger in TIME_WAIT: a plain bind fails there, the serve check must
    not (vLLM's server binds with SO_REUSEADDR and would start); a port something listens on is refused."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with pytest.raises(JsontuneError, match=f"127.0.0.1:{port} is taken"):
        serving._check_port_free("127.0.0.1", port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server's side closes first: its end waits in TIME_WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # so the port really is in TIME_WAIT
    serving._check_port_free("127.0.0.1", port)


def test_a_sigkilled_guard_takes_the_server_with_it(merged_run, tmp_path):
    """The guard between `jsontune serve` and vLLM's server is SIGKILLed (the OOM killer may pick it): the kernel
    tells the server, which stops with its engine core and frees the port; `jsontune serve` says so and exits."""
    url, process, log = _serve(merged_run, tmp_path)
    try:
        (guard,) = psutil.Process(process.pid).children()
        server = guard.children(recursive=True)  # vLLM's server, its engine core (and worker)
        assert "jsontune.processes" in guard.cmdline() and len(server) >= 2
        guard.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 60
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server), "the server outlived its SIGKILLed guard"
    serving._check_port_free("127.0.0.1", int(url.rsplit(":", 1)[1]))
    assert "the vLLM server exited by itself" in " ".join(log.read_text().split())


def test_stopping_the_server_leaves_no_process(server):
    _, process, log = server
    cli = psutil.Process(process.pid)
    family = [cli, *cli.children(recursive=True)]  # the CLI, vLLM's server, its engine core and worker
    assert len(family) >= 3
    process.send_signal(signal.SIGTERM)  # what Ctrl-C does too
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(family)
    assert "stopped the server." in log.read_text()


def _alive(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.parametrize("lora", [False, True])
def test_the_server_command_line_serves_what_predict_would(tiny_model, trained_run, lora):
    """No server started: the flags, for a merged checkpoint and for base + adapter."""
    from jsontune.serving.server import served_name, server_argv
    from jsontune.serving.vllm_engine import engine_args

    adapter = str(trained_run[0] / "best") if lora else None
    args, _ = engine_args(str(tiny_model), EngineSettings(dtype="bfloat16"), lora=adapter)
    name = served_name(str(tiny_model), adapter)
    argv = server_argv(args, "127.0.0.1", 8123, name, adapter)
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"] and "--enforce-eager" in argv
    assert json.loads(argv[argv.index("--default-chat-template-kwargs") + 1]) == {"enable_thinking": False}
    assert json.loads(argv[argv.index("--structured-outputs-config") + 1])["disable_any_whitespace"] is True
    assert argv[argv.index("--dtype") + 1] == "bfloat16" and argv[argv.index("--host") + 1] == "127.0.0.1"
    if lora:
        assert name == trained_run[0].name  # RUN/best is served as RUN's name
        assert argv[argv.index("--lora-modules") + 1] == f"{name}={adapter}" and "--enable-lora" in argv
        assert argv[argv.index("--served-model-name") + 1] == tiny_model.name
    else:
        assert name == tiny_model.name and "--lora-modules" not in argv
    assert "api" not in " ".join(argv).lower().replace("api_server", "")  # the key travels in VLLM_API_KEY


def test_vllms_own_parser_reads_the_server_command_line_as_meant(tiny_model):
    """No server started: vLLM's OpenAI server parser reads the argv jsontune writes, a False setting included
    (--no-prefix-caching must reach it as --no-enable-prefix-caching, not vanish), and asks for the usage's
    cached prompt tokens, which `jsontune extract` reports."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from jsontune.serving.server import server_argv
    from jsontune.serving.vllm_engine import engine_args

    parser = make_arg_parser(FlexibleArgumentParser())
    for settings in (EngineSettings(), EngineSettings(prefix_caching=False, block_size=64)):
        args, chosen = engine_args(str(tiny_model), settings)
        parsed = parser.parse_args(server_argv(args, "127.0.0.1", 8123, "tiny", None)[3:])
        assert parsed.enable_prompt_tokens_details is True and parsed.trust_remote_code is False
        assert parsed.enable_prefix_caching is (settings.prefix_caching is not False) is chosen["prefix_caching"]
        block = args.get("block_size")  # None on a GPU without --block-size: vLLM's own
        assert parsed.block_size == block and chosen["block_size"] == (block or "vllm default")
        assert block == (settings.block_size or (32 if chosen["device"] == "cpu" else None))


@pytest.mark.parametrize("asked", [None, True])
def test_a_server_keeps_vllms_processes_unless_asked(tiny_model, tmp_path, monkeypatch, asked):
    """No server started: --in-process reaches the server's environment, and its settings say where the model runs."""
    from jsontune.serving import server as serving

    started, real_popen = {}, subprocess.Popen

    def popen(argv, **kwargs):
        if "vllm.entrypoints.openai.api_server" not in argv:
            return real_popen(argv, **kwargs)
        started.update(kwargs["env"])
        return real_popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(serving, "wait_healthy", lambda server, timeout_s: None)
    made = serving.start_server(str(tiny_model), EngineSettings(in_process=asked), port=8199, log_dir=tmp_path)
    made.process.wait()
    assert made.settings["in_process"] is bool(asked)
    assert made.settings["in_process_rule"] == ("asked" if asked else "auto: a server keeps vLLM's own processes")
    assert started.get("VLLM_ENABLE_V1_MULTIPROCESSING") == (
        "0" if asked else os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    )
